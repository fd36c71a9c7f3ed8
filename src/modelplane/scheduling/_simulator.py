"""A discrete-event simulator: claims arrive, get devices (or not), run, and leave.

``simulate`` replays ResourceClaims whose annotations give ``modelplane.dev/arrival-seconds``
and ``modelplane.dev/duration-seconds`` against a cluster (DeviceClasses, ResourceSlices, Nodes)
with one policy. A claim that does not fit waits and is retried whenever devices are released;
one that never fits is reported with the reason of its last attempt. Device names in the output
are exactly those of the slices, so anyone can check the allocation.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ._allocator import AllocationResult, Unschedulable, allocate
from ._inventory import Inventory
from ._scoring import TOPOLOGY_LEVELS, Policy, policy_named, topology_level
from ._state import PRICE_ATTRIBUTE, AllocatedState

__all__ = ["simulate", "split_objects"]

ARRIVAL = "modelplane.dev/arrival-seconds"
DURATION = "modelplane.dev/duration-seconds"
RETRIES_PER_EVENT = 8


def split_objects(objs: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Group manifests by kind (``ResourceSlice``, ``DeviceClass``, ``Node``, ``ResourceClaim``...)."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for o in objs:
        if o:
            out.setdefault(str(o.get("kind", "")), []).append(o)
    return out


def _annotation(claim: Mapping[str, Any], key: str, default: float) -> float:
    value = ((claim.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def simulate(
    cluster_objs: Iterable[Mapping[str, Any]],
    workload_objs: Iterable[Mapping[str, Any]],
    scorer: str | Policy = "modelplane",
    *,
    deadline_ms: float = 50.0,
    inventory: Inventory | None = None,
) -> dict[str, Any]:
    """Run the workload through one policy; returns ``{"allocations", "unschedulable", "metrics"}``.

    Metrics: ``claims_per_second`` (decisions over decision time), ``decision_ms`` p50/p99/max,
    ``allocation_rate_at_first_rejection`` and ``mean_allocation_rate`` (accelerator units in
    use over all units, time-weighted), ``stranded_gpus_at_first_rejection`` (free accelerator
    units that the rejected claim could not use), ``topology_hit_rate`` (multi-device claims
    placed inside one PCIe root when they fit in one), ``cost`` (price x hours) and
    ``peak_power_watts``.
    """
    groups = split_objects(cluster_objs)
    inv = inventory or Inventory.from_objects(
        groups.get("ResourceSlice", []), groups.get("DeviceClass", []), groups.get("Node", [])
    )
    policy = policy_named(scorer) if isinstance(scorer, str) else scorer
    state = AllocatedState(inv)
    claims = [c for c in workload_objs if c and c.get("kind") == "ResourceClaim"]
    arrivals = sorted(
        ((_annotation(c, ARRIVAL, 0.0), i) for i, c in enumerate(claims)), key=lambda x: x
    )
    total_units = sum(n.units for n in inv.nodes.values()) or 1.0
    root_size = _largest_domain(inv, TOPOLOGY_LEVELS[0])

    departures: list[tuple[float, str]] = []
    pending: list[int] = []
    last_reason: dict[int, str] = {}
    allocations: list[dict[str, Any]] = []
    latencies: list[float] = []
    first_rejection: dict[str, float] | None = None
    hits = multi = 0
    cost = peak_watts = 0.0
    used_area = 0.0
    last_t = 0.0

    def advance(t: float) -> None:
        nonlocal used_area, last_t
        used_area += sum(state.node_units.values()) * (t - last_t)
        last_t = t

    def attempt(i: int, t: float) -> bool:
        nonlocal first_rejection, hits, multi, cost, peak_watts
        claim = claims[i]
        started = time.perf_counter()
        result = allocate(claim, inv, allocated_state=state, deadline_ms=deadline_ms, policy=policy)
        latencies.append((time.perf_counter() - started) * 1000.0)
        if isinstance(result, Unschedulable):
            last_reason[i] = result.reason
            if first_rejection is None and not result.invalid and _fits_empty(i):
                used = sum(state.node_units.values())
                first_rejection = {
                    "time": t,
                    "allocation_rate": used / total_units,
                    "stranded_gpus": total_units - used,
                }
            return False
        assert isinstance(result, AllocationResult)
        state.add(result.claim, result)
        duration = _annotation(claim, DURATION, 3600.0)
        heapq.heappush(departures, (t + duration, result.claim))
        devices = [r.device for r in result.devices]
        if len(devices) > 1 and len(devices) <= root_size:
            multi += 1
            hits += topology_level(devices) == 0
        cost += sum(_num(d.attributes.get(PRICE_ATTRIBUTE)) for d in devices) * duration / 3600
        peak_watts = max(peak_watts, sum(state.node_watts.values()))
        allocations.append(
            {
                "claim": result.claim,
                "time": round(t, 3),
                "node": result.node,
                "results": result.results,
            }
        )
        return True

    empty_fit: dict[int, bool] = {}
    never: list[int] = []

    def _fits_empty(i: int) -> bool:
        # A claim no empty cluster could hold says nothing about how full this one is.
        if i not in empty_fit:
            probe = allocate(
                claims[i], inv, allocated_state=AllocatedState(inv), policy="modelplane"
            )
            empty_fit[i] = isinstance(probe, AllocationResult)
        return empty_fit[i]

    def release_until(t: float) -> bool:
        freed = False
        while departures and departures[0][0] <= t:
            when, key = heapq.heappop(departures)
            advance(when)
            freed |= state.release(key)
        return freed

    def retry(t: float) -> None:
        # Like kube-scheduler moving unschedulable pods back on a cluster event, but bounded:
        # a long queue must not turn every release into hundreds of decisions.
        nonlocal pending
        still: list[int] = []
        failures = 0
        for p in pending:
            if failures >= RETRIES_PER_EVENT or attempt(p, t) is False:
                failures += 1
                still.append(p)
        pending = still

    for t, i in arrivals:
        if release_until(t) and pending:
            retry(t)
        advance(t)
        if not attempt(i, t) and _fits_empty(i):
            pending.append(i)  # claims no empty cluster could hold are not retried
        elif i in last_reason and not empty_fit.get(i, True):
            never.append(i)
    # Drain: keep releasing and retrying until nothing pending can ever be placed.
    while pending and departures:
        t = departures[0][0]
        release_until(t)
        retry(t)

    unschedulable = [
        {
            "claim": _key(claims[i]),
            "time": round(_annotation(claims[i], ARRIVAL, 0.0), 3),
            "reason": last_reason.get(i, ""),
        }
        for i in sorted(never + pending)
    ]
    decisions = len(latencies)
    horizon = last_t or 1.0
    metrics = {
        "policy": policy.name,
        "claims": len(claims),
        "allocated": len(allocations),
        "unschedulable": len(unschedulable),
        "decisions": decisions,
        "claims_per_second": round(decisions / (sum(latencies) / 1000.0), 1) if latencies else 0.0,
        "decision_ms": {
            "p50": round(_percentile(latencies, 0.50), 3),
            "p99": round(_percentile(latencies, 0.99), 3),
            "max": round(max(latencies, default=0.0), 3),
        },
        "allocation_rate_at_first_rejection": round(first_rejection["allocation_rate"], 4)
        if first_rejection
        else None,
        "stranded_gpus_at_first_rejection": round(first_rejection["stranded_gpus"], 3)
        if first_rejection
        else 0.0,
        "mean_allocation_rate": round(used_area / horizon / total_units, 4),
        "topology_hit_rate": round(hits / multi, 4) if multi else None,
        "cost": round(cost, 2),
        "peak_power_watts": round(peak_watts, 1),
    }
    return {"allocations": allocations, "unschedulable": unschedulable, "metrics": metrics}


def _key(claim: Mapping[str, Any]) -> str:
    meta = claim.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def _num(value: Any) -> float:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else 0.0
    except (TypeError, ValueError):
        return 0.0


def _largest_domain(inv: Inventory, attr: str) -> int:
    """Accelerators in the largest domain of ``attr`` (e.g. GPUs behind one PCIe root)."""
    members: dict[Any, set[str]] = {}
    for d in inv.devices:
        v = d.attributes.get(attr)
        if v is not None:
            members.setdefault((d.node, v), set()).add(d.physical)
    return max((len(m) for m in members.values()), default=1)
