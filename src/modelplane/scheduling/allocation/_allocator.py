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
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from modelplane.api import QuantityError, parse_quantity

from .._errors import CelCompileError, MatchingTimeout, SchedulingInputError
from ._cel import compile_selector
from ._inventory import CounterKey, Device, Inventory
from ._results import AllocationResult, DeviceResult
from ._scoring import TOPOLOGY_LEVELS, Placement, Policy, policy_named
from ._state import AllocatedState, _watts

__all__ = ["AllocationResult", "DeviceResult", "Unschedulable", "allocate", "allocate_many"]

#: Kubernetes' ``AllocationResultsMaxSize``: at most this many devices per claim.
MAX_RESULTS = 128


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
    steps: int = 0  # as :attr:`AllocationResult.steps`

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
    claim: int = 0
    class_name: str = ""
    sources: dict[str, str] = field(default_factory=dict)  # expression -> where it comes from


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
    claims: Sequence[tuple[Mapping[str, Any], str]],
    inv: Inventory,
    deadline: float | None = None,
) -> tuple[list[list[_Plan]], list[_Constraint]]:
    """Requests of every claim (in order), resolved; constraints stay within their claim."""
    slots: list[list[_Plan]] = []
    constraints: list[_Constraint] = []
    for ci, (claim, key) in enumerate(claims):
        own, own_constraints = _claim_plans(claim, inv, key, ci, len(constraints), deadline)
        slots.extend(own)
        constraints.extend(own_constraints)
    return slots, constraints


def _claim_plans(
    claim: Mapping[str, Any],
    inv: Inventory,
    key: str,
    claim_index: int,
    offset: int,
    deadline: float | None,
) -> tuple[list[list[_Plan]], list[_Constraint]]:
    spec = (claim.get("spec") or {}).get("devices") or {}
    requests = spec.get("requests") or []
    if not requests:
        raise _Invalid(f"claim {key}: spec.devices.requests is empty; add at least one request")
    slots: list[list[_Plan]] = []
    least = 0  # the fewest devices the claim can be served with
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
            plan = _plan(req["exactly"], name, "", inv, key, where, deadline)
            if plan.count > MAX_RESULTS:
                raise _Invalid(
                    f"claim {key}, request {name}: asks for {plan.count} devices, which exceeds "
                    f"the claim limit of {MAX_RESULTS}; split it over several claims"
                )
            alts = [plan]
        elif req.get("firstAvailable"):
            alts = []
            for j, sub in enumerate(req["firstAvailable"]):
                if not sub.get("name"):
                    raise _Invalid(
                        f"claim {key}, request {name}: firstAvailable[{j}].name is required"
                    )
                where = f"requests[{i}].firstAvailable[{j}]"
                alt = _plan(sub, name, sub["name"], inv, key, where, deadline)
                if alt.count <= MAX_RESULTS:  # an alternative that can never fit is skipped
                    alts.append(alt)
            if not alts:
                raise _Invalid(
                    f"claim {key}, request {name}: every firstAvailable alternative exceeds the "
                    f"claim limit of {MAX_RESULTS} devices"
                )
        else:
            raise _Invalid(
                f"claim {key}, request {name}: set spec.devices.requests[{i}].exactly "
                "or .firstAvailable"
            )
        for p in alts:
            p.claim = claim_index
        least += min(0 if p.all_mode else p.count for p in alts)
        slots.append(alts)
    if least > MAX_RESULTS:
        raise _Invalid(
            f"claim {key}: asks for at least {least} devices, which exceeds the claim limit of "
            f"{MAX_RESULTS}; split it over several claims"
        )
    constraints: list[_Constraint] = []
    for i, c in enumerate(spec.get("constraints") or ()):
        attr = c.get("matchAttribute") or c.get("distinctAttribute")
        if not attr or "/" not in attr:
            raise _Invalid(
                f"claim {key}: spec.devices.constraints[{i}] needs matchAttribute or "
                "distinctAttribute with a fully qualified name such as "
                "resource.kubernetes.io/pcieRoot (empty constraint: unsupported constraint type?)"
            )
        con = _Constraint("matchAttribute" in c, attr, frozenset(c.get("requests") or ()))
        constraints.append(con)
        for alts in slots:
            for p in alts:
                if not con.requests or p.base in con.requests or p.name in con.requests:
                    p.constraints.append(offset + len(constraints) - 1)
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
        raise _Invalid(
            f"claim {key}, request {name}: {where}.deviceClassName is required "
            "(missing device class name)"
        )
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
        class_name=str(cls_name),
        sources={e: who for e, who in reversed(exprs)},
    )
    if plan.all_mode and r.get("count"):
        plan.count = 1  # ``count`` means nothing with allocationMode All
    plan.index = inv.matching(plan.expressions, deadline)
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
        # Values a matchAttribute still allows (list attributes: what all chosen devices share).
        self.match_sets: list[list[frozenset[Any]]] = [[] for _ in constraints]
        self.distinct: list[Counter[Any]] = [Counter() for _ in constraints]
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
                allowed = self.match_sets[ci][-1]
                attr = con.attribute
                cands = [d for d in cands if _values(d.attributes.get(attr)) & allowed]
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
        self, r: int, plan: _Plan, cands: list[Device], need: int, got: int, start: int
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

    def _push(self, dev: Device, plan: _Plan) -> bool:
        multi = dev.allow_multiple and not plan.admin  # a share of a multi-allocatable device
        exclusive = not plan.admin and not dev.allow_multiple
        if not multi and any(c.device is dev and c.claim == plan.claim for c in self.chosen):
            return False  # one claim never gets the same device twice, admin access or not
        if not plan.admin and dev.index in self.exclusive:
            return False
        if exclusive and self.active.get(dev.index):
            return False  # shared in this decision already
        if self.claim_results[plan.claim] >= MAX_RESULTS:
            return False
        # A multi-allocatable device uses up its counters with its first share.
        charge = bool(dev.consumes) and (
            exclusive
            or (multi and not self.active.get(dev.index) and dev.index not in self.state.shares)
        )
        if charge:
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
        values: list[frozenset[Any]] = []
        for ci in plan.constraints:
            con = self.constraints[ci]
            have = _values(dev.attributes.get(con.attribute))
            if con.match:
                fixed = self.match_sets[ci]
                ok = bool(have) and (not fixed or bool(fixed[-1] & have))
            else:
                ok = bool(have) and not any(self.distinct[ci][v] for v in have)
            if not ok:
                self.failures[_R_CONSTRAINT] += 1
                self.failed_constraint = con
                return False
            values.append(have)
        for ci, have in zip(plan.constraints, values, strict=True):
            if self.constraints[ci].match:
                fixed = self.match_sets[ci]
                fixed.append(fixed[-1] & have if fixed else have)
                self.match_values[ci] = dev.attributes.get(self.constraints[ci].attribute)
                self.match_count[ci] += 1
            else:
                for v in have:
                    self.distinct[ci][v] += 1
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

    def _pop(self, plan: _Plan) -> None:
        res = self.chosen.pop()
        dev = res.device
        multi = dev.allow_multiple and not plan.admin
        for ci in plan.constraints:
            con = self.constraints[ci]
            if con.match:
                self.match_sets[ci].pop()
                self.match_count[ci] -= 1
            else:
                for v in _values(dev.attributes[con.attribute]):
                    self.distinct[ci][v] -= 1
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


def _values(value: Any) -> frozenset[Any]:
    """A constraint's view of an attribute: the set of its values (a scalar is one value)."""
    if value is None:
        return frozenset()
    if isinstance(value, tuple):
        return frozenset(value)
    return frozenset((value,))


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
    inv = state.inventory
    in_use = state.in_use
    shares = state.shares
    counters_used = state.counters_used
    counters_total = inv.counters
    for alts in slots:
        per_alt: list[list[Device]] = []
        reason: str | None = None
        for plan in alts:
            failed = inv.selector_error(plan.expressions, node)
            if failed is not None:
                reason = reason or _cel_error(plan, *failed)
                per_alt.append([])
                continue
            devs = plan.index.get(node, [])
            shared = plan.index.get("", [])
            if shared:
                # allNodes and network-attached devices: those this node reaches.
                devs = devs + [d for d in shared if d.node_selector is None or inv.reaches(d, node)]
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
                if plan.admin:
                    cands.append(d)
                    continue
                if d.allow_multiple:
                    if d.index in in_use:
                        continue  # allocated whole before
                    if plan.all_mode and not _has_room(d, plan, state):
                        continue  # "All" takes the shareable devices that still have room
                    cands.append(d)
                    continue
                if plan.all_mode:
                    cands.append(d)  # "All": in-use ones make the request fail below
                    continue
                if d.index in in_use or d.index in shares:
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
            if (
                plan.all_mode
                and not plan.admin
                and any(
                    d.index in in_use or d.index in shares for d in cands if not d.allow_multiple
                )
            ):
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
            if any(d.binding_conditions for d in cands):
                # Kubernetes tries devices that bind without waiting first.
                cands.sort(key=lambda d: bool(d.binding_conditions))
            per_alt.append(cands)
        if not any(per_alt):
            return [], reason
        out.append(per_alt)
    return out, None


def _has_room(dev: Device, plan: _Plan, state: AllocatedState) -> bool:
    consumed = _consumption(dev, plan)
    if consumed is None:
        return False
    used = state.capacity_used.get(dev.index, {})
    return all(used.get(q, 0) + v <= dev.capacity[q] for q, v in consumed.items())


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
    out = _decide([claim], slices, classes, allocated_state, node, deadline_ms, policy)
    return out if isinstance(out, Unschedulable) else out[0]


def allocate_many(
    claims: Sequence[Mapping[str, Any]],
    slices: Inventory | Iterable[Mapping[str, Any]],
    classes: Iterable[Mapping[str, Any]] = (),
    allocated_state: AllocatedState | Iterable[Mapping[str, Any]] | None = None,
    node: str | None = None,
    deadline_ms: float = 50.0,
    policy: Policy | str = "modelplane",
) -> list[AllocationResult] | Unschedulable:
    """Allocate several claims of one consumer (a pod, a Job or Endpoint replica) together.

    All claims land on the same node, or none does: the search backtracks across the claims,
    so an early claim never takes the devices a later one needs when another choice serves
    both (Kubernetes allocates a pod's claims the same way). Arguments as for
    :func:`allocate`; the result is one :class:`AllocationResult` per claim, in order, or one
    :class:`Unschedulable` naming the first claim.
    """
    if not claims:
        return []
    return _decide(list(claims), slices, classes, allocated_state, node, deadline_ms, policy)


def _decide(
    claims: list[Mapping[str, Any]],
    slices: Inventory | Iterable[Mapping[str, Any]],
    classes: Iterable[Mapping[str, Any]],
    allocated_state: AllocatedState | Iterable[Mapping[str, Any]] | None,
    node: str | None,
    deadline_ms: float,
    policy: Policy | str,
) -> list[AllocationResult] | Unschedulable:
    start = time.perf_counter()
    inv = slices if isinstance(slices, Inventory) else Inventory.from_objects(slices, classes)
    if allocated_state is None:
        state = AllocatedState(inv)
    elif isinstance(allocated_state, AllocatedState):
        state = allocated_state
    else:
        state = AllocatedState.from_claims(inv, allocated_state)
    pol = policy_named(policy) if isinstance(policy, str) else policy
    keys = [_claim_key(c) for c in claims]
    key = keys[0]
    nodes_all = list(inv.nodes) if node is None else [node]
    total = len(nodes_all)

    def elapsed() -> float:
        return (time.perf_counter() - start) * 1000.0

    # The bound covers all the work of the decision from here on: matching selectors against
    # the inventory (its progress is kept in the inventory, so a retry continues where this
    # one stopped), the node loop and the search on each node.
    deadline = start + deadline_ms / 1000.0
    try:
        slots, constraints = _plans(list(zip(claims, keys, strict=True)), inv, deadline)
        if node is not None:
            _check_node(slots, inv, node)
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
        if all(not p.index and not inv.has_selector_errors(p.expressions) for p in alts):
            # Cheap: no device anywhere matches this request; no node needs a visit.
            refused = _refused_pools(inv, node, key, total)
            if refused is not None:
                return refused
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
    steps = 0
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
        steps += search.ticks
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
        refused = _refused_pools(inv, node, key, total)
        if refused is not None:
            return refused
        pruned.extend(too_full())
        for n in pruned:
            reasons[_short_reason(n, slots, inv)] += 1
        ms = elapsed()
        if timed_out:
            reasons[f"were not evaluated (gave up after {ms:.0f} ms)"] += total - sum(
                reasons.values()
            )
        cel_errors = [r for r in reasons if "CEL runtime error" in r]
        if cel_errors and len(cel_errors) == len(reasons):
            # Every node failed on the selector itself: the claim (or class) needs fixing.
            return Unschedulable(key, cel_errors[0], total, dict(reasons), False, True, ms, steps)
        return Unschedulable(
            key, _message(total, reasons), total, dict(reasons), timed_out, False, ms, steps
        )
    best = pol.rank([p for p, _ in found], inv, state)
    placement, chosen = found[best]
    mix = pol.fragmentation_mix()
    if mix is not None:
        mix.observe(max(placement.units, 1e-3))
    ms = elapsed()
    return [
        AllocationResult(
            k,
            placement.node,
            [r for r in chosen if r.claim == i],
            ms,
            evaluated,
            _configs(claims[i], [r for r in chosen if r.claim == i], slots, inv),
            steps,
        )
        for i, k in enumerate(keys)
    ]


def _refused_pools(inv: Inventory, node: str | None, key: str, total: int) -> Unschedulable | None:
    """Kubernetes' answer when a claim fails on a node that an invalid pool reaches."""
    if node is None or not inv.invalid_pools:
        return None
    bad = inv.bad_pools_for(node)
    if not bad:
        return None
    why = "invalid resource pools were encountered (" + "; ".join(sorted(bad)) + ")"
    return Unschedulable(
        key, f"claim {key}: {why}; the driver must republish them", total, {why: total}
    )


def _check_node(slots: list[list[_Plan]], inv: Inventory, node: str) -> None:
    """Errors Kubernetes reports for a claim on one node rather than "does not fit"."""
    for alts in slots:
        for plan in alts:
            failed = inv.selector_error(plan.expressions, node)
            if failed is not None:
                raise _Invalid(_cel_error(plan, *failed))
            if plan.all_mode:
                for driver, pool in sorted(inv.incomplete_pools):
                    if inv.pool_reaches(driver, pool, node):
                        raise _Invalid(
                            f"request {plan.name}: asks for all devices, but resource pool "
                            f"{driver}/{pool} is currently being updated (fewer slices than "
                            "its resourceSliceCount); retry once the driver published them all"
                        )


def _cel_error(plan: _Plan, dev: Device, expression: str, message: str) -> str:
    return (
        f"{plan.sources.get(expression, f'request {plan.name}')}: CEL runtime error in "
        f"{expression!r} on device {dev.name} (driver {dev.driver}, pool {dev.pool}): {message}"
    )


def _configs(
    claim: Mapping[str, Any],
    chosen: list[DeviceResult],
    slots: list[list[_Plan]],
    inv: Inventory,
) -> list[dict[str, Any]]:
    """``status.allocation.devices.config``: the classes' configuration, then the claim's."""
    used = list(dict.fromkeys(r.request for r in chosen))
    plans = {p.name: p for alts in slots for p in alts}
    out: list[dict[str, Any]] = []
    by_class: dict[str, list[str]] = {}
    for name in used:
        plan = plans.get(name)
        if plan is not None:
            by_class.setdefault(plan.class_name, []).append(name)
    for cls_name, requests in by_class.items():
        cls = inv.classes.get(cls_name) or {}
        for c in (cls.get("spec") or {}).get("config") or ():
            out.append({"source": "FromClass", "requests": requests, **_config_body(c)})
    bases = {n.split("/", 1)[0] for n in used}
    for c in ((claim.get("spec") or {}).get("devices") or {}).get("config") or ():
        requests = c.get("requests")
        if requests and not any(r in used or r in bases for r in requests):
            continue  # only for a request (or firstAvailable alternative) not allocated
        entry: dict[str, Any] = {"source": "FromClaim"}
        if requests:
            entry["requests"] = list(requests)
        out.append({**entry, **_config_body(c)})
    return out


def _config_body(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "requests"}


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
