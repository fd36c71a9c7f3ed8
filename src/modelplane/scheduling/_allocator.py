"""``allocate``: one claim, one decision, with ``resource.k8s.io/v1`` semantics.

The decision visits nodes (all of them, or those ``Policy.nodes_to_find`` needs), and on each
node runs a bounded search:

1. cheap infeasibility checks first: the node has devices matching every request's selectors
   (from the per-selector index), enough free accelerator units, enough free matching devices
   once in-use, tainted and counter-starved devices are dropped;
2. then a depth-first search over combinations (never permutations) of candidate devices that
   honours ``matchAttribute``/``distinctAttribute`` constraints, shared counters, consumable
   capacity and power caps, trying ``firstAvailable`` alternatives in order;
3. with ``topology_first``, the search is run inside one PCIe root / NUMA node / NVLink domain
   first, the fullest fitting domain first.

Every decision has a hard time bound (``deadline_ms``): running out is reported as
"gave up after N ms", never as impossible. When nothing fits, the reason is aggregated over the
nodes the way kube-scheduler does.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ._cel import CelCompileError, compile_selector
from ._inventory import (
    CounterKey,
    Device,
    Inventory,
    MatchingTimeout,
    SchedulingInputError,
    _SelectorFailure,
)
from ._quantity import QuantityError, format_quantity, parse_quantity
from ._scoring import TOPOLOGY_LEVELS, Placement, Policy, policy_named
from ._state import AllocatedState, _watts

__all__ = ["AllocationResult", "DeviceResult", "Unschedulable", "allocate"]


@dataclass(slots=True)
class DeviceResult:
    """One allocated device, as in ``status.allocation.devices.results[]``."""

    request: str
    device: Device
    admin_access: bool = False
    consumed: dict[str, Fraction] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request": self.request,
            "driver": self.device.driver,
            "pool": self.device.pool,
            "device": self.device.name,
        }
        if self.admin_access:
            out["adminAccess"] = True
        if self.tolerations:
            out["tolerations"] = self.tolerations
        if self.consumed:
            out["consumedCapacity"] = {k: format_quantity(v) for k, v in self.consumed.items()}
        return out


@dataclass(slots=True)
class AllocationResult:
    """A successful decision: the node and the devices, per request."""

    claim: str
    node: str
    devices: list[DeviceResult]
    elapsed_ms: float
    nodes_evaluated: int

    @property
    def results(self) -> list[dict[str, Any]]:
        return [d.to_dict() for d in self.devices]

    def to_status(self) -> dict[str, Any]:
        """The claim's ``status`` as Kubernetes writes it (``allocation.devices.results``)."""
        allocation: dict[str, Any] = {"devices": {"results": self.results}}
        if self.node:
            allocation["nodeSelector"] = {
                "nodeSelectorTerms": [
                    {
                        "matchFields": [
                            {"key": "metadata.name", "operator": "In", "values": [self.node]}
                        ]
                    }
                ]
            }
        return {"allocation": allocation}


@dataclass(slots=True)
class Unschedulable:
    """No placement. ``reason`` reads like kube-scheduler's; ``timed_out`` means "gave up"."""

    claim: str
    reason: str
    nodes_total: int
    reasons: dict[str, int] = field(default_factory=dict)
    timed_out: bool = False
    invalid: bool = False
    elapsed_ms: float = 0.0

    def __bool__(self) -> bool:  # so that ``if result:`` reads as "allocated"
        return False


# --------------------------------------------------------------------------------------------
# the claim, resolved


@dataclass(slots=True)
class _Plan:
    """One request or subrequest, resolved against the classes."""

    name: str  # "gpu" or "gpu/large"
    base: str
    sub: str
    expressions: tuple[str, ...]
    all_mode: bool
    count: int
    admin: bool
    tolerations: list[dict[str, Any]]
    capacity: dict[str, Fraction]
    constraints: list[int] = field(default_factory=list)
    index: dict[str, list[Device]] = field(default_factory=dict)
    min_units: float = 1.0


@dataclass(slots=True)
class _Constraint:
    match: bool
    attribute: str
    requests: frozenset[str]
    needed: int = 0


class _Invalid(Exception):
    pass


def _claim_key(claim: Mapping[str, Any]) -> str:
    meta = claim.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def _plans(
    claim: Mapping[str, Any], inv: Inventory, key: str, deadline: float | None = None
) -> tuple[list[list[_Plan]], list[_Constraint]]:
    spec = (claim.get("spec") or {}).get("devices") or {}
    requests = spec.get("requests") or []
    if not requests:
        raise _Invalid(f"claim {key}: spec.devices.requests is empty; add at least one request")
    slots: list[list[_Plan]] = []
    for i, req in enumerate(requests):
        name = req.get("name")
        if not name:
            raise _Invalid(f"claim {key}: spec.devices.requests[{i}].name is required")
        if req.get("exactly") and req.get("firstAvailable"):
            raise _Invalid(
                f"claim {key}, request {name}: set exactly one of exactly or firstAvailable"
            )
        if req.get("exactly"):
            where = f"requests[{i}].exactly"
            slots.append([_plan(req["exactly"], name, "", inv, key, where, deadline)])
        elif req.get("firstAvailable"):
            alts = []
            for j, sub in enumerate(req["firstAvailable"]):
                if not sub.get("name"):
                    raise _Invalid(
                        f"claim {key}, request {name}: firstAvailable[{j}].name is required"
                    )
                where = f"requests[{i}].firstAvailable[{j}]"
                alts.append(_plan(sub, name, sub["name"], inv, key, where, deadline))
            slots.append(alts)
        else:
            raise _Invalid(
                f"claim {key}, request {name}: set spec.devices.requests[{i}].exactly "
                "or .firstAvailable"
            )
    constraints: list[_Constraint] = []
    for i, c in enumerate(spec.get("constraints") or ()):
        attr = c.get("matchAttribute") or c.get("distinctAttribute")
        if not attr or "/" not in attr:
            raise _Invalid(
                f"claim {key}: spec.devices.constraints[{i}] needs matchAttribute or "
                "distinctAttribute with a fully qualified name such as "
                "resource.kubernetes.io/pcieRoot"
            )
        con = _Constraint("matchAttribute" in c, attr, frozenset(c.get("requests") or ()))
        constraints.append(con)
        for alts in slots:
            for p in alts:
                if not con.requests or p.base in con.requests or p.name in con.requests:
                    p.constraints.append(len(constraints) - 1)
    for con in constraints:
        con.needed = sum(
            min(p.count for p in alts)
            for alts in slots
            if any(
                not con.requests or p.base in con.requests or p.name in con.requests for p in alts
            )
        )
    return slots, constraints


def _plan(
    r: Mapping[str, Any],
    base: str,
    sub: str,
    inv: Inventory,
    key: str,
    where: str,
    deadline: float | None = None,
) -> _Plan:
    name = f"{base}/{sub}" if sub else base
    cls_name = r.get("deviceClassName")
    if not cls_name:
        raise _Invalid(f"claim {key}, request {name}: {where}.deviceClassName is required")
    cls = inv.classes.get(cls_name)
    if cls is None:
        raise _Invalid(f"claim {key}, request {name}: device class {cls_name!r} does not exist")
    exprs: list[tuple[str, str]] = []
    for j, s in enumerate((cls.get("spec") or {}).get("selectors") or ()):
        e = (s.get("cel") or {}).get("expression")
        if not e:
            raise _Invalid(f"class {cls_name}: spec.selectors[{j}].cel.expression is empty")
        exprs.append((e, f"class {cls_name}: selector #{j}"))
    for j, s in enumerate(r.get("selectors") or ()):
        e = (s.get("cel") or {}).get("expression")
        if not e:
            raise _Invalid(f"claim {key}, request {name}: selector #{j}: cel.expression is empty")
        exprs.append((e, f"claim {key}, request {name}: selector #{j}"))
    for e, who in exprs:
        try:
            compile_selector(e)
        except CelCompileError as exc:
            raise _Invalid(f"{who}: CEL compile error in {e!r}: {exc}") from None
    mode = r.get("allocationMode") or "ExactCount"
    if mode not in ("ExactCount", "All"):
        raise _Invalid(
            f"claim {key}, request {name}: unsupported allocationMode {mode!r} (ExactCount or All)"
        )
    count = int(r.get("count") or 1)
    if count < 1:
        raise _Invalid(f"claim {key}, request {name}: count must be at least 1")
    capacity: dict[str, Fraction] = {}
    for cname, v in ((r.get("capacity") or {}).get("requests") or {}).items():
        try:
            capacity[cname] = parse_quantity(v)
        except QuantityError as exc:
            raise _Invalid(
                f"claim {key}, request {name}: capacity.requests[{cname}]: {exc}"
            ) from None
    plan = _Plan(
        name=name,
        base=base,
        sub=sub,
        expressions=tuple(e for e, _ in exprs),
        all_mode=mode == "All",
        count=count,
        admin=bool(r.get("adminAccess")),
        tolerations=list(r.get("tolerations") or ()),
        capacity=capacity,
    )
    try:
        plan.index = inv.matching(plan.expressions, deadline)
    except _SelectorFailure as f:
        who = next(w for e, w in exprs if e == f.expression)
        d = f.device
        raise _Invalid(
            f"{who}: CEL runtime error in {f.expression!r} on device {d.name} "
            f"(driver {d.driver}, pool {d.pool}): {f.message}"
        ) from None
    plan.min_units = inv.min_units(plan.expressions)
    return plan


# --------------------------------------------------------------------------------------------
# taints, capacity


def _tolerates(tol: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    if tol.get("effect") and tol["effect"] != taint.get("effect"):
        return False
    op = tol.get("operator") or "Equal"
    if not tol.get("key"):
        return op == "Exists"
    if tol["key"] != taint.get("key"):
        return False
    return op == "Exists" or tol.get("value", "") == taint.get("value", "")


def _untolerated(dev: Device, plan: _Plan) -> dict[str, Any] | None:
    for taint in dev.taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in plan.tolerations):
            return taint
    return None


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


def _consumption(dev: Device, plan: _Plan) -> dict[str, Fraction] | None:
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
    for q, total in dev.capacity.items():
        policy = dev.request_policies.get(q) or {}
        if q in requested:
            rounded = _round_up(requested[q], policy) if policy else requested[q]
            if rounded is None:
                return None
            value = rounded
        else:
            value = parse_quantity(policy["default"]) if policy.get("default") else total
        consumed[q] = value
    return consumed


# --------------------------------------------------------------------------------------------
# the per-node search


class _Timeout(Exception):
    pass


_R_CONSTRAINT, _R_COUNTERS, _R_CAPACITY, _R_POWER, _R_RACK_POWER = range(5)


class _NodeSearch:
    """Depth-first search for one node; state is pushed and popped as devices are tried."""

    def __init__(
        self,
        node: str,
        slots: list[list[_Plan]],
        constraints: list[_Constraint],
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
        self.match_values: list[Any] = [None] * len(constraints)
        self.match_count = [0] * len(constraints)
        self.distinct: list[Counter[Any]] = [Counter() for _ in constraints]
        self.watts = 0.0
        self.rank: list[int] = [0] * len(slots)
        self.failures: Counter[int] = Counter()
        self.failed_constraint: _Constraint | None = None
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
                (self.constraints[ci] for ci in plan.constraints if self.constraints[ci].match),
                None,
            )
            if con is None or plan.all_mode or not cands:
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
            self.rank[r] = a
            if self._pick(r, plan, cands, need, 0, 0):
                return True
        return False

    def _tick(self) -> None:
        self.ticks += 1
        if self.ticks & 31 == 0 and time.perf_counter() > self.deadline:
            raise _Timeout

    def _pick(
        self, r: int, plan: _Plan, cands: list[Device], need: int, got: int, start: int
    ) -> bool:
        if got == 0 and not plan.all_mode and plan.constraints:
            return self._pick_first(r, plan, cands, need)
        return self._pick_rest(r, plan, cands, need, got, start)

    def _pick_first(self, r: int, plan: _Plan, cands: list[Device], need: int) -> bool:
        """The first device of a request: honour ``matchAttribute`` by value groups.

        Candidates are narrowed to the values already fixed by earlier requests; when this
        request fixes a value, the devices of each value form a group, and a group that cannot
        hold what the constrained requests need (too few devices, too little free shared
        counters) is skipped without searching it. The order of tries is unchanged.
        """
        open_match: _Constraint | None = None
        for ci in plan.constraints:
            con = self.constraints[ci]
            if not con.match:
                continue
            if self.match_count[ci]:
                value = self.match_values[ci]
                attr = con.attribute
                cands = [d for d in cands if d.attributes.get(attr) == value]
                if len(cands) < need:
                    self.failures[_R_CONSTRAINT] += 1
                    self.failed_constraint = con
                    return False
            elif open_match is None:
                open_match = con
        if open_match is None:
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
            self._tick()
            sig = self._signature(dev) if failed else None
            if sig is not None and sig in failed:
                continue
            if self._push(dev, plan):
                if self._pick_rest(r, plan, rest, need, 1, 0):
                    return True
                self._pop(plan)
                failed.add(self._signature(dev))
        return False

    def _group_feasible(
        self, r: int, con: _Constraint, value: Any, cands: list[Device], members: list[int]
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
        if len(union) < need_devices:
            return False
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
        self, r: int, plan: _Plan, cands: list[Device], need: int, got: int, start: int
    ) -> bool:
        if got == need:
            return self._request(r + 1)
        last = len(cands) - (need - got)
        failed: set[tuple[Any, ...]] | None = None
        for i in range(start, last + 1):
            self._tick()
            dev = cands[i]
            if failed and self._signature(dev) in failed:
                continue  # an interchangeable device already failed in this position
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

    def _push(self, dev: Device, plan: _Plan) -> bool:
        exclusive = not plan.admin and not dev.allow_multiple
        if dev.index in self.exclusive or (exclusive and any(c.device is dev for c in self.chosen)):
            return False
        if exclusive and dev.consumes:
            total = self.state.inventory.counters
            used = self.state.counters_used
            for key, value in dev.consumes:
                if used.get(key, 0) + self.counters.get(key, 0) + value > total.get(key, 0):
                    self.failures[_R_COUNTERS] += 1
                    return False
        consumed = _consumption(dev, plan) if plan.capacity or dev.allow_multiple else {}
        if consumed is None:
            self.failures[_R_CAPACITY] += 1
            return False
        if consumed and dev.allow_multiple:
            already = self.state.capacity_used.get(dev.index, {})
            pending = self.capacity.get(dev.index, {})
            for q, v in consumed.items():
                if already.get(q, 0) + pending.get(q, 0) + v > dev.capacity[q]:
                    self.failures[_R_CAPACITY] += 1
                    return False
        watts = _watts(dev) if exclusive else 0.0
        if watts:
            if self.node_cap is not None and self.node_watts + self.watts + watts > self.node_cap:
                self.failures[_R_POWER] += 1
                return False
            if self.rack_cap is not None and self.rack_watts + self.watts + watts > self.rack_cap:
                self.failures[_R_RACK_POWER] += 1
                return False
        for ci in plan.constraints:
            con = self.constraints[ci]
            attr = dev.attributes.get(con.attribute)
            ok = attr is not None and (
                (self.match_count[ci] == 0 or attr == self.match_values[ci])
                if con.match
                else self.distinct[ci][attr] == 0
            )
            if not ok:
                self.failures[_R_CONSTRAINT] += 1
                self.failed_constraint = con
                return False
        for ci in plan.constraints:
            con = self.constraints[ci]
            value = dev.attributes[con.attribute]
            if con.match:
                self.match_values[ci] = value
                self.match_count[ci] += 1
            else:
                self.distinct[ci][value] += 1
        if exclusive:
            self.exclusive.add(dev.index)
            for key, value in dev.consumes:
                self.counters[key] = self.counters.get(key, 0) + value
        if consumed and dev.allow_multiple:
            pending = self.capacity.setdefault(dev.index, {})
            for q, v in consumed.items():
                pending[q] = pending.get(q, 0) + v
        self.watts += watts
        self.chosen.append(
            DeviceResult(
                plan.name,
                dev,
                admin_access=plan.admin,
                consumed=consumed if dev.allow_multiple else {},
                tolerations=plan.tolerations if dev.taints else [],
            )
        )
        return True

    def _pop(self, plan: _Plan) -> None:
        res = self.chosen.pop()
        dev = res.device
        for ci in plan.constraints:
            con = self.constraints[ci]
            value = dev.attributes[con.attribute]
            if con.match:
                self.match_count[ci] -= 1
            else:
                self.distinct[ci][value] -= 1
        if dev.index in self.exclusive and not plan.admin and not dev.allow_multiple:
            self.exclusive.discard(dev.index)
            for key, value in dev.consumes:
                self.counters[key] -= value
        if res.consumed:
            pending = self.capacity[dev.index]
            for q, v in res.consumed.items():
                pending[q] -= v
        self.watts -= _watts(dev) if not plan.admin and not dev.allow_multiple else 0.0

    def reason(self, slots: list[list[_Plan]]) -> str:
        if self.failures[_R_CONSTRAINT] and self.failed_constraint is not None:
            con = self.failed_constraint
            how = "the same" if con.match else "distinct"
            return f"had no {con.needed} devices with {how} {con.attribute}"
        if self.failures[_R_RACK_POWER]:
            return "would exceed its rack's power cap"
        if self.failures[_R_POWER]:
            return "would exceed its power cap"
        if self.failures[_R_COUNTERS]:
            return _counters_reason(slots[0][0])
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


# --------------------------------------------------------------------------------------------
# the decision


def _candidates(
    node: str, slots: list[list[_Plan]], state: AllocatedState, policy: Policy
) -> tuple[list[list[list[Device]]], str | None]:
    """Free, tolerated, counter-feasible matching devices per (request, alternative)."""
    out: list[list[list[Device]]] = []
    in_use = state.in_use
    counters_used = state.counters_used
    counters_total = state.inventory.counters
    for alts in slots:
        per_alt: list[list[Device]] = []
        reason: str | None = None
        for plan in alts:
            devs = plan.index.get(node, [])
            shared = plan.index.get("", [])
            if shared:
                devs = devs + shared
            if not devs:
                reason = reason or f"had no device matching the selectors of request {plan.name}"
                per_alt.append([])
                continue
            cands: list[Device] = []
            tainted = starved = 0
            for d in devs:
                if d.taints and _untolerated(d, plan) is not None:
                    tainted += 1
                    continue
                if plan.all_mode or plan.admin or d.allow_multiple:
                    cands.append(d)  # "All": in-use ones make the request fail below
                    continue
                if d.index in in_use:
                    continue
                if d.consumes:
                    for ckey, value in d.consumes:
                        if counters_used.get(ckey, 0) + value > counters_total.get(ckey, -1):
                            break
                    else:
                        cands.append(d)
                        continue
                    starved += 1
                    continue
                cands.append(d)
            if plan.all_mode and not plan.admin and any(d.index in in_use for d in cands):
                reason = reason or f"had devices of request {plan.name} (allocationMode All) in use"
                per_alt.append([])
                continue
            if not cands or (not plan.all_mode and len(cands) < plan.count):
                if tainted and tainted + len(cands) >= plan.count:
                    why = f"had devices for request {plan.name} only with untolerated taints"
                elif starved:
                    why = _counters_reason(plan)
                else:
                    why = f"had fewer than {plan.count} free devices matching request {plan.name}"
                reason = reason or why
                per_alt.append([])
                continue
            per_alt.append(cands)
        if not any(per_alt):
            return [], reason
        out.append(per_alt)
    return out, None


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


def _search_node(
    node: str,
    slots: list[list[_Plan]],
    constraints: list[_Constraint],
    cands: list[list[list[Device]]],
    state: AllocatedState,
    policy: Policy,
    deadline: float,
) -> tuple[_NodeSearch, bool]:
    total_needed = sum(min(p.count for p in alts) for alts in slots)
    whole = _NodeSearch(node, slots, constraints, cands, state, deadline)
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
                search = _NodeSearch(
                    node, slots, constraints, _restricted(cands, attr, v), state, deadline
                )
                search.whole_node = False
                search.dead = whole.dead
                search.ticks = whole.ticks
                if search.solve():
                    return search, True
                whole.ticks = search.ticks
    return whole, whole.solve()


def allocate(
    claim: Mapping[str, Any],
    slices: Inventory | Iterable[Mapping[str, Any]],
    classes: Iterable[Mapping[str, Any]] = (),
    allocated_state: AllocatedState | Iterable[Mapping[str, Any]] | None = None,
    node: str | None = None,
    deadline_ms: float = 50.0,
    policy: Policy | str = "modelplane",
) -> AllocationResult | Unschedulable:
    """Find devices for ``claim`` (a ResourceClaim dict) or say why there are none.

    ``slices`` is either a prebuilt :class:`Inventory` (fast: selector matches are cached in it)
    or ResourceSlice dicts, in which case ``classes`` are the DeviceClass dicts.
    ``allocated_state`` is an :class:`AllocatedState` for that inventory or the already-allocated
    ResourceClaims. ``node`` restricts the decision to one node. The state is not changed:
    record a result with ``AllocatedState.add``.

    Returns an :class:`AllocationResult` (``to_status()`` gives the Kubernetes status shape) or
    an :class:`Unschedulable` whose ``reason`` explains, per node, why not; ``timed_out`` tells
    "gave up after N ms" apart from "impossible", ``invalid`` a claim that can never work
    (unknown class, CEL errors: the message names the class or claim and the expression).
    """
    start = time.perf_counter()
    inv = slices if isinstance(slices, Inventory) else Inventory.from_objects(slices, classes)
    if allocated_state is None:
        state = AllocatedState(inv)
    elif isinstance(allocated_state, AllocatedState):
        state = allocated_state
    else:
        state = AllocatedState.from_claims(inv, allocated_state)
    pol = policy_named(policy) if isinstance(policy, str) else policy
    key = _claim_key(claim)
    nodes_all = list(inv.nodes) if node is None else [node]
    total = len(nodes_all)

    def elapsed() -> float:
        return (time.perf_counter() - start) * 1000.0

    # The bound covers all the work of the decision from here on: matching selectors against
    # the inventory (its progress is kept in the inventory, so a retry continues where this
    # one stopped), the node loop and the search on each node.
    deadline = start + deadline_ms / 1000.0
    try:
        slots, constraints = _plans(claim, inv, key, deadline)
    except (_Invalid, SchedulingInputError) as exc:
        return Unschedulable(key, str(exc), total, invalid=True, elapsed_ms=elapsed())
    except MatchingTimeout as exc:
        ms = elapsed()
        gave_up = (
            f"were not evaluated (gave up after {ms:.0f} ms matching selectors: "
            f"{exc.done} of {exc.total} devices checked; a retry continues from there)"
        )
        return Unschedulable(
            key, _message(total, {gave_up: total}), total, {gave_up: total}, True, False, ms
        )
    for alts in slots:
        if all(not p.index for p in alts):
            # Cheap: no device anywhere matches this request; no node needs a visit.
            none = f"had no device matching the selectors of request {alts[0].name}"
            return Unschedulable(
                key, _message(total, {none: total}), total, {none: total}, False, False, elapsed()
            )

    min_units = sum(
        min(p.count * p.min_units for p in alts if not p.admin)
        if not any(p.admin for p in alts)
        else 0.0
        for alts in slots
    )
    order, too_full = _node_order(
        inv, nodes_all, state, pol, 0.0 if inv.shared else min_units, node is not None
    )
    pruned: list[str] = []
    to_find = pol.feasible_to_find(total)
    found: list[tuple[Placement, list[DeviceResult]]] = []
    reasons: Counter[str] = Counter()
    evaluated = 0
    timed_out = False
    for n in order:
        if len(found) >= to_find:
            break
        if time.perf_counter() > deadline:
            timed_out = True
            break
        evaluated += 1
        info = inv.nodes.get(n)
        free_units = (info.units if info else 0.0) - state.node_units.get(n, 0.0)
        if min_units and free_units + 1e-9 < min_units and not inv.shared:
            pruned.append(n)  # explained only if the claim ends up unschedulable
            continue
        cands, why = _candidates(n, slots, state, pol)
        if why is not None:
            reasons[why] += 1
            continue
        try:
            search, ok = _search_node(n, slots, constraints, cands, state, pol, deadline)
        except _Timeout:
            timed_out = True
            break
        if not ok:
            reasons[search.reason(slots)] += 1
            continue
        units = sum(
            r.device.units
            for r in search.chosen
            if not r.admin_access and not r.device.allow_multiple
        )
        placement = Placement(n, [r.device for r in search.chosen], units, tuple(search.rank))
        found.append((placement, list(search.chosen)))
    if pol.node_order == "rotate" and total:
        pol._next_start = (pol._next_start + evaluated) % total
    if not found:
        pruned.extend(too_full())
        for n in pruned:
            reasons[_short_reason(n, slots, inv)] += 1
        ms = elapsed()
        if timed_out:
            reasons[f"were not evaluated (gave up after {ms:.0f} ms)"] += total - sum(
                reasons.values()
            )
        return Unschedulable(
            key, _message(total, reasons), total, dict(reasons), timed_out, False, ms
        )
    best = pol.rank([p for p, _ in found], inv, state)
    placement, chosen = found[best]
    mix = pol.fragmentation_mix()
    if mix is not None:
        mix.observe(max(placement.units, 1e-3))
    return AllocationResult(key, placement.node, chosen, elapsed(), evaluated)


def _short_reason(node: str, slots: list[list[_Plan]], inv: Inventory) -> str:
    """Why a node without enough free accelerator units fails, without searching it."""
    for alts in slots:
        plan = alts[0]
        accelerators, partitioned = inv.node_profile(plan.expressions).get(node, (0, False))
        if not accelerators:
            return f"had no device matching the selectors of request {plan.name}"
        if accelerators < plan.count:
            break
        if partitioned:
            return _counters_reason(plan)
    else:
        plan = slots[0][0]
    return f"had fewer than {plan.count} free devices matching request {plan.name}"


def _counters_reason(plan: _Plan) -> str:
    return f"had no free partition for request {plan.name} (shared counters in use)"


def _node_order(
    inv: Inventory,
    nodes: Sequence[str],
    state: AllocatedState,
    policy: Policy,
    min_units: float,
    restricted: bool,
) -> tuple[Iterable[str], Callable[[], list[str]]]:
    """Nodes to visit in order (lazily), and a function giving those too full to hold ``min_units``.

    ``most-allocated`` reads the state's index of nodes by free units: fullest first, starting at
    the first node that still has room (best fit), without sorting the cluster per decision.
    """
    if len(nodes) <= 1:
        return nodes, list
    if policy.node_order == "most-allocated":
        if not restricted and inv.nodes is state.inventory.nodes:
            cut, index = state.nodes_by_free(min_units)
            return state.iter_nodes_by_free(min_units), lambda: [n for _, n in index[:cut]]
        # A view of some nodes (a rack, a block): few nodes, sort them.
        by_free = sorted((state.free_units(n), n) for n in nodes)
        cut = bisect.bisect_left(by_free, (min_units - 1e-9, ""))
        return [n for _, n in by_free[cut:]], lambda: [n for _, n in by_free[:cut]]
    k = policy._next_start % len(nodes)
    return list(nodes[k:]) + list(nodes[:k]), list


def _message(total: int, reasons: Mapping[str, int]) -> str:
    parts = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    detail = ", ".join(f"{n} {r}" for r, n in parts)
    return (
        f"0/{total} nodes are available: {detail}." if detail else f"0/{total} nodes are available."
    )
