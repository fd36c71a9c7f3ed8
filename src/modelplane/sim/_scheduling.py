"""A discrete-event simulator: claims and jobs arrive, get devices (or not), run, and leave.

``simulate`` replays ResourceClaims and Jobs whose annotations give
``modelplane.dev/arrival-seconds`` and ``modelplane.dev/duration-seconds`` against a cluster
(DeviceClasses, ResourceSlices, Nodes, and Queues) with one policy, through :class:`Admission`:
quotas, gangs with topology and preemption apply as they would in the control plane. A claim that does not fit waits and is retried whenever devices are released;
one that never fits is reported with the reason of its last attempt. Device names in the output
are exactly those of the slices, so anyone can check the allocation.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Mapping
from typing import Any

from modelplane.api import ARRIVAL_ANNOTATION as ARRIVAL
from modelplane.api import DURATION_ANNOTATION as DURATION
from modelplane.scheduling import (
    PRICE_ATTRIBUTE,
    TOPOLOGY_LEVELS,
    Admission,
    Admitted,
    AllocatedState,
    GangPlacement,
    GangPlacer,
    Inventory,
    Pending,
    Policy,
    SchedulingInputError,
    Workload,
    policy_named,
    topology_level,
    workloads_from,
)

__all__ = ["simulate", "split_objects"]

RETRIES_PER_EVENT = 8


#: retries of a decision that gave up while matching selectors on a cold inventory
_MATCHING_RETRIES = 1000


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
    queues: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Run the workload through one policy; returns ``{"allocations", "unschedulable", "metrics"}``
    and, when work was preempted, ``"preemptions"``.

    The workload is ResourceClaims and Jobs; Queues may come with the cluster, the workload or
    ``queues``. A Job is placed as a gang of ``spec.replicas`` claims named ``<job>-<i>`` (one
    allocation entry per replica, with ``"job"``). Preempted work is released, reported in
    ``preemptions: [{claim, time, by, reason, message}]`` and waits in its queue again (it restarts
    with its full duration, as an evicted Kueue workload does).

    Metrics: ``claims_per_second`` (decisions over decision time), ``decision_ms`` p50/p99/max,
    ``allocation_rate_at_first_rejection`` and ``mean_allocation_rate`` (accelerator units in
    use over all units, time-weighted), ``stranded_gpus_at_first_rejection`` (free accelerator
    units that the rejected claim could not use), ``topology_hit_rate`` (multi-device claims
    placed inside one PCIe root when they fit in one), ``cost`` (price x hours),
    ``peak_power_watts``, ``preemptions`` (count); with Queues, ``queues`` (per queue: admitted,
    preempted, time-weighted ``mean_usage`` per quota, final ``share``) and ``fairness`` (Jain's
    index over the queues that had work, of mean devices used divided by weight).
    """
    groups = split_objects(cluster_objs)
    inv = inventory or Inventory.from_objects(
        groups.get("ResourceSlice", []), groups.get("DeviceClass", []), groups.get("Node", [])
    )
    policy = policy_named(scorer) if isinstance(scorer, str) else scorer
    workload_list = [o for o in workload_objs if o]
    queue_objs = [
        *groups.get("Queue", []),
        *(o for o in workload_list if o.get("kind") == "Queue"),
        *queues,
    ]
    run = _Run(inv, Admission(inv, queue_objs, policy=policy, deadline_ms=deadline_ms))
    run.load(workload_list)
    run.run()
    return run.report(policy.name)


class _Run:
    """One simulation: the workloads, the events still to come and what was measured so far."""

    def __init__(self, inv: Inventory, admission: Admission) -> None:
        self.inv = inv
        self.admission = admission
        self.state = admission.state
        self.workloads: list[Workload] = []
        self.durations: list[float] = []
        self.unschedulable: list[dict[str, Any]] = []
        self.jobs = 0
        self.total_units = sum(n.units for n in inv.nodes.values()) or 1.0
        self.root_size = _largest_domain(inv, TOPOLOGY_LEVELS[0])
        self.departures: list[tuple[float, int, int]] = []  # time, workload, epoch
        self.epoch: list[int] = []
        self.pending: list[int] = []
        self.last_reason: dict[int, str] = {}
        self.allocations: list[dict[str, Any]] = []
        self.preemptions: list[dict[str, Any]] = []
        self.latencies: list[float] = []
        self.first_rejection: dict[str, float] | None = None
        self.hits = self.multi = 0
        self.cost = self.peak_watts = 0.0
        self.used_area = 0.0
        self.last_t = 0.0
        names = admission.queues.queues
        self.queue_area: dict[str, dict[str, float]] = {q: {} for q in names}
        self.queue_counts: dict[str, dict[str, int]] = {
            q: {"workloads": 0, "admitted": 0, "preempted": 0} for q in names
        }
        self.index: dict[str, int] = {}
        self.empty_fit: dict[int, bool] = {}
        self.never: list[int] = []
        self.probe_placer = GangPlacer(inv)
        self.probe_policy = policy_named("modelplane")

    def load(self, workload_list: list[Mapping[str, Any]]) -> None:
        """The ResourceClaims and Jobs of the workload, as workloads to admit."""
        for obj in workload_list:
            if obj.get("kind") not in ("ResourceClaim", "Job"):
                continue
            self.jobs += obj.get("kind") == "Job"
            try:
                made = workloads_from(obj)
            except SchedulingInputError as exc:
                self.unschedulable.append(
                    {"claim": _key(obj), "time": _annotation(obj, ARRIVAL, 0.0), "reason": str(exc)}
                )
                continue
            for w in made:
                self.workloads.append(w)
                self.durations.append(_annotation(w.source, DURATION, 3600.0))
        self.index = {w.key: i for i, w in enumerate(self.workloads)}
        self.epoch = [0] * len(self.workloads)
        for w in self.workloads:
            if w.queue in self.queue_counts:
                self.queue_counts[w.queue]["workloads"] += 1

    def run(self) -> None:
        arrivals = sorted((w.arrival, i) for i, w in enumerate(self.workloads))
        for t, i in arrivals:
            if self.release_until(t) and self.pending:
                self.retry(t)
            self.advance(t)
            if not self.attempt(i, t) and self.fits_empty(i):
                self.pending.append(i)  # claims no empty cluster could hold are not retried
            elif i in self.last_reason and not self.empty_fit.get(i, True):
                self.never.append(i)
        # Drain: keep releasing and retrying until nothing pending can ever be placed.
        while self.pending and self.departures:
            t = self.departures[0][0]
            self.release_until(t)
            self.retry(t)

    def advance(self, t: float) -> None:
        dt = t - self.last_t
        self.used_area += sum(self.state.node_units.values()) * dt
        if dt and self.queue_area:
            for name, q in self.admission.queues.queues.items():
                area = self.queue_area[name]
                for k, v in q.usage.items():
                    area[k] = area.get(k, 0.0) + float(v) * dt
        self.last_t = t

    def record(self, i: int, t: float, result: Admitted) -> None:
        w = self.workloads[i]
        duration = self.durations[i]
        heapq.heappush(self.departures, (t + duration, i, self.epoch[i]))
        if w.queue in self.queue_counts:
            self.queue_counts[w.queue]["admitted"] += 1
        for p in result.preempted:
            v = self.index[p.victim]
            self.epoch[v] += 1  # its departure is void; it waits again
            self.pending.append(v)
            if self.workloads[v].queue in self.queue_counts:
                self.queue_counts[self.workloads[v].queue or ""]["preempted"] += 1
            self.preemptions.append(
                {
                    "claim": p.victim,
                    "time": round(t, 3),
                    "by": p.by,
                    "reason": p.reason,
                    "message": p.message,
                }
            )
        for r in result.results:
            devices = [d.device for d in r.devices]
            if len(devices) > 1 and len(devices) <= self.root_size:
                self.multi += 1
                self.hits += topology_level(devices) == 0
            price = sum(_num(d.attributes.get(PRICE_ATTRIBUTE)) for d in devices)
            self.cost += price * duration / 3600
            entry: dict[str, Any] = {
                "claim": r.claim,
                "time": round(t, 3),
                "node": r.node,
                "results": r.results,
            }
            if w.replicas > 1 or w.job:
                entry["job"] = w.job or w.key
            self.allocations.append(entry)
        self.peak_watts = max(self.peak_watts, sum(self.state.node_watts.values()))

    def attempt(self, i: int, t: float) -> bool:
        started = time.perf_counter()
        result = self.admission.admit(self.workloads[i], t)
        # a cold inventory may give up while matching selectors; like a controller's requeue, try
        # again at once (matching resumes where it stopped), and count every try as one decision
        for _ in range(_MATCHING_RETRIES):
            if not (isinstance(result, Pending) and result.timed_out):
                break
            if "matching selectors" not in result.reason:
                break
            self.latencies.append((time.perf_counter() - started) * 1000.0)
            started = time.perf_counter()
            result = self.admission.admit(self.workloads[i], t)
        self.latencies.append((time.perf_counter() - started) * 1000.0)
        if isinstance(result, Pending):
            self.last_reason[i] = result.reason
            if self.first_rejection is None and not result.invalid and self.fits_empty(i):
                used = sum(self.state.node_units.values())
                self.first_rejection = {
                    "time": t,
                    "allocation_rate": used / self.total_units,
                    "stranded_gpus": self.total_units - used,
                }
            return False
        self.record(i, t, result)
        return True

    def fits_empty(self, i: int) -> bool:
        # A claim no empty cluster could hold says nothing about how full this one is.
        if i not in self.empty_fit:
            empty = AllocatedState(self.inv)
            probe = self.probe_placer.place(self.workloads[i], empty, self.probe_policy)
            self.empty_fit[i] = isinstance(probe, GangPlacement)
        return self.empty_fit[i]

    def release_until(self, t: float) -> bool:
        freed = False
        while self.departures and self.departures[0][0] <= t:
            when, i, ep = heapq.heappop(self.departures)
            if ep != self.epoch[i]:
                continue  # preempted earlier
            self.advance(when)
            freed |= self.admission.release(self.workloads[i].key) is not None
        return freed

    def retry(self, t: float) -> None:
        # Like kube-scheduler moving unschedulable pods back on a cluster event, but bounded:
        # a long queue must not turn every release into hundreds of decisions. With Queues the
        # next one tried is the fairest (lowest share of the cohort, then priority, arrival).
        waiting, self.pending = self.pending, []  # preempted work joins the new list as evicted
        failures = 0
        while waiting:
            if failures >= RETRIES_PER_EVENT:
                self.pending.extend(waiting)
                break
            if self.admission.queues:
                p = min(waiting, key=lambda j: self.admission.order_key(self.workloads[j]))
                waiting.remove(p)
            else:
                p = waiting.pop(0)
            if not self.attempt(p, t):
                failures += 1
                self.pending.append(p)

    def report(self, policy: str) -> dict[str, Any]:
        """``{"allocations", "unschedulable", "metrics"}`` and ``"preemptions"`` if any."""
        self.unschedulable += [
            {
                "claim": self.workloads[i].key,
                "time": round(self.workloads[i].arrival, 3),
                "reason": self.last_reason.get(i, ""),
            }
            for i in sorted(set(self.never + self.pending))
        ]
        out: dict[str, Any] = {
            "allocations": self.allocations,
            "unschedulable": self.unschedulable,
            "metrics": self.metrics(policy),
        }
        if self.preemptions:
            out["preemptions"] = self.preemptions
        return out

    def metrics(self, policy: str) -> dict[str, Any]:
        latencies = self.latencies
        first_rejection = self.first_rejection
        decisions = len(latencies)
        horizon = self.last_t or 1.0
        metrics: dict[str, Any] = {
            "policy": policy,
            "claims": len(self.workloads),
            "allocated": len(self.allocations),
            "unschedulable": len(self.unschedulable),
            "decisions": decisions,
            "claims_per_second": round(decisions / (sum(latencies) / 1000.0), 1)
            if latencies
            else 0.0,
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
            "mean_allocation_rate": round(self.used_area / horizon / self.total_units, 4),
            "topology_hit_rate": round(self.hits / self.multi, 4) if self.multi else None,
            "cost": round(self.cost, 2),
            "peak_power_watts": round(self.peak_watts, 1),
            "preemptions": len(self.preemptions),
        }
        if self.jobs:
            metrics["jobs"] = self.jobs
        if self.queue_area:
            metrics["queues"] = {
                name: {
                    **self.queue_counts[name],
                    "mean_usage": {k: round(v / horizon, 3) for k, v in sorted(area.items()) if v},
                    "share": round(self.admission.queues.share(name), 4),
                }
                for name, area in self.queue_area.items()
            }
            metrics["fairness"] = _fairness(
                self.admission, self.queue_area, self.queue_counts, horizon
            )
        return metrics


def _fairness(
    admission: Admission,
    area: Mapping[str, Mapping[str, float]],
    counts: Mapping[str, Mapping[str, int]],
    horizon: float,
) -> float | None:
    """Jain's index over queues that had work: mean devices used (device-class quotas) / weight."""
    xs: list[float] = []
    for name, q in admission.queues.queues.items():
        if not counts[name]["workloads"]:
            continue
        devices = sum(v for k, v in area[name].items() if "/" not in k) / horizon
        xs.append(devices / q.weight if q.weight else 0.0)
    if not xs or not any(xs):
        return None
    return round(sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs)), 4)


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
