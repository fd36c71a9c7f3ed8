"""The exact optimum of a batch of claims on a small cluster, as an integer linear program.

Which subset of a batch of ResourceClaims can be placed together so as to serve the most
demand? :func:`optimum` answers that exactly with HiGHS (through ``scipy.optimize.milp``),
honouring what the allocator honours for such claims: selectors (matched by the inventory's CEL
index), ``exactly`` counts and ``firstAvailable`` alternatives, all devices of a claim on one
node, exclusive devices, shared counters (MIG), ``matchAttribute`` and ``distinctAttribute``,
untolerated taints. It is the yardstick the benchmark holds the online policies against; it is
exponential in the worst case, so keep instances small (a handful of nodes, tens of claims).

**Demand**, not devices consumed, is what counts (:func:`demand`): a placed claim is worth the
accelerator units its *preferred* shape asks for (each request's first alternative: ``count``
times the smallest share of a GPU a matching device takes; a MIG partition counts as its share
of its GPU), however it is placed. Counting the units of the devices a claim ends up holding
instead would reward waste: an agent that prefers a 1g.10gb slice and falls back to a whole L40S
would be "worth" eight times more on the L40S. Among equally good answers the model prefers each
request's first alternative. It does not impose the order of ``firstAvailable`` across claims
(the allocator takes the first alternative that fits *when the claim arrives*), so the optimum
is an upper bound on what any arrival order achieves. :func:`replay` checks an answer against
the allocator itself.

Not modelled (the claim is refused with ``ValueError``): ``allocationMode: All``, admin access,
consumable capacity, devices shared by all nodes; power caps are ignored.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelplane.scheduling import (
    AllocatedState,
    AllocationResult,
    ConstraintPlan,
    CounterKey,
    Device,
    Inventory,
    RequestPlan,
    allocate,
    claim_key,
    plan_claim,
    untolerated,
)

__all__ = ["Optimum", "demand", "optimum", "replay"]


@dataclass(slots=True)
class Optimum:
    """The best allocation of a batch: demand served and the devices of each placed claim."""

    units: float  # demand served: the sum of :func:`demand` over the placed claims
    placed: dict[str, list[tuple[str, Device]]] = field(
        default_factory=dict
    )  # claim -> (request, device)
    optimal: bool = (
        True  # False: HiGHS stopped at its time limit with a feasible, maybe worse, answer
    )
    seconds: float = 0.0

    @property
    def claims(self) -> int:
        return len(self.placed)


class _Model:
    """Variables as columns, constraints as sparse rows; bounds 0..1, all integer."""

    def __init__(self) -> None:
        self.objective: list[float] = []
        self.rows: list[dict[int, float]] = []
        self.lower: list[float] = []
        self.upper: list[float] = []

    def var(self, gain: float = 0.0) -> int:
        self.objective.append(gain)
        return len(self.objective) - 1

    def row(self, coefs: Mapping[int, float], lo: float, hi: float) -> None:
        if coefs:
            self.rows.append(dict(coefs))
            self.lower.append(lo)
            self.upper.append(hi)


def _demand(slots: Sequence[Sequence[RequestPlan]]) -> float:
    total = 0.0
    for alts in slots:
        first = alts[0]
        units = [
            d.units for devices in first.index.values() for d in devices if not d.allow_multiple
        ]
        total += first.count * (min(units) if units else 1.0)
    return total


def demand(claim: Mapping[str, Any], inventory: Inventory) -> float:
    """Accelerator units a claim asks for: per request, its first alternative's ``count`` times
    the smallest share of one accelerator that a device matching it takes (1.0 for a whole GPU).

    The same figure whichever devices the claim gets, so a policy is never credited for giving
    a claim more than it asked for. Raises ``ValueError`` for an invalid claim.
    """
    return _demand(plan_claim(claim, inventory).requests)


def optimum(
    claims: Sequence[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
    inventory: Inventory,
    *,
    state: AllocatedState | None = None,
    time_limit_s: float = 60.0,
) -> Optimum:
    """Place the subset of ``claims`` that serves the most :func:`demand`, exactly.

    ``state`` holds what is already allocated (those devices and counters are not free).
    Raises ``ValueError`` for a claim the model does not cover (see the module docstring) and
    ``ImportError`` when scipy is missing (``pip install 'modelplane[bench]'``).
    """
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp  # type: ignore[import-untyped]
    from scipy.sparse import csr_array  # type: ignore[import-untyped]

    started = time.perf_counter()
    batch = _Batch(inventory, state or AllocatedState(inventory))
    for claim in claims:
        batch.add(claim)
    m = batch.finish()
    n = len(m.objective)
    if n == 0:
        return Optimum(0.0, seconds=time.perf_counter() - started)
    data: list[float] = []
    cols: list[int] = []
    indptr = [0]
    for coefs in m.rows:
        cols.extend(coefs)
        data.extend(coefs.values())
        indptr.append(len(cols))
    matrix = csr_array((data, cols, indptr), shape=(len(m.rows), n)) if m.rows else None
    res = milp(
        -np.asarray(m.objective),
        constraints=[LinearConstraint(matrix, m.lower, m.upper)] if m.rows else [],
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit_s, "mip_rel_gap": 0.0},
    )
    if res.x is None:
        raise RuntimeError(f"HiGHS found no solution: {res.message}")
    placed: dict[str, list[tuple[str, Device]]] = {}
    for key, request, d, x in batch.x_of:
        if res.x[x] > 0.5:
            placed.setdefault(key, []).append((request, d))
    units = sum(worth for key, worth, y in batch.y_of if res.x[y] > 0.5)
    return Optimum(units, placed, res.status == 0, time.perf_counter() - started)


_NO_LOWER = float("-inf")


class _Batch:
    """The integer program of a batch, claim by claim: a 0/1 column per claim (placed or not), per
    device a request may take, per ``firstAvailable`` alternative and per node and value chosen."""

    def __init__(self, inv: Inventory, used: AllocatedState) -> None:
        self.inv = inv
        self.used = used
        self.m = _Model()
        self.x_of: list[tuple[str, str, Device, int]] = []  # claim, request name, device, column
        self.y_of: list[tuple[str, float, int]] = []  # claim, demand, column
        self.fallbacks: list[int] = []  # columns of alternatives other than a request's first
        self.by_device: dict[int, dict[int, float]] = {}
        self.by_counter: dict[CounterKey, dict[int, float]] = {}

    def add(self, claim: Mapping[str, Any]) -> None:
        m = self.m
        resolved = plan_claim(claim, self.inv)
        key, slots, constraints = resolved.key, resolved.requests, resolved.constraints
        worth = _demand(slots)
        y = m.var(worth)
        self.y_of.append((key, worth, y))
        on_node: dict[str, dict[int, float]] = {}
        same: list[dict[tuple[str, Any], int]] = [{} for _ in constraints]
        distinct: list[dict[tuple[str, Any], dict[int, float]]] = [{} for _ in constraints]
        for alts in slots:
            choose: dict[int, float] = {y: -1.0}
            for position, plan in enumerate(alts):
                if plan.all_mode or plan.admin or plan.capacity:
                    raise ValueError(
                        f"claim {key}, request {plan.name}: allocationMode All, adminAccess and "
                        "capacity requests are not modelled by the exact optimum"
                    )
                u = y if len(alts) == 1 else m.var()
                if u != y:
                    choose[u] = 1.0
                    if position:
                        self.fallbacks.append(u)
                count: dict[int, float] = {u: -float(plan.count)}
                for x, node, d in self._devices(key, plan, constraints):
                    count[x] = 1.0
                    on_node.setdefault(node, {})[x] = 1.0
                    for k in plan.constraints:
                        value = (node, d.attributes[constraints[k].attribute])
                        if constraints[k].same_value:
                            if value not in same[k]:
                                same[k][value] = m.var()
                            m.row({x: 1.0, same[k][value]: -1.0}, _NO_LOWER, 0.0)
                        else:
                            distinct[k].setdefault(value, {})[x] = 1.0
                m.row(count, 0.0, 0.0)  # count devices iff this alternative is chosen
            if len(alts) > 1:
                m.row(choose, 0.0, 0.0)  # exactly one alternative iff the claim is placed
        z: dict[str, int] = {}
        for node, xs in on_node.items():
            z[node] = m.var()
            # Devices only on the claim's one node: x <= z (row per device, a tight relaxation).
            for x in xs:
                m.row({x: 1.0, z[node]: -1.0}, _NO_LOWER, 0.0)
        m.row({y: -1.0, **dict.fromkeys(z.values(), 1.0)}, 0.0, 0.0)
        for values in same:
            if values:
                m.row({y: -1.0, **dict.fromkeys(values.values(), 1.0)}, _NO_LOWER, 0.0)
        for groups in distinct:
            for xs in groups.values():
                m.row(xs, _NO_LOWER, 1.0)

    def _devices(
        self, key: str, plan: RequestPlan, constraints: Sequence[ConstraintPlan]
    ) -> Iterator[tuple[int, str, Device]]:
        """A column per device ``plan`` may take: (column, node, device)."""
        for node, devices in plan.index.items():
            if not node:
                raise ValueError(
                    f"claim {key}, request {plan.name}: devices shared by all nodes "
                    "are not modelled by the exact optimum"
                )
            for d in devices:
                if d.index in self.used.in_use or d.allow_multiple:
                    continue
                if untolerated(d, plan) is not None:
                    continue
                if any(
                    d.attributes.get(constraints[k].attribute) is None for k in plan.constraints
                ):
                    continue
                x = self.m.var()
                self.x_of.append((key, plan.name, d, x))
                self.by_device.setdefault(d.index, {})[x] = 1.0
                for ck, amount in d.consumes:
                    self.by_counter.setdefault(ck, {})[x] = float(amount)
                yield x, node, d

    def finish(self) -> _Model:
        """The rows shared by all claims (a device once, counters within what is free)."""
        m = self.m
        for xs in self.by_device.values():
            m.row(xs, _NO_LOWER, 1.0)
        for ck, xs in self.by_counter.items():
            free = float(self.inv.counters.get(ck, 0) - self.used.counters_used.get(ck, 0))
            m.row(xs, _NO_LOWER, free)
        # Tie-break: a fallback alternative costs a little, far less than any difference in demand.
        for u in self.fallbacks:
            m.objective[u] = -1e-4 / len(self.fallbacks)
        return m


def replay(
    best: Optimum, claims: Iterable[Mapping[str, Any]], inventory: Inventory
) -> AllocatedState:
    """Re-place the optimum's claims (of an empty cluster) through :func:`allocate`, pinned.

    For each placed claim in turn, every device the optimum did not give it is marked taken, so
    the allocator can only accept exactly those devices (with all of its own checks: selectors,
    counters, constraints, taints, one node) or refuse. Returns the state holding every claim;
    raises ``ValueError`` naming the first claim the allocator refuses or gives other devices.
    """
    inv = inventory
    by_key = {claim_key(c): c for c in claims}
    done: list[AllocationResult] = []
    for key, devices in best.placed.items():
        claim = by_key.get(key)
        if claim is None:
            raise ValueError(f"the optimum places {key}, which is not among the claims")
        want = {d.index for _, d in devices}
        pinned = AllocatedState(inv)
        for r in done:
            pinned.add(r.claim, r)
        for d in inv.devices:
            if d.index not in want:
                pinned.in_use.setdefault(d.index, "(pinned away)")
        result = allocate(claim, inv, allocated_state=pinned, deadline_ms=10_000)
        if not isinstance(result, AllocationResult):
            raise ValueError(
                f"the allocator refuses the optimum's devices for {key}: {result.reason}"
            )
        if {r.device.index for r in result.devices} != want:
            raise ValueError(f"the allocator gave {key} other devices than the optimum's")
        done.append(result)
    held = AllocatedState(inv)
    for r in done:
        held.add(r.claim, r)
    return held
