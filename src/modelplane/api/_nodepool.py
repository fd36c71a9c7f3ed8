"""``NodePool``: nodes added when claims wait for devices and removed when empty (Karpenter-like).

Cluster-scoped, administrators only (a pool spends money). A pool offers nodes of one shape
(``template``: how many devices of which driver, with which attributes and labels) for the
claims that ask for ``deviceClassName``; ``limits`` cap its nodes and devices, ``pricePerHour``
prices one node, and ``consolidateAfter`` is how long a node must stay empty before it is
removed. ``provider`` names who makes the machines (``simulated``: Nodes and ResourceSlices in the
store, as the simulated driver publishes; a cloud's provider plugs in behind the same interface).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from modelplane.api._meta import READY_COLUMN, Resource, Schema, Status
from modelplane.api._types import Duration, Name

#: the label a pool's nodes carry, naming the pool
NODEPOOL_LABEL = "modelplane.dev/nodepool"


def _gpu_type() -> dict[str, str | int | bool]:
    return {"type": "gpu"}


class NodeTemplate(Schema):
    """What every node of the pool offers: its devices and labels."""

    devices: int = Field(default=8, ge=1, le=1024, description="Devices per node, e.g. 8.")
    driver: str = Field(
        default="gpu.nvidia.com", description="The DRA driver of its devices, e.g. gpu.nvidia.com."
    )
    attributes: dict[str, str | int | bool] = Field(
        default_factory=_gpu_type,
        description=(
            "Attributes of each device (the device type), e.g. {type: gpu, productName: NVIDIA"
            " H100 80GB HBM3}; each device also gets an `index`. They must satisfy the"
            " DeviceClass's selectors."
        ),
    )
    capacity: dict[str, str] = Field(
        default_factory=dict, description='Capacity of each device, e.g. {memory: "80Gi"}.'
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels of each Node, e.g. a rack or instance type."
    )


class NodePoolLimits(Schema):
    """The most the pool may hold at once; unset: no cap."""

    nodes: int | None = Field(default=None, ge=0, description="Most nodes.")
    devices: int | None = Field(default=None, ge=0, description="Most devices over its nodes.")


class NodePoolSpec(Schema):
    """Which claims the pool serves, the shape of its nodes, its limits and price."""

    device_class_name: Name = Field(
        description="The DeviceClass whose pending claims this pool adds nodes for."
    )
    template: NodeTemplate = Field(default_factory=NodeTemplate, description="Each node.")
    limits: NodePoolLimits = Field(default_factory=NodePoolLimits, description="Caps.")
    price_per_hour: float = Field(
        default=0.0, ge=0, description="US dollars per node-hour, for cost figures."
    )
    consolidate_after: Duration = Field(
        default="30s", description="How long a node stays empty before it is removed."
    )
    provider: Name = Field(
        default="simulated", description="Who makes the machines: simulated, or a cloud's name."
    )


class NodePoolStatus(Status):
    """The pool's nodes as its controller last saw them (conditions: ``Ready``)."""

    nodes: list[dict[str, Any]] | None = Field(
        default=None,
        description="Per node: name, devices, allocated, createdAt, emptySince.",
    )
    node_count: int | None = Field(default=None, description="Nodes in the pool.")
    device_count: int | None = Field(default=None, description="Devices over its nodes.")
    pending_devices: int | None = Field(
        default=None, description="Devices asked for by unschedulable claims of its class."
    )
    cost_per_hour: float | None = Field(default=None, description="Nodes times pricePerHour.")


class NodePool(Resource):
    """Nodes of one shape, added for waiting claims and removed when empty (module docstring)."""

    spec: NodePoolSpec = Field(description="What the pool offers.")
    status: NodePoolStatus | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "nodepools"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("np",)
    NAMESPACED: ClassVar[bool] = False
    ADMIN_ONLY: ClassVar[bool] = True
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("CLASS", "spec.deviceClassName"),
        ("NODES", "status.nodeCount"),
        READY_COLUMN,
    )
