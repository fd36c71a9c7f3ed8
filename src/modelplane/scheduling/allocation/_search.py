"""The search on one node: which of its candidate devices serve every request of a decision.

A depth-first search over combinations (never permutations) of candidate devices that honours
the claim's constraints (through their trackers, see :mod:`.constraints`), shared counters,
consumable capacity and power caps, trying ``firstAvailable`` alternatives in order. With
``topology_first`` it runs inside one PCIe root / NUMA node / NVLink domain first, the fullest
fitting domain first. ``matchAttribute``-like constraints (``same_value``) are searched value group
by value group, and a group that cannot hold the claim is skipped without searching it.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from modelplane.api import TIME_SLICES_CAPACITY, parse_quantity

from ._inventory import CounterKey, Device
from ._plans import MAX_RESULTS, RequestPlan
from ._results import DeviceResult
from ._scoring import TOPOLOGY_LEVELS, Policy
from ._state import AllocatedState, _watts
from .constraints._base import Constraint, Tracker, values_of

__all__ = ["NodeSearch", "SearchTimeout", "consumption", "counters_reason", "search_node"]


def _round_up(value: Fraction, policy: Mapping[str, Any]) -> Fraction | None:
    """Apply a capacity requestPolicy; None when the value cannot be served."""
    rng = policy.get("validRange")
    if rng and rng.get("min") is not None:
        lo = parse_quantity(rng["min"])
        if value <= lo:
            return lo
        step = parse_quantity(rng["step"]) if rng.get("step") else None
        if step:
            steps = -(-(value - lo) // step)
            value = lo + steps * step
        hi = parse_quantity(rng["max"]) if rng.get("max") else None
        return None if hi is not None and value > hi else value
    valid = policy.get("validValues")
    if valid:
        options = sorted(parse_quantity(v) for v in valid)
        return next((o for o in options if o >= value), None)
    return value


def consumption(dev: Device, plan: RequestPlan) -> dict[str, Fraction] | None:
    """Capacity this request takes from ``dev`` (Kubernetes' consumable capacity), or None."""
    requested: dict[str, Fraction] = {}
    for name, value in plan.capacity.items():
        q = name if "/" in name else f"{dev.driver}/{name}"
        if q not in dev.capacity:
            return None
        requested[q] = value
    if not dev.allow_multiple:
        # Exclusive devices: the request only has to fit what the device offers.
        return {} if all(v <= dev.capacity[q] for q, v in requested.items()) else None
    consumed: dict[str, Fraction] = {}
    sliced = bool(dev.time_sliced_by)
    for q, total in dev.capacity.items():
        policy = dev.request_policies.get(q) or {}
        if sliced and q not in requested:
            if q != TIME_SLICES_CAPACITY:
                continue  # time-slicing isolates no memory: a share takes what it asks for
            # a claim of a time-sliced class takes one slice; any other claim the device whole
            if plan.class_name not in dev.time_sliced_by:
                consumed[q] = total
                continue
        if q in requested:
            rounded = _round_up(requested[q], policy) if policy else requested[q]
            if rounded is None:
                return None
            value = rounded
        else:
            value = parse_quantity(policy["default"]) if policy.get("default") else total
        consumed[q] = value
    return consumed


class SearchTimeout(Exception):
    pass


_R_CONSTRAINT, _R_COUNTERS, _R_CAPACITY, _R_POWER, _R_RACK_POWER = range(5)


class NodeSearch:
    """Depth-first search for one node; state is pushed and popped as devices are tried."""

    def __init__(
        self,
        node: str,
        slots: list[list[RequestPlan]],
        constraints: list[Constraint],
        candidates: list[list[list[Device]]],
        state: AllocatedState,
        deadline: float,
    ) -> None:
        self.node = node
        self.slots = slots
        self.constraints = constraints
        self.candidates = candidates
        self.state = state
        self.deadline = deadline
        self.ticks = 0
        self.chosen: list[DeviceResult] = []
        self.exclusive: set[int] = set()
        self.counters: dict[CounterKey, Fraction] = {}
        self.capacity: dict[int, dict[str, Fraction]] = {}
        # Per constraint, what the devices chosen so far allow the next ones.
        self.trackers: list[Tracker] = [c.tracker() for c in constraints]
        self.active: dict[int, int] = {}  # shares of multi-allocatable devices in this decision
        self.charged: list[bool] = []  # per chosen device: did it use up its counters here
        self.claim_results: Counter[int] = Counter()
        # Per request: the fewest results the later requests of the same claim still add, so
        # an alternative that would leave them no room under the claim's limit is never tried.
        self.later: list[int] = [0] * len(slots)
        for r in range(len(slots) - 2, -1, -1):
            nxt = slots[r + 1]
            same = nxt and slots[r] and nxt[0].claim == slots[r][0].claim
            least = min((0 if p.all_mode else p.count) for p in nxt) if nxt else 0
            self.later[r] = (self.later[r + 1] + least) if same else 0
        self.watts = 0.0
        self.rank: list[int] = [0] * len(slots)
        self.failures: Counter[int] = Counter()
        self.failed_constraint: Constraint | None = None
        self.whole_node = True
        self._groups: dict[tuple[int, int, str], dict[Any, list[Device]]] = {}
        self._sigs: dict[int, tuple[Any, ...]] = {}
        # Groups proved infeasible on the whole node before anything was chosen: they stay
        # infeasible inside any topology domain (fewer devices, fewer counters).
        self.dead: set[tuple[int, int, Any]] = set()
        self._membership: list[set[int]] | None = None
        info = state.inventory.nodes.get(node)
        self.node_cap = info.power_cap if info else None
        self.rack_cap = info.rack_power_cap if info else None
        self.node_watts = state.node_watts.get(node, 0.0)
        self.rack_watts = state.rack_watts.get(info.rack, 0.0) if info and info.rack else 0.0

    def solve(self) -> bool:
        return self._request(0)

    def precheck(self) -> bool:
        """False when no value group of the first request's ``matchAttribute`` can hold the claim.

        Cheap: counts and counter totals per group, no search. The verdicts are remembered for
        the searches inside topology domains.
        """
        for a, plan in enumerate(self.slots[0]):
            cands = self.candidates[0][a]
            con = next(
                (
                    self.constraints[ci]
                    for ci in plan.constraints
                    if self.constraints[ci].same_value
                ),
                None,
            )
            if con is None or plan.all_mode or not cands:
                return True
            if any(isinstance(d.attributes.get(con.attribute), tuple) for d in cands):
                return True
            self.rank[0] = a
            groups: dict[Any, list[int]] = {}
            for i, d in enumerate(cands):
                v = d.attributes.get(con.attribute)
                if v is not None:
                    groups.setdefault(v, []).append(i)
            for value, members in groups.items():
                if self._group_feasible(0, con, value, cands, members):
                    self.rank[0] = 0
                    return True
                self.dead.add((a, id(con), value))
            self.failures[_R_CONSTRAINT] += 1
            self.failed_constraint = con
        self.rank[0] = 0
        return False

    def _request(self, r: int) -> bool:
        if r == len(self.slots):
            return True
        for a, plan in enumerate(self.slots[r]):
            cands = self.candidates[r][a]
            need = len(cands) if plan.all_mode else plan.count
            if not cands or len(cands) < need:
                continue
            if self.claim_results[plan.claim] + need + self.later[r] > MAX_RESULTS:
                continue  # this alternative would break the claim's limit of results
            self.rank[r] = a
            if self._pick(r, plan, cands, need, 0, 0):
                return True
        return False

    def _tick(self) -> None:
        self.ticks += 1
        if self.ticks & 31 == 0 and time.perf_counter() > self.deadline:
            raise SearchTimeout

    def _pick(
        self, r: int, plan: RequestPlan, cands: list[Device], need: int, got: int, start: int
    ) -> bool:
        if got == 0 and not plan.all_mode and plan.constraints:
            return self._pick_first(r, plan, cands, need)
        return self._pick_rest(r, plan, cands, need, got, start)

    def _pick_first(self, r: int, plan: RequestPlan, cands: list[Device], need: int) -> bool:
        """The first device of a request: honour ``matchAttribute`` by value groups.

        Candidates are narrowed to the values already fixed by earlier requests; when this
        request fixes a value, the devices of each value form a group, and a group that cannot
        hold what the constrained requests need (too few devices, too little free shared
        counters) is skipped without searching it. The order of tries is unchanged.
        """
        open_match: Constraint | None = None
        for ci in plan.constraints:
            con = self.constraints[ci]
            if not con.same_value:
                continue
            allowed = self.trackers[ci].allowed()
            if allowed is not None:
                attr = con.attribute
                cands = [d for d in cands if values_of(d.attributes.get(attr)) & allowed]
                if len(cands) < need:
                    self.failures[_R_CONSTRAINT] += 1
                    self.failed_constraint = con
                    return False
            elif open_match is None:
                open_match = con
        if open_match is None or any(
            isinstance(d.attributes.get(open_match.attribute), tuple) for d in cands
        ):
            # List attributes match by common elements, not by equal values: no value groups.
            return self._pick_rest(r, plan, cands, need, 0, 0)
        attr = open_match.attribute
        groups: dict[Any, list[int]] = {}
        for i, d in enumerate(cands):
            v = d.attributes.get(attr)
            if v is not None:
                groups.setdefault(v, []).append(i)
        verdict: dict[Any, bool] = {}
        failed: set[Any] = set()
        for i, dev in enumerate(cands):
            value = dev.attributes.get(attr)
            if value is None:
                continue
            members = groups[value]
            ok = verdict.get(value)
            if ok is None:
                memo = (self.rank[r], id(open_match), value) if r == 0 else None
                if memo is not None and memo in self.dead:
                    ok = False
                else:
                    ok = self._group_feasible(r, open_match, value, cands, members)
                    if not ok and memo is not None and self.whole_node:
                        self.dead.add(memo)
                verdict[value] = ok
                if not ok:
                    self.failures[_R_CONSTRAINT] += 1
                    self.failed_constraint = open_match
            if not ok:
                continue
            rest = [cands[j] for j in members if j > i]
            if len(rest) < need - 1:
                continue
            sig = self._signature(dev) if failed else None
            if sig is not None and sig in failed:
                continue
            self._tick()
            if self._push(dev, plan):
                if self._pick_rest(r, plan, rest, need, 1, 0):
                    return True
                self._pop(plan)
                failed.add(self._signature(dev))
        return False

    def _group_feasible(
        self, r: int, con: Constraint, value: Any, cands: list[Device], members: list[int]
    ) -> bool:
        """Can the requests under ``con`` all fit among the devices whose attribute is ``value``?

        Counts devices per request, then counter capacity: per counter family (``memorySlice0``
        .. ``memorySlice7`` are one family), what the cheapest devices of each request consume
        against what is free in the counter sets of the group.
        """
        attr = con.attribute
        union: dict[int, Device] = {}
        need_devices = 0
        need_family: dict[str, Fraction] = {}
        for rr in range(r, len(self.slots)):
            best: tuple[int, dict[str, Fraction]] | None = None
            for a, plan in enumerate(self.slots[rr]):
                if not any(self.constraints[ci] is con for ci in plan.constraints):
                    best = (0, {})  # this alternative may go elsewhere: no lower bound
                    break
                if plan.all_mode:
                    best = (0, {})
                    break
                group = (
                    [cands[j] for j in members]
                    if rr == r and a == self.rank[r]
                    else self._grouped(rr, a, attr).get(value, [])
                )
                if len(group) < plan.count:
                    continue  # this alternative cannot be served by the group
                for d in group:
                    union[d.index] = d
                floor: dict[str, Fraction] = {}
                if not plan.admin:
                    per_dev = [_families(d) for d in group if not d.allow_multiple]
                    if len(per_dev) == len(group) and per_dev:
                        for fam in per_dev[0]:
                            lo = min(f.get(fam, _ZERO) for f in per_dev)
                            if lo:
                                floor[fam] = lo * plan.count
                count = 0 if plan.admin else plan.count
                if best is None:
                    best = (count, floor)
                else:  # a lower bound over the alternatives: the least of each figure
                    best = (
                        min(count, best[0]),
                        {k: min(v, floor[k]) for k, v in best[1].items() if k in floor},
                    )
            if best is None:
                return False  # no alternative of a constrained request fits the group
            need_devices += best[0]
            for fam, v in best[1].items():
                need_family[fam] = need_family.get(fam, _ZERO) + v
        if len(union) < need_devices and not any(d.allow_multiple for d in union.values()):
            return False  # (a multi-allocatable device may serve several requests)
        if not need_family:
            return True
        total = self.state.inventory.counters
        used = self.state.counters_used
        keys: set[CounterKey] = set()
        for d in union.values():
            keys.update(k for k, _ in d.consumes)
        free: dict[str, Fraction] = {}
        for key in keys:
            fam = _family(key[3])
            free[fam] = (
                free.get(fam, _ZERO)
                + total.get(key, _ZERO)
                - used.get(key, _ZERO)
                - self.counters.get(key, _ZERO)
            )
        return all(v <= free.get(fam, _ZERO) for fam, v in need_family.items())

    def _grouped(self, r: int, a: int, attr: str) -> dict[Any, list[Device]]:
        key = (r, a, attr)
        hit = self._groups.get(key)
        if hit is None:
            hit = self._groups[key] = {}
            for d in self.candidates[r][a]:
                hit.setdefault(d.attributes.get(attr), []).append(d)
        return hit

    def _signature(self, dev: Device) -> tuple[Any, ...]:
        """What the rest of the search can tell of ``dev``: equal signatures are interchangeable."""
        sig = self._sigs.get(dev.index)
        if sig is None:
            if self._membership is None:
                self._membership = [
                    {d.index for d in alt} for per in self.candidates for alt in per
                ]
            sig = self._sigs[dev.index] = (
                dev.consumes,
                tuple(sorted(dev.capacity.items())),
                tuple(dev.attributes.get(c.attribute) for c in self.constraints),
                _watts(dev),
                dev.allow_multiple,
                tuple(sorted(self.state.capacity_used.get(dev.index, {}).items())),
                dev.node,
                tuple(dev.index in m for m in self._membership),
                tuple(sorted(str(t) for t in dev.taints)),
            )
        return sig

    def _pick_rest(
        self, r: int, plan: RequestPlan, cands: list[Device], need: int, got: int, start: int
    ) -> bool:
        if got == need:
            return self._request(r + 1)
        last = len(cands) - (need - got)
        failed: set[tuple[Any, ...]] | None = None
        for i in range(start, last + 1):
            dev = cands[i]
            if failed and self._signature(dev) in failed:
                continue  # an interchangeable device already failed in this position
            self._tick()
            if self._push(dev, plan):
                if self._pick_rest(r, plan, cands, need, got + 1, i + 1):
                    return True
                self._pop(plan)
                if not plan.all_mode:
                    if failed is None:
                        failed = set()
                    failed.add(self._signature(dev))
            if plan.all_mode:
                return False  # "All" needs every one of them; no alternative order helps
        return False

    def _push(self, dev: Device, plan: RequestPlan) -> bool:
        """Choose ``dev`` for ``plan`` if every rule allows it; False (and why, counted) if not."""
        multi = dev.allow_multiple and not plan.admin  # a share of a multi-allocatable device
        exclusive = not plan.admin and not dev.allow_multiple
        if not self._free_for(dev, plan, multi, exclusive):
            return False
        # A multi-allocatable device uses up its counters with its first share.
        charge = bool(dev.consumes) and (
            exclusive
            or (multi and not self.active.get(dev.index) and dev.index not in self.state.shares)
        )
        if charge and not self._counters_fit(dev):
            self.failures[_R_COUNTERS] += 1
            return False
        consumed = consumption(dev, plan) if plan.capacity or dev.allow_multiple else {}
        if consumed is None or (consumed and not self._capacity_fits(dev, consumed)):
            self.failures[_R_CAPACITY] += 1
            return False
        watts = _watts(dev) if exclusive else 0.0
        if watts and not self._power_fits(watts):
            return False
        values = self._constraint_values(dev, plan)
        if values is None:
            return False
        for ci, have in zip(plan.constraints, values, strict=True):
            self.trackers[ci].add(have)
        if exclusive:
            self.exclusive.add(dev.index)
        if charge:
            for key, value in dev.consumes:
                self.counters[key] = self.counters.get(key, 0) + value
        self.charged.append(charge)
        if multi:
            self.active[dev.index] = self.active.get(dev.index, 0) + 1
        if consumed and dev.allow_multiple:
            pending = self.capacity.setdefault(dev.index, {})
            for q, v in consumed.items():
                pending[q] = pending.get(q, 0) + v
        self.watts += watts
        self.claim_results[plan.claim] += 1
        self.chosen.append(
            DeviceResult(
                plan.name,
                dev,
                admin_access=plan.admin,
                consumed=consumed if dev.allow_multiple else {},
                tolerations=plan.tolerations,
                claim=plan.claim,
                share_id=str(uuid.uuid4()) if multi else None,
            )
        )
        return True

    def _free_for(self, dev: Device, plan: RequestPlan, multi: bool, exclusive: bool) -> bool:
        """Not taken in this decision in a way that excludes ``plan``, and the claim has room."""
        if not multi and any(c.device is dev and c.claim == plan.claim for c in self.chosen):
            return False  # one claim never gets the same device twice, admin access or not
        if not plan.admin and dev.index in self.exclusive:
            return False
        if exclusive and self.active.get(dev.index):
            return False  # shared in this decision already
        return self.claim_results[plan.claim] < MAX_RESULTS

    def _counters_fit(self, dev: Device) -> bool:
        total = self.state.inventory.counters
        used = self.state.counters_used
        for key, value in dev.consumes:  # a loop, not all(): this runs once per device tried
            if used.get(key, 0) + self.counters.get(key, 0) + value > total.get(key, 0):
                return False
        return True

    def _capacity_fits(self, dev: Device, consumed: dict[str, Fraction]) -> bool:
        if not (consumed and dev.allow_multiple):
            return True
        already = self.state.capacity_used.get(dev.index, {})
        pending = self.capacity.get(dev.index, {})
        for q, v in consumed.items():
            if already.get(q, 0) + pending.get(q, 0) + v > dev.capacity[q]:
                return False
        return True

    def _power_fits(self, watts: float) -> bool:
        if self.node_cap is not None and self.node_watts + self.watts + watts > self.node_cap:
            self.failures[_R_POWER] += 1
            return False
        if self.rack_cap is not None and self.rack_watts + self.watts + watts > self.rack_cap:
            self.failures[_R_RACK_POWER] += 1
            return False
        return True

    def _constraint_values(self, dev: Device, plan: RequestPlan) -> list[frozenset[Any]] | None:
        """The device's values under each constraint of ``plan``; None if one refuses it."""
        values: list[frozenset[Any]] = []
        for ci in plan.constraints:
            con = self.constraints[ci]
            have = values_of(dev.attributes.get(con.attribute))
            if not self.trackers[ci].admits(have):
                self.failures[_R_CONSTRAINT] += 1
                self.failed_constraint = con
                return None
            values.append(have)
        return values

    def _pop(self, plan: RequestPlan) -> None:
        res = self.chosen.pop()
        dev = res.device
        multi = dev.allow_multiple and not plan.admin
        for ci in plan.constraints:
            self.trackers[ci].remove(values_of(dev.attributes[self.constraints[ci].attribute]))
        if not plan.admin and not dev.allow_multiple:
            self.exclusive.discard(dev.index)
        if self.charged.pop():
            for key, value in dev.consumes:
                self.counters[key] -= value
        if multi:
            self.active[dev.index] -= 1
        if res.consumed:
            pending = self.capacity[dev.index]
            for q, v in res.consumed.items():
                pending[q] -= v
        self.claim_results[plan.claim] -= 1
        self.watts -= _watts(dev) if not plan.admin and not dev.allow_multiple else 0.0

    def reason(self, slots: list[list[RequestPlan]]) -> str:
        if self.failures[_R_CONSTRAINT] and self.failed_constraint is not None:
            return self.failed_constraint.reason()
        if self.failures[_R_RACK_POWER]:
            return "would exceed its rack's power cap"
        if self.failures[_R_POWER]:
            return "would exceed its power cap"
        if self.failures[_R_COUNTERS]:
            return counters_reason(slots[0][0])
        if self.failures[_R_CAPACITY]:
            return f"had no device with enough free capacity for request {slots[0][0].name}"
        return "could not fit all requests of the claim together"


# Counter amounts are ints when whole (see ``_inventory._amount``); int arithmetic is fast.
_ZERO: Any = 0


def _family(counter: str) -> str:
    """Counters that differ only by a trailing number (``memorySlice3``) are summed together."""
    return counter.rstrip("0123456789") or counter


def _families(dev: Device) -> dict[str, Fraction]:
    """What ``dev`` consumes per counter family (cached on the device)."""
    hit = dev.counter_families
    if hit is None:
        hit = {}
        for key, value in dev.consumes:
            fam = _family(key[3])
            hit[fam] = hit.get(fam, 0) + value
        dev.counter_families = hit
    return hit


def _packed(cands: list[Device], state: AllocatedState) -> list[Device]:
    """Devices on already-used accelerators and domains first (keeps whole ones whole)."""
    used = state.physical_used
    domain_used: dict[Any, float] = {}
    attr = TOPOLOGY_LEVELS[0]
    for d in cands:
        domain_used.setdefault(d.attributes.get(attr), 0.0)
    for d in cands:
        if used.get(d.physical):
            domain_used[d.attributes.get(attr)] += used[d.physical]
    return sorted(
        cands,
        key=lambda d: (
            -used.get(d.physical, 0.0),
            -domain_used[d.attributes.get(attr)],
            d.units,
            d.index,
        ),
    )


def _restricted(cands: list[list[list[Device]]], attr: str, value: Any) -> list[list[list[Device]]]:
    return [[[d for d in alt if d.attributes.get(attr) == value] for alt in per] for per in cands]


def search_node(whole: NodeSearch, policy: Policy) -> tuple[NodeSearch, bool]:
    """Run ``whole`` (the search over the whole node) the way ``policy`` wants: with
    ``topology_first``, inside each topology domain that may hold the claim first, tightest level
    and fullest domain first. Returns the search that decided, and whether it found devices."""
    node, slots, constraints = whole.node, whole.slots, whole.constraints
    cands, state, deadline = whole.candidates, whole.state, whole.deadline
    total_needed = sum(min(p.count for p in alts) for alts in slots)
    if policy.topology_first and total_needed > 1 and not whole.precheck():
        return whole, False  # no value group of a matchAttribute can hold the claim
    if policy.pack_devices:
        # Ordered only once the node passed the cheap checks.
        cands = [[_packed(alt, state) if len(alt) > 1 else alt for alt in per] for per in cands]
        whole.candidates = cands
    if policy.topology_first and total_needed > 1:
        # Tightest domain first; inside one level, the fullest domain that may fit first.
        for attr in TOPOLOGY_LEVELS:
            values: dict[Any, int] = {}
            for per in cands:
                for d in per[0]:
                    v = d.attributes.get(attr)
                    if v is not None:
                        values[v] = values.get(v, 0) + 1
            if len(values) <= 1:
                continue
            for v, n in sorted(values.items(), key=lambda kv: kv[1]):
                if n < total_needed:
                    continue
                search = NodeSearch(
                    node, slots, constraints, _restricted(cands, attr, v), state, deadline
                )
                search.whole_node = False
                search.dead = whole.dead
                search.ticks = whole.ticks
                if search.solve():
                    return search, True
                whole.ticks = search.ticks
    return whole, whole.solve()


def counters_reason(plan: RequestPlan) -> str:
    return f"had no free partition for request {plan.name} (shared counters in use)"
