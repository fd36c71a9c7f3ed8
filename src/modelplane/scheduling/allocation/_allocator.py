"""``allocate``: one claim, one decision, with ``resource.k8s.io/v1`` semantics.

The decision resolves the claims (``_plans``), then visits nodes (all of them, or those
``Policy.nodes_to_find`` needs); on each node it runs cheap infeasibility checks first (the node
has devices matching every request's selectors, from the per-selector index; enough free
accelerator units; enough free matching devices once in-use, tainted and counter-starved devices
are dropped), then the bounded search of ``_search``. The policy ranks the feasible nodes.

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
from typing import Any

from .._errors import MatchingTimeout, SchedulingInputError
from ._inventory import Device, Inventory
from ._plans import InvalidClaim, RequestPlan, claim_key, plans, untolerated
from ._results import AllocationResult, DeviceResult
from ._scoring import Placement, Policy, policy_named
from ._search import NodeSearch, SearchTimeout, consumption, counters_reason, search_node
from ._state import AllocatedState
from .constraints._base import Constraint

__all__ = ["AllocationResult", "DeviceResult", "Unschedulable", "allocate", "allocate_many"]


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
# the decision


def _candidates(
    node: str, slots: list[list[RequestPlan]], state: AllocatedState, policy: Policy
) -> tuple[list[list[list[Device]]], str | None]:
    """Free, tolerated, counter-feasible matching devices per (request, alternative)."""
    out: list[list[list[Device]]] = []
    for alts in slots:
        per_alt: list[list[Device]] = []
        reason: str | None = None
        for plan in alts:
            cands, why = _plan_candidates(node, plan, state)
            reason = reason or why
            per_alt.append(cands)
        if not any(per_alt):
            return [], reason
        out.append(per_alt)
    return out, None


def _plan_candidates(
    node: str, plan: RequestPlan, state: AllocatedState
) -> tuple[list[Device], str | None]:
    """The candidates of one alternative on ``node``, or none and why."""
    inv = state.inventory
    failed = inv.selector_error(plan.expressions, node)
    if failed is not None:
        return [], _cel_error(plan, *failed)
    devs = plan.index.get(node, [])
    shared = plan.index.get("", [])
    if shared:
        # allNodes and network-attached devices: those this node reaches.
        devs = devs + [d for d in shared if d.node_selector is None or inv.reaches(d, node)]
    if not devs:
        return [], f"had no device matching the selectors of request {plan.name}"
    cands, tainted, starved = _free(devs, plan, state)
    in_use, shares = state.in_use, state.shares
    if (
        plan.all_mode
        and not plan.admin
        and any(d.index in in_use or d.index in shares for d in cands if not d.allow_multiple)
    ):
        return [], f"had devices of request {plan.name} (allocationMode All) in use"
    if not cands or (not plan.all_mode and len(cands) < plan.count):
        if tainted and tainted + len(cands) >= plan.count:
            return [], f"had devices for request {plan.name} only with untolerated taints"
        if starved:
            return [], counters_reason(plan)
        return [], f"had fewer than {plan.count} free devices matching request {plan.name}"
    if any(d.binding_conditions for d in cands):
        # Kubernetes tries devices that bind without waiting first.
        cands.sort(key=lambda d: bool(d.binding_conditions))
    return cands, None


def _free(
    devs: list[Device], plan: RequestPlan, state: AllocatedState
) -> tuple[list[Device], int, int]:
    """The devices ``plan`` may take, and how many were dropped as tainted, as counter-starved."""
    in_use = state.in_use
    shares = state.shares
    counters_used = state.counters_used
    counters_total = state.inventory.counters
    cands: list[Device] = []
    tainted = starved = 0
    for d in devs:
        if d.taints and untolerated(d, plan) is not None:
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
    return cands, tainted, starved


def _has_room(dev: Device, plan: RequestPlan, state: AllocatedState) -> bool:
    consumed = consumption(dev, plan)
    if consumed is None:
        return False
    used = state.capacity_used.get(dev.index, {})
    return all(used.get(q, 0) + v <= dev.capacity[q] for q, v in consumed.items())


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
    keys = [claim_key(c) for c in claims]
    nodes_all = list(inv.nodes) if node is None else [node]
    # The bound covers all the work of the decision from here on: matching selectors against
    # the inventory (its progress is kept in the inventory, so a retry continues where this
    # one stopped), the node loop and the search on each node.
    deadline = start + deadline_ms / 1000.0
    resolved = _resolve(claims, keys, inv, node, len(nodes_all), start, deadline)
    if isinstance(resolved, Unschedulable):
        return resolved
    slots, constraints = resolved
    visit = _visit(inv, nodes_all, node is not None, slots, constraints, state, pol, deadline)
    if not visit.found:
        return _unschedulable(keys[0], inv, node, len(nodes_all), slots, visit, start)
    best = pol.rank([p for p, _ in visit.found], inv, state)
    placement, chosen = visit.found[best]
    mix = pol.fragmentation_mix()
    if mix is not None:
        mix.observe(max(placement.units, 1e-3))
    ms = _since(start)
    return [
        AllocationResult(
            k,
            placement.node,
            [r for r in chosen if r.claim == i],
            ms,
            visit.evaluated,
            _configs(claims[i], [r for r in chosen if r.claim == i], slots, inv),
            visit.steps,
        )
        for i, k in enumerate(keys)
    ]


def _since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _resolve(
    claims: list[Mapping[str, Any]],
    keys: list[str],
    inv: Inventory,
    node: str | None,
    total: int,
    start: float,
    deadline: float,
) -> tuple[list[list[RequestPlan]], list[Constraint]] | Unschedulable:
    """The claims' plans, or why they are invalid or cannot fit anywhere (no node visited)."""
    key = keys[0]
    try:
        slots, constraints = plans(list(zip(claims, keys, strict=True)), inv, deadline)
        if node is not None:
            _check_node(slots, inv, node)
    except (InvalidClaim, SchedulingInputError) as exc:
        return Unschedulable(key, str(exc), total, invalid=True, elapsed_ms=_since(start))
    except MatchingTimeout as exc:
        ms = _since(start)
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
                key,
                _message(total, {none: total}),
                total,
                {none: total},
                False,
                False,
                _since(start),
            )
    return slots, constraints


@dataclass(slots=True)
class _Visit:
    """What the visit of the nodes found: feasible placements, or why each node failed."""

    found: list[tuple[Placement, list[DeviceResult]]] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    pruned: list[str] = field(default_factory=list)  # too few free units: explained on failure
    too_full: Callable[[], list[str]] = list
    evaluated: int = 0
    steps: int = 0
    timed_out: bool = False


def _visit(
    inv: Inventory,
    nodes_all: list[str],
    restricted: bool,
    slots: list[list[RequestPlan]],
    constraints: list[Constraint],
    state: AllocatedState,
    pol: Policy,
    deadline: float,
) -> _Visit:
    """Visit nodes in the policy's order until it has as many feasible ones as it wants."""
    min_units = sum(
        min(p.count * p.min_units for p in alts if not p.admin)
        if not any(p.admin for p in alts)
        else 0.0
        for alts in slots
    )
    order, too_full = _node_order(
        inv, nodes_all, state, pol, 0.0 if inv.shared else min_units, restricted
    )
    visit = _Visit(too_full=too_full)
    to_find = pol.feasible_to_find(len(nodes_all))
    for n in order:
        if len(visit.found) >= to_find:
            break
        if time.perf_counter() > deadline:
            visit.timed_out = True
            break
        visit.evaluated += 1
        info = inv.nodes.get(n)
        free_units = (info.units if info else 0.0) - state.node_units.get(n, 0.0)
        if min_units and free_units + 1e-9 < min_units and not inv.shared:
            visit.pruned.append(n)  # explained only if the claim ends up unschedulable
            continue
        cands, why = _candidates(n, slots, state, pol)
        if why is not None:
            visit.reasons[why] += 1
            continue
        try:
            whole = NodeSearch(n, slots, constraints, cands, state, deadline)
            search, ok = search_node(whole, pol)
        except SearchTimeout:
            visit.timed_out = True
            break
        visit.steps += search.ticks
        if not ok:
            visit.reasons[search.reason(slots)] += 1
            continue
        units = sum(
            r.device.units
            for r in search.chosen
            if not r.admin_access and not r.device.allow_multiple
        )
        placement = Placement(n, [r.device for r in search.chosen], units, tuple(search.rank))
        visit.found.append((placement, list(search.chosen)))
    if pol.node_order == "rotate" and nodes_all:
        pol._next_start = (pol._next_start + visit.evaluated) % len(nodes_all)
    return visit


def _unschedulable(
    key: str,
    inv: Inventory,
    node: str | None,
    total: int,
    slots: list[list[RequestPlan]],
    visit: _Visit,
    start: float,
) -> Unschedulable:
    """Why no node fits, per node, the way kube-scheduler aggregates it."""
    refused = _refused_pools(inv, node, key, total)
    if refused is not None:
        return refused
    reasons = visit.reasons
    for n in [*visit.pruned, *visit.too_full()]:
        reasons[_short_reason(n, slots, inv)] += 1
    ms = _since(start)
    if visit.timed_out:
        reasons[f"were not evaluated (gave up after {ms:.0f} ms)"] += total - sum(reasons.values())
    cel_errors = [r for r in reasons if "CEL runtime error" in r]
    if cel_errors and len(cel_errors) == len(reasons):
        # Every node failed on the selector itself: the claim (or class) needs fixing.
        return Unschedulable(key, cel_errors[0], total, dict(reasons), False, True, ms, visit.steps)
    return Unschedulable(
        key, _message(total, reasons), total, dict(reasons), visit.timed_out, False, ms, visit.steps
    )


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


def _check_node(slots: list[list[RequestPlan]], inv: Inventory, node: str) -> None:
    """Errors Kubernetes reports for a claim on one node rather than "does not fit"."""
    for alts in slots:
        for plan in alts:
            failed = inv.selector_error(plan.expressions, node)
            if failed is not None:
                raise InvalidClaim(_cel_error(plan, *failed))
            if plan.all_mode:
                for driver, pool in sorted(inv.incomplete_pools):
                    if inv.pool_reaches(driver, pool, node):
                        raise InvalidClaim(
                            f"request {plan.name}: asks for all devices, but resource pool "
                            f"{driver}/{pool} is currently being updated (fewer slices than "
                            "its resourceSliceCount); retry once the driver published them all"
                        )


def _cel_error(plan: RequestPlan, dev: Device, expression: str, message: str) -> str:
    return (
        f"{plan.sources.get(expression, f'request {plan.name}')}: CEL runtime error in "
        f"{expression!r} on device {dev.name} (driver {dev.driver}, pool {dev.pool}): {message}"
    )


def _configs(
    claim: Mapping[str, Any],
    chosen: list[DeviceResult],
    slots: list[list[RequestPlan]],
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


def _short_reason(node: str, slots: list[list[RequestPlan]], inv: Inventory) -> str:
    """Why a node without enough free accelerator units fails, without searching it."""
    for alts in slots:
        plan = alts[0]
        accelerators, partitioned = inv.node_profile(plan.expressions).get(node, (0, False))
        if not accelerators:
            return f"had no device matching the selectors of request {plan.name}"
        if accelerators < plan.count:
            break
        if partitioned:
            return counters_reason(plan)
    else:
        plan = slots[0][0]
    return f"had fewer than {plan.count} free devices matching request {plan.name}"


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
