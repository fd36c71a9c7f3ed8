"""Scoring policies: which feasible node and which devices a claim gets.

A :class:`Policy` combines weighted :class:`Scorer` s. Each scorer returns a raw figure for one
candidate placement (higher is better); the policy rescales every scorer's figures over the
candidates of one decision to 0..100 (as kube-scheduler's NormalizeScore does) and adds them up
with the weights. Built-in policies:

- ``modelplane`` (ours): topology, fragmentation, cost and power, searching the tightest
  topology domain first and packing partitions onto already-used accelerators;
- ``first-fit``: what upstream DRA does: devices in slice order, no device scoring, nodes by
  LeastAllocated;
- ``binpack``: Volcano's binpack formula on accelerator units, devices in slice order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ._inventory import Device, Inventory
from ._state import PRICE_ATTRIBUTE, WATTS_ATTRIBUTE, AllocatedState

if TYPE_CHECKING:
    pass

__all__ = [
    "TOPOLOGY_LEVELS",
    "BinpackScorer",
    "CostScorer",
    "FragmentationScorer",
    "LeastAllocatedScorer",
    "Placement",
    "Policy",
    "PowerScorer",
    "Scorer",
    "TopologyScorer",
    "WorkloadMix",
    "policy_named",
]

#: Topology attributes from the tightest domain to the widest one inside a node.
TOPOLOGY_LEVELS: tuple[str, ...] = (
    "resource.kubernetes.io/pcieRoot",
    "modelplane.dev/numaNode",
    "modelplane.dev/nvlinkDomain",
)


@dataclass(slots=True)
class Placement:
    """A feasible way to satisfy a claim on one node, as the scorers see it."""

    node: str
    devices: list[Device]
    units: float  # accelerator units taken exclusively
    rank: tuple[int, ...]  # chosen firstAvailable alternative per request (lower is preferred)


class Scorer(Protocol):
    """Raw score of one placement; higher is better. Scores are rescaled per decision."""

    name: str

    def score(self, p: Placement, inv: Inventory, state: AllocatedState) -> float: ...


def topology_level(devices: Sequence[Device]) -> int:
    """Index of the tightest domain shared by all devices (len(TOPOLOGY_LEVELS) = whole node)."""
    if len(devices) <= 1:
        return 0
    for i, attr in enumerate(TOPOLOGY_LEVELS):
        first = devices[0].attributes.get(attr)
        if first is not None and all(d.attributes.get(attr) == first for d in devices[1:]):
            return i
    return len(TOPOLOGY_LEVELS)


@dataclass
class TopologyScorer:
    """Prefer the tightest shared domain: PCIe root, then NUMA node, then NVLink domain, node."""

    name: str = "topology"

    def score(self, p: Placement, inv: Inventory, state: AllocatedState) -> float:
        return -float(topology_level(p.devices))


@dataclass
class WorkloadMix:
    """Recent claim shapes (accelerator units per claim), exponentially decayed, as in FGD."""

    decay: float = 0.98
    shapes: dict[float, float] = field(default_factory=lambda: {1.0: 1.0})

    def observe(self, units: float) -> None:
        shape = round(units, 3)
        for k in self.shapes:
            self.shapes[k] *= self.decay
        self.shapes[shape] = self.shapes.get(shape, 0.0) + (1 - self.decay)

    def popularity(self) -> list[tuple[float, float]]:
        total = sum(self.shapes.values()) or 1.0
        return [(k, v / total) for k, v in self.shapes.items() if v / total > 0.01]


def fragmentation(free: Sequence[float], mix: Sequence[tuple[float, float]]) -> float:
    """Expected accelerator units on a node that the workload mix cannot use (FGD, ATC'23).

    ``free`` holds the free share of each accelerator of the node. A shape of ``k >= 1`` whole
    accelerators can use only fully free ones, and only if there are ``k`` of them; a fractional
    shape ``f`` cannot use accelerators with less than ``f`` free.
    """
    total = 0.0
    whole = sum(1 for f in free if f >= 0.999)
    free_sum = sum(free)
    for shape, p in mix:
        if shape >= 1:
            unusable = free_sum if whole < shape else free_sum - whole
        else:
            unusable = sum(f for f in free if f < shape - 1e-9)
        total += p * unusable
    return total


@dataclass
class FragmentationScorer:
    """Least increase of fragmentation of what remains on the node, given the recent mix."""

    mix: WorkloadMix = field(default_factory=WorkloadMix)
    name: str = "fragmentation"

    def score(self, p: Placement, inv: Inventory, state: AllocatedState) -> float:
        accels = inv.physical_by_node.get(p.node, {})
        used = state.physical_used
        before = {a: max(0.0, 1.0 - used.get(a, 0.0)) for a in accels}
        after = dict(before)
        for d in p.devices:
            if d.physical in after:
                after[d.physical] = max(0.0, after[d.physical] - d.units)
        mix = self.mix.popularity()
        return -(
            fragmentation(list(after.values()), mix) - fragmentation(list(before.values()), mix)
        )


def _number(value: object) -> float:
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return 0.0
    return 0.0


@dataclass
class CostScorer:
    """Cheapest placement by the ``modelplane.dev/pricePerHour`` device attribute."""

    name: str = "cost"

    def score(self, p: Placement, inv: Inventory, state: AllocatedState) -> float:
        return -sum(_number(d.attributes.get(PRICE_ATTRIBUTE)) for d in p.devices)


@dataclass
class PowerScorer:
    """Least power by the ``modelplane.dev/powerWatts`` attribute (caps are enforced as filters)."""

    name: str = "power"

    def score(self, p: Placement, inv: Inventory, state: AllocatedState) -> float:
        return -sum(_number(d.attributes.get(WATTS_ATTRIBUTE)) for d in p.devices)


@dataclass
class LeastAllocatedScorer:
    """kube-scheduler's LeastAllocated on accelerator units: the emptiest node wins."""

    name: str = "least-allocated"

    def score(self, p: Placement, inv: Inventory, state: AllocatedState) -> float:
        cap = inv.nodes[p.node].units if p.node in inv.nodes else 0.0
        if cap <= 0:
            return 0.0
        return (cap - state.node_units.get(p.node, 0.0) - p.units) / cap


@dataclass
class BinpackScorer:
    """Volcano's binpack: ``weight * (used + request) / capacity``, scaled to MaxNodeScore 10."""

    weight: float = 1.0
    name: str = "binpack"

    def score(self, p: Placement, inv: Inventory, state: AllocatedState) -> float:
        cap = inv.nodes[p.node].units if p.node in inv.nodes else 0.0
        if cap <= 0:
            return 0.0
        used = state.node_units.get(p.node, 0.0) + p.units
        return self.weight * used / cap / self.weight * 10


@dataclass
class Policy:
    """How candidates are searched and ranked.

    - ``scorers``: ``(scorer, weight)`` pairs;
    - ``node_order``: ``"most-allocated"`` visits fuller nodes first, ``"rotate"`` starts where the
      previous decision stopped (kube-scheduler's sampling);
    - ``nodes_to_find``: stop after this many feasible nodes (0: kube-scheduler's adaptive share);
    - ``topology_first``: try placements inside one PCIe root / NUMA / NVLink domain first;
    - ``pack_devices``: order devices by how used their accelerator and domain already are.
    """

    name: str
    scorers: list[tuple[Scorer, float]]
    node_order: str = "rotate"
    nodes_to_find: int = 0
    topology_first: bool = False
    pack_devices: bool = False
    _next_start: int = 0

    def fragmentation_mix(self) -> WorkloadMix | None:
        for s, _ in self.scorers:
            if isinstance(s, FragmentationScorer):
                return s.mix
        return None

    def feasible_to_find(self, total: int) -> int:
        if self.nodes_to_find > 0:
            return self.nodes_to_find
        # kube-scheduler: numFeasibleNodesToFind with the adaptive percentage, at least 100.
        if total < 100:
            return total
        pct = max(5, 50 - total // 125)
        return max(100, total * pct // 100)

    def rank(self, placements: Sequence[Placement], inv: Inventory, state: AllocatedState) -> int:
        """Index of the best placement: preferred alternatives first, then the weighted score."""
        best_rank = min(p.rank for p in placements)
        pool = [i for i, p in enumerate(placements) if p.rank == best_rank]
        if len(pool) == 1 or not self.scorers:
            return pool[0]
        totals = [0.0] * len(pool)
        for scorer, weight in self.scorers:
            raw = [scorer.score(placements[i], inv, state) for i in pool]
            lo, hi = min(raw), max(raw)
            if hi - lo < 1e-12:
                continue
            for j, r in enumerate(raw):
                totals[j] += weight * 100 * (r - lo) / (hi - lo)
        best = max(range(len(pool)), key=lambda j: (totals[j], -j))
        return pool[best]


def policy_named(name: str) -> Policy:
    """A fresh built-in policy: ``modelplane``, ``first-fit`` or ``binpack``."""
    if name in ("modelplane", "ours"):
        return Policy(
            "modelplane",
            [
                (TopologyScorer(), 3.0),
                (FragmentationScorer(), 2.0),
                (CostScorer(), 1.0),
                (PowerScorer(), 0.5),
            ],
            node_order="most-allocated",
            nodes_to_find=8,
            topology_first=True,
            pack_devices=True,
        )
    if name == "first-fit":
        return Policy("first-fit", [(LeastAllocatedScorer(), 1.0)])
    if name == "binpack":
        return Policy("binpack", [(BinpackScorer(), 1.0)])
    raise ValueError(f"unknown scorer {name!r}: use modelplane, first-fit or binpack")
