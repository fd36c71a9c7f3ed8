"""A discrete-event model of an autoscaled fleet of replicas under a load step.

``simulate_fleet(load, fleet, scaler)`` offers Poisson arrivals at a rate that steps (``LoadStep``:
a base rate, a burst rate from ``burst_at`` for ``burst_s`` seconds, then the base again) to a
fleet of replicas, each with ``slots`` requests running at once, ``service_s`` seconds per request
and a first token ``ttft_s`` after it starts; a request that finds no free slot waits in the
gateway's queue (first come, first served). A new replica serves only after ``cold_start_s``.

The autoscaler is the platform's real :class:`~modelplane.autoscaling.KPA`, fed every
``tick_s`` seconds the way the controller feeds it: the metric is the requests in flight (running
plus queued) over the ready replicas. ``scaler`` is ``"kpa"`` (stable and panic windows),
``"stable"`` (the same without panic) or ``"static"`` (``max_replicas`` from the start: no
autoscaler). Scale-down removes idle replicas first and lets a busy one finish its requests.

Figures: TTFT p50/p99 (all requests and the burst's), the seconds until the burst is absorbed (the
arrival, after the burst began, of the last request that waited more than ``absorbed_wait_s`` in
the queue), replica-seconds (cost: from a replica's start, cold start included, to its stop), the
most replicas and the scaling decisions.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from modelplane.autoscaling import KPA, ScalingPolicy

Scaler = Literal["kpa", "stable", "static"]


@dataclass(frozen=True, slots=True)
class LoadStep:
    """Requests per second: ``base`` until ``burst_at``, ``burst`` for ``burst_s``, then ``base``."""

    base: float = 4.0
    burst: float = 24.0
    burst_at: float = 120.0
    burst_s: float = 180.0
    duration_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Fleet:
    """The replicas and the autoscaler's settings (``target``: requests in flight per replica)."""

    slots: int = 8
    service_s: float = 2.0
    ttft_s: float = 0.2
    cold_start_s: float = 15.0
    min_replicas: int = 1
    max_replicas: int = 12
    target: float = 6.0
    stable_window: float = 60.0
    panic_window: float = 6.0
    tick_s: float = 2.0
    absorbed_wait_s: float = 1.0


@dataclass(slots=True, eq=False)  # identity: two replicas started together are two
class _Replica:
    started: float
    ready_at: float
    running: int = 0
    stopped: float | None = None
    draining: bool = False


@dataclass(slots=True)
class _Run:
    load: LoadStep
    fleet: Fleet
    rnd: random.Random
    replicas: list[_Replica] = field(default_factory=list)
    queue: deque[float] = field(default_factory=deque)
    events: list[tuple[float, int, str, int]] = field(default_factory=list)
    ttft: list[tuple[float, float]] = field(default_factory=list)  # (arrival, ttft)
    late: list[float] = field(default_factory=list)  # arrivals that waited too long
    seq: int = 0
    most: int = 0
    decisions: int = 0

    def push(self, at: float, what: str, index: int = -1) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, what, index))

    def rate(self, t: float) -> float:
        burst = self.load.burst_at <= t < self.load.burst_at + self.load.burst_s
        return self.load.burst if burst else self.load.base

    def live(self) -> list[_Replica]:
        return [r for r in self.replicas if r.stopped is None]

    def ready(self, now: float) -> list[_Replica]:
        return [r for r in self.live() if r.ready_at <= now and not r.draining]

    def start_replica(self, now: float, cold: bool = True) -> None:
        ready_at = now + (self.fleet.cold_start_s if cold else 0.0)
        self.replicas.append(_Replica(now, ready_at))
        self.push(ready_at, "ready", len(self.replicas) - 1)
        self.most = max(self.most, len(self.live()))

    def dispatch(self, now: float) -> None:
        """Start queued requests on the least-busy ready replicas with a free slot."""
        while self.queue:
            free = [r for r in self.ready(now) if r.running < self.fleet.slots]
            if not free:
                return
            rep = min(free, key=lambda r: r.running)
            arrival = self.queue.popleft()
            rep.running += 1
            if now - arrival > self.fleet.absorbed_wait_s:
                self.late.append(arrival)
            self.ttft.append((arrival, now - arrival + self.fleet.ttft_s))
            self.push(now + self.fleet.service_s, "done", self.replicas.index(rep))

    def resize(self, now: float, desired: int) -> None:
        live = [r for r in self.live() if not r.draining]
        for _ in range(desired - len(live)):
            self.start_replica(now)
        extra = len(live) - desired
        # idle and not-yet-ready replicas go first; a busy one drains
        for rep in sorted(live, key=lambda r: (r.running, -r.started))[: max(0, extra)]:
            rep.draining = True
            if rep.running == 0:
                rep.stopped = now


def simulate_fleet(
    load: LoadStep, fleet: Fleet, scaler: Scaler, *, seed: int = 1
) -> dict[str, Any]:
    """Run the load step against ``fleet`` with ``scaler`` (module docstring); the figures."""
    run = _Run(load, fleet, random.Random(seed))
    first = fleet.max_replicas if scaler == "static" else fleet.min_replicas
    for _ in range(first):
        run.start_replica(0.0, cold=False)
    kpa = None
    if scaler != "static":
        policy = ScalingPolicy(
            metric="requests_in_flight",
            target=fleet.target,
            min_replicas=fleet.min_replicas,
            max_replicas=fleet.max_replicas,
            stable_window=fleet.stable_window,
            panic_window=fleet.panic_window,
            panic_threshold=2.0 if scaler == "kpa" else math.inf,
        )
        kpa = KPA(policy, 0.0)
        run.push(fleet.tick_s, "tick")
    run.push(run.rnd.expovariate(run.rate(0.0)), "arrive")
    while run.events:
        now, _, what, index = heapq.heappop(run.events)
        if now > load.duration_s and what in ("arrive", "tick"):
            continue
        if what == "arrive":
            run.queue.append(now)
            run.push(now + run.rnd.expovariate(run.rate(now)), "arrive")
        elif what == "done":
            rep = run.replicas[index]
            rep.running -= 1
            if rep.draining and rep.running == 0:
                rep.stopped = now
        elif what == "tick" and kpa is not None:
            _tick(run, kpa, now)
        run.dispatch(now)
    return _figures(run, scaler)


def _tick(run: _Run, kpa: KPA, now: float) -> None:
    ready = run.ready(now)
    in_flight = sum(r.running for r in ready) + len(run.queue)
    kpa.record(now, float(in_flight), len(ready))
    before = len([r for r in run.live() if not r.draining])
    desired = kpa.decide(now, len(ready)).desired
    if desired != before:
        run.decisions += 1
        run.resize(now, desired)
    run.push(now + run.fleet.tick_s, "tick")


def _figures(run: _Run, scaler: Scaler) -> dict[str, Any]:
    end = run.load.duration_s
    replica_s = sum(min(r.stopped or end, end) - r.started for r in run.replicas)
    start, stop = run.load.burst_at, run.load.burst_at + run.load.burst_s
    burst = sorted(t for a, t in run.ttft if start <= a < stop)
    every = sorted(t for _, t in run.ttft)
    late = [a for a in run.late if a >= start]
    return {
        "scaler": scaler,
        "requests": len(every),
        "ttft_p50_s": _pct(every, 0.50),
        "ttft_p99_s": _pct(every, 0.99),
        "burst_ttft_p99_s": _pct(burst, 0.99),
        "absorbed_after_s": round(max(late) - start, 1) if late else 0.0,
        "replica_seconds": round(replica_s),
        "max_replicas": run.most,
        "scaling_decisions": run.decisions,
    }


def _pct(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)
