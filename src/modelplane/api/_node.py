"""``Node``: a machine that runs replicas and agent workers (cluster-scoped).

Topology lives in labels, as in Kubernetes: ``kubernetes.io/hostname`` names the host,
``topology.modelplane.dev/rack`` and ``topology.modelplane.dev/block`` the rack and block; a Job's
``topology`` levels (``host``, ``rack``, ``block``) map to these labels through
:data:`TOPOLOGY_LABELS`.

A node agent proves it is alive by renewing the store lease :func:`node_lease_name` (as the
kubelet renews its Lease in ``kube-node-lease``); the scheduling subsystem's node lifecycle
controller sets ``Ready=Unknown`` on a Node whose lease lapsed.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from modelplane.api._meta import READY_COLUMN, Resource, Schema, Status
from modelplane.api._names import TOPOLOGY_LABELS as TOPOLOGY_LABELS
from modelplane.api._quantity import Quantity

#: the store leases node agents renew are named this, then the Node's name
NODE_LEASE_PREFIX = "node-heartbeat/"
#: seconds a node agent's lease lasts unless renewed (renewed every third of it), and the grace
#: the node lifecycle controller gives a lapsed one: Kubernetes' 40 s node-monitor-grace-period
NODE_LEASE_SECONDS = 40.0


def node_lease_name(node: str) -> str:
    """The store lease the node agent of ``node`` renews while it runs."""
    return NODE_LEASE_PREFIX + node


class NodeSpec(Schema):
    """What the node offers beyond its devices (devices are published as ResourceSlices)."""

    capacity: dict[str, Quantity] = Field(
        default_factory=dict,
        description='Resource name -> amount, e.g. `cpu: "16"`, `memory: 64Gi`.',
    )
    unschedulable: bool = Field(
        default=False, description="Place no new replicas or workers here (cordoned)."
    )


class NodeStatus(Status):
    """Observed state: conditions such as ``Ready``, plus what the node agent reports."""


class Node(Resource):
    """A machine that runs replicas and agent workers; labels carry its topology."""

    spec: NodeSpec = Field(default_factory=NodeSpec, description="Capacity and schedulability.")
    status: NodeStatus | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "nodes"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("no",)
    NAMESPACED: ClassVar[bool] = False
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        READY_COLUMN,
        ("UNSCHEDULABLE", "spec.unschedulable"),
    )
