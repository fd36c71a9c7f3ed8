"""Cost and power of what is allocated, attributed to its owners (``modelplane cost``).

From the objects alone, no metrics needed: each allocated ResourceClaim holds devices, each device
of a ResourceSlice may carry the attributes ``modelplane.dev/pricePerHour`` (money per hour, any
currency: the inventory's) and ``modelplane.dev/powerWatts`` (what the scheduler scores and caps
by). A claim is attributed to its owner (``metadata.ownerReferences``: an Endpoint's replica, a
Job, an Agent; the claim itself without one) and its namespace (the tenant). A device shared by
several claims (``allowMultipleAllocations``) is split evenly between them. Power is reported per
node and per rack (the Node label ``topology.modelplane.dev/rack``): published (every device's
watts) beside allocated.

A device without a price or a power attribute counts 0 and is counted in ``unpriced``, so a
report never passes an unknown for a zero without saying so.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PRICE_ATTRIBUTE = "modelplane.dev/pricePerHour"
WATTS_ATTRIBUTE = "modelplane.dev/powerWatts"
RACK_LABEL = "topology.modelplane.dev/rack"

JSON = Mapping[str, Any]
DeviceId = tuple[str, str, str]  # driver, pool, device


@dataclass(frozen=True, slots=True)
class _Device:
    node: str
    price: float | None
    watts: float | None


@dataclass(slots=True)
class OwnerCost:
    """What one owner (``Kind/namespace/name``) holds: devices, money per hour, watts."""

    namespace: str
    owner: str
    devices: float = 0.0
    per_hour: float = 0.0
    watts: float = 0.0
    unpriced: int = 0


@dataclass(slots=True)
class PowerUse:
    """Watts published and allocated on one node or rack."""

    name: str
    published: float = 0.0
    allocated: float = 0.0


@dataclass(slots=True)
class CostReport:
    owners: list[OwnerCost] = field(default_factory=list)
    nodes: list[PowerUse] = field(default_factory=list)
    racks: list[PowerUse] = field(default_factory=list)

    def namespaces(self) -> dict[str, float]:
        """Money per hour by namespace (tenant)."""
        totals: dict[str, float] = defaultdict(float)
        for o in self.owners:
            totals[o.namespace] += o.per_hour
        return dict(sorted(totals.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "owners": [
                {
                    "namespace": o.namespace,
                    "owner": o.owner,
                    "devices": o.devices,
                    "perHour": round(o.per_hour, 6),
                    "watts": round(o.watts, 3),
                    "unpriced": o.unpriced,
                }
                for o in self.owners
            ],
            "namespaces": {k: round(v, 6) for k, v in self.namespaces().items()},
            "nodes": [_power_json(p) for p in self.nodes],
            "racks": [_power_json(p) for p in self.racks],
        }


def _power_json(p: PowerUse) -> dict[str, Any]:
    return {"name": p.name, "publishedWatts": p.published, "allocatedWatts": p.allocated}


def _number(attribute: Any) -> float | None:
    """A DRA attribute value (``{"int": 700}``, ``{"string": "2.50"}``...) as a number."""
    if not isinstance(attribute, Mapping):
        return None
    for kind in ("int", "string", "version"):
        if kind in attribute:
            try:
                return float(attribute[kind])
            except (TypeError, ValueError):
                return None
    return None


def _devices(slices: Iterable[JSON]) -> dict[DeviceId, _Device]:
    found: dict[DeviceId, _Device] = {}
    for s in slices:
        spec = s.get("spec") or {}
        driver, pool = str(spec.get("driver")), str((spec.get("pool") or {}).get("name"))
        node = str(spec.get("nodeName") or pool)
        for d in spec.get("devices") or ():
            attrs = d.get("attributes") or {}
            found[(driver, pool, str(d.get("name")))] = _Device(
                node, _number(attrs.get(PRICE_ATTRIBUTE)), _number(attrs.get(WATTS_ATTRIBUTE))
            )
    return found


def _owner(claim: JSON) -> tuple[str, str]:
    meta = claim.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    for ref in meta.get("ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("kind") and ref.get("name"):
            return namespace, f"{ref['kind']}/{namespace}/{ref['name']}"
    return namespace, f"ResourceClaim/{namespace}/{meta.get('name')}"


def _held(claims: Iterable[JSON]) -> list[tuple[tuple[str, str], DeviceId]]:
    held = []
    for claim in claims:
        allocation = (claim.get("status") or {}).get("allocation") or {}
        for r in (allocation.get("devices") or {}).get("results") or ():
            device = (str(r.get("driver")), str(r.get("pool")), str(r.get("device")))
            held.append((_owner(claim), device))
    return held


def cost_report(
    claims: Iterable[JSON], slices: Iterable[JSON], nodes: Iterable[JSON]
) -> CostReport:
    """The cost and power of ``claims``' allocations over ``slices``' devices (module docstring)."""
    devices = _devices(slices)
    held = _held(claims)
    sharers = Counter(device for _, device in held)
    owners: dict[tuple[str, str], OwnerCost] = {}
    allocated_watts: dict[str, float] = defaultdict(float)
    for (namespace, owner), device in held:
        share = 1 / sharers[device]
        cost = owners.setdefault((namespace, owner), OwnerCost(namespace, owner))
        cost.devices += share
        d = devices.get(device)
        if d is None or d.price is None:
            cost.unpriced += 1
        else:
            cost.per_hour += d.price * share
        if d is not None and d.watts is not None:
            cost.watts += d.watts * share
            allocated_watts[d.node] += d.watts * share
    published: dict[str, float] = defaultdict(float)
    for d in devices.values():
        published[d.node] += d.watts or 0.0
    racks = {
        str((n.get("metadata") or {}).get("name")): str(
            ((n.get("metadata") or {}).get("labels") or {}).get(RACK_LABEL) or ""
        )
        for n in nodes
    }
    node_use = [
        PowerUse(name, published.get(name, 0.0), allocated_watts.get(name, 0.0))
        for name in sorted(set(published) | set(allocated_watts))
    ]
    by_rack: dict[str, PowerUse] = {}
    for use in node_use:
        rack = racks.get(use.name) or ""
        if rack:
            total = by_rack.setdefault(rack, PowerUse(rack))
            total.published += use.published
            total.allocated += use.allocated
    ordered = sorted(owners.values(), key=lambda o: (-o.per_hour, o.namespace, o.owner))
    return CostReport(ordered, node_use, [by_rack[r] for r in sorted(by_rack)])
