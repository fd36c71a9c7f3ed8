"""What is allocated right now: devices in use, counters and capacity consumed, power drawn."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from modelplane.api import parse_quantity

from ._inventory import CounterKey, Device, Inventory

if TYPE_CHECKING:
    from ._results import AllocationResult

__all__ = ["AllocatedState"]


@dataclass(slots=True)
class _Holding:
    node: str
    devices: list[tuple[Device, bool, dict[str, Fraction]]]  # device, exclusive, consumed capacity


@dataclass
class AllocatedState:
    """Mutable record of allocations against one :class:`Inventory`.

    ``add`` and ``release`` keep every derived figure current (devices in use, counters and
    consumable capacity consumed, accelerator units and watts per node and rack), so a decision
    reads them in O(1) instead of replaying all claims.
    """

    inventory: Inventory
    in_use: dict[int, str] = field(default_factory=dict)  # device index -> claim
    counters_used: dict[CounterKey, Fraction] = field(default_factory=dict)
    capacity_used: dict[int, dict[str, Fraction]] = field(default_factory=dict)
    shares: dict[int, int] = field(default_factory=dict)  # multi-allocatable device -> holders
    node_units: dict[str, float] = field(default_factory=dict)
    node_watts: dict[str, float] = field(default_factory=dict)
    rack_watts: dict[str, float] = field(default_factory=dict)
    physical_used: dict[str, float] = field(default_factory=dict)  # accelerator -> units used
    claims: dict[str, _Holding] = field(default_factory=dict)
    # (free accelerator units, node) for every node of the inventory, ascending; built on first
    # use and kept current by ``add``/``release``, so "fullest node that still fits" is a bisect.
    _by_free: list[tuple[float, str]] | None = field(default=None, repr=False, compare=False)
    _free_key: dict[str, float] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_claims(
        cls, inventory: Inventory, claims: Iterable[Mapping[str, Any]]
    ) -> AllocatedState:
        """State from ResourceClaims that already carry ``status.allocation`` (Kubernetes shape)."""
        state = cls(inventory)
        for claim in claims:
            results = (
                ((claim.get("status") or {}).get("allocation") or {}).get("devices") or {}
            ).get("results") or ()
            meta = claim.get("metadata") or {}
            key = f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"
            held: list[tuple[Device, bool, dict[str, Fraction]]] = []
            node = ""
            for r in results:
                dev = inventory.device(r["driver"], r["pool"], r["device"])
                if dev is None:
                    continue  # the device is gone; nothing to hold
                consumed = {
                    (k if "/" in k else f"{dev.driver}/{k}"): Fraction(_q(v))
                    for k, v in (r.get("consumedCapacity") or {}).items()
                }
                # A multi-allocatable device is shared only by results that say so (a share
                # ID or consumed capacity); without, it was allocated whole.
                share = dev.allow_multiple and bool(r.get("shareID") or r.get("consumedCapacity"))
                exclusive = not r.get("adminAccess") and not share
                held.append((dev, exclusive, consumed))
                node = node or (dev.node or "")
            state._hold(key, node, held, admin=False)
        return state

    def is_free(self, dev: Device) -> bool:
        return dev.index not in self.in_use and dev.index not in self.shares

    def counters_free(
        self, dev: Device, extra: Mapping[CounterKey, Fraction] | None = None
    ) -> bool:
        total = self.inventory.counters
        used = self.counters_used
        for key, value in dev.consumes:
            have = total.get(key)
            if have is None:
                return False
            taken = used.get(key, 0) + (extra.get(key, 0) if extra else 0)
            if taken + value > have:
                return False
        return True

    def free_units(self, node: str) -> float:
        """Accelerator units of ``node`` not held by any claim."""
        info = self.inventory.nodes.get(node)
        return (info.units if info else 0.0) - self.node_units.get(node, 0.0)

    def nodes_by_free(self, at_least: float = 0.0) -> tuple[int, list[tuple[float, str]]]:
        """``(cut, index)``: ``(free units, node)`` ascending; ``index[cut:]`` have ``at_least`` free.

        The index is kept current by ``add`` and ``release`` (O(log nodes) lookups, one list
        move per changed node), so a decision never sorts the whole cluster. Read it, don't
        change it.
        """
        index = self._by_free
        if index is None:
            index = sorted((self.free_units(n), n) for n in self.inventory.nodes)
            self._by_free = index
            self._free_key = {n: f for f, n in index}
        return bisect.bisect_left(index, (at_least - 1e-9, "")), index

    def iter_nodes_by_free(self, at_least: float = 0.0) -> Iterator[str]:
        """Nodes with at least ``at_least`` free units, fullest first (lazily)."""
        cut, index = self.nodes_by_free(at_least)
        for i in range(cut, len(index)):
            yield index[i][1]

    def _reindex(self, node: str) -> None:
        index = self._by_free
        if index is None:
            return
        old = self._free_key.get(node)
        if old is None:
            return  # not a node of the inventory (shared devices)
        new = self.free_units(node)
        if new == old:
            return
        i = bisect.bisect_left(index, (old, node))
        if i < len(index) and index[i] == (old, node):
            del index[i]
        bisect.insort(index, (new, node))
        self._free_key[node] = new

    def add(self, key: str, result: AllocationResult) -> None:
        """Record ``result`` (as returned by :func:`allocate`) as held by claim ``key``."""
        held: list[tuple[Device, bool, dict[str, Fraction]]] = []
        for r in result.devices:
            exclusive = not r.admin_access and not r.device.allow_multiple
            held.append((r.device, exclusive, r.consumed))
        self._hold(key, result.node, held, admin=False)

    def _hold(
        self, key: str, node: str, held: list[tuple[Device, bool, dict[str, Fraction]]], admin: bool
    ) -> None:
        if key in self.claims:
            self.release(key)
        info = self.inventory.nodes.get(node)
        for dev, exclusive, consumed in held:
            if exclusive:
                self.in_use[dev.index] = key
                for ckey, value in dev.consumes:
                    self.counters_used[ckey] = self.counters_used.get(ckey, 0) + value
                self.node_units[node] = self.node_units.get(node, 0.0) + dev.units
                self.physical_used[dev.physical] = (
                    self.physical_used.get(dev.physical, 0.0) + dev.units
                )
                watts = _watts(dev)
                self.node_watts[node] = self.node_watts.get(node, 0.0) + watts
                if info is not None and info.rack:
                    self.rack_watts[info.rack] = self.rack_watts.get(info.rack, 0.0) + watts
            elif dev.allow_multiple:
                # The first share of a multi-allocatable device uses up its counters.
                n = self.shares.get(dev.index, 0)
                if not n:
                    for ckey, value in dev.consumes:
                        self.counters_used[ckey] = self.counters_used.get(ckey, 0) + value
                self.shares[dev.index] = n + 1
            if consumed:
                used = self.capacity_used.setdefault(dev.index, {})
                for name, value in consumed.items():
                    used[name] = used.get(name, 0) + value
        self.claims[key] = _Holding(node, held)
        self._reindex(node)

    def release(self, key: str) -> bool:
        """Give back everything claim ``key`` holds; False when it holds nothing."""
        holding = self.claims.pop(key, None)
        if holding is None:
            return False
        node = holding.node
        info = self.inventory.nodes.get(node)
        for dev, exclusive, consumed in holding.devices:
            if exclusive:
                self.in_use.pop(dev.index, None)
                for ckey, value in dev.consumes:
                    self.counters_used[ckey] -= value
                self.node_units[node] -= dev.units
                self.physical_used[dev.physical] -= dev.units
                watts = _watts(dev)
                self.node_watts[node] -= watts
                if info is not None and info.rack:
                    self.rack_watts[info.rack] -= watts
            elif dev.index in self.shares:
                n = self.shares[dev.index] - 1
                if n:
                    self.shares[dev.index] = n
                else:
                    del self.shares[dev.index]
                    for ckey, value in dev.consumes:
                        self.counters_used[ckey] -= value
            if consumed:
                used = self.capacity_used[dev.index]
                for name, value in consumed.items():
                    used[name] -= value
        self._reindex(node)
        return True


WATTS_ATTRIBUTE = "modelplane.dev/powerWatts"
PRICE_ATTRIBUTE = "modelplane.dev/pricePerHour"


def _watts(dev: Device) -> float:
    value = dev.attributes.get(WATTS_ATTRIBUTE)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _q(value: Any) -> Fraction:
    return parse_quantity(value)
