"""What an allocation decided: the devices per request and the claim's status as Kubernetes
writes it. Below the allocator and the allocated state, which both read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from modelplane.api import format_quantity

from ._inventory import Device

__all__ = ["AllocationResult", "DeviceResult"]


@dataclass(slots=True)
class DeviceResult:
    """One allocated device, as in ``status.allocation.devices.results[]``."""

    request: str
    device: Device
    admin_access: bool = False
    consumed: dict[str, Fraction] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    claim: int = 0  # which claim of an ``allocate_many`` decision
    share_id: str | None = None  # a share of a multi-allocatable device

    def to_dict(self) -> dict[str, Any]:
        dev = self.device
        out: dict[str, Any] = {
            "request": self.request,
            "driver": dev.driver,
            "pool": dev.pool,
            "device": dev.name,
        }
        if self.admin_access:
            out["adminAccess"] = True
        if self.tolerations:
            out["tolerations"] = self.tolerations
        if dev.binding_conditions:
            out["bindingConditions"] = list(dev.binding_conditions)
            out["bindingFailureConditions"] = list(dev.binding_failure_conditions)
        if self.share_id is not None:
            out["shareID"] = self.share_id
        if self.consumed:
            # Capacity names as the device publishes them: the driver's own without domain.
            prefix = f"{dev.driver}/"
            out["consumedCapacity"] = {
                (k[len(prefix) :] if k.startswith(prefix) else k): format_quantity(v)
                for k, v in self.consumed.items()
            }
        return out


@dataclass(slots=True)
class AllocationResult:
    """A successful decision: the node and the devices, per request."""

    claim: str
    node: str
    devices: list[DeviceResult]
    elapsed_ms: float
    nodes_evaluated: int
    config: list[dict[str, Any]] = field(default_factory=list)
    #: Devices tried in the search, all nodes together (one step: one device tried for one
    #: position of one request), the measure of search effort Kubernetes' allocator table
    #: counts as ``NumAllocateOneInvocations``.
    steps: int = 0

    @property
    def results(self) -> list[dict[str, Any]]:
        return [d.to_dict() for d in self.devices]

    @property
    def node_selector(self) -> dict[str, Any] | None:
        """Where the devices can be used: the node once any is node-local, else the union of
        the network-attached devices' selectors (None: every node), as Kubernetes writes it."""
        if not self.node:
            return None
        return _result_selector(self.devices, self.node)

    def to_status(self) -> dict[str, Any]:
        """The claim's ``status`` as Kubernetes writes it (``allocation.devices.results``)."""
        devices: dict[str, Any] = {"results": self.results}
        if self.config:
            devices["config"] = self.config
        allocation: dict[str, Any] = {"devices": devices}
        selector = self.node_selector
        if selector is not None:
            allocation["nodeSelector"] = selector
        return {"allocation": allocation}


def _local_selector(node: str) -> dict[str, Any]:
    return {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        ]
    }


def _result_selector(devices: list[DeviceResult], node: str) -> dict[str, Any] | None:
    terms: list[dict[str, list[dict[str, Any]]]] | None = None  # None: every node
    for r in devices:
        dev = r.device
        if dev.node is not None or dev.binds_to_node:
            return _local_selector(node)
        if dev.node_selector is None:
            continue
        own = [
            {
                "matchExpressions": list(t.get("matchExpressions") or ()),
                "matchFields": list(t.get("matchFields") or ()),
            }
            for t in dev.node_selector.get("nodeSelectorTerms") or ()
        ]
        if terms is None:
            terms = own
        else:  # AND of two ORs of terms: every pair of terms, merged
            terms = [
                {
                    "matchExpressions": _union(a["matchExpressions"], b["matchExpressions"]),
                    "matchFields": _union(a["matchFields"], b["matchFields"]),
                }
                for a in terms
                for b in own
            ]
    if terms is None:
        return None
    return {"nodeSelectorTerms": [{k: v for k, v in t.items() if v} for t in terms]}


def _union(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return a + [r for r in b if r not in a]
