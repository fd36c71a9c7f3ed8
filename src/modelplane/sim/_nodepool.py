"""A discrete-event model of a NodePool against a static cluster: claims wait, nodes come and go.

``simulate_nodepool(workload, cluster, mode)`` offers claims (Poisson arrivals at a rate that
steps up for a burst, each for 1, 2, 4 or 8 devices of one node, held for an exponential time) to
either a ``"static"`` cluster of ``max_nodes`` nodes, or a ``"pool"`` that starts empty and is run
by the platform's real decisions (:func:`~modelplane.autoscaling.nodes_to_add` every
``tick_s``, :func:`~modelplane.autoscaling.nodes_to_remove` after ``consolidate_after_s``); a new
node serves after ``boot_s``. Claims are placed first come, first served, first fit on one node.

Figures: the wait from a claim's arrival to its placement (time to capacity: p50, p99, max),
node-hours and their cost at ``price_per_hour``, the most nodes held.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from modelplane.autoscaling import PoolNode, nodes_to_add, nodes_to_remove

Mode = Literal["static", "pool"]
_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True, slots=True)
class ClaimLoad:
    """Claims per second (``base``, ``burst`` from ``burst_at`` for ``burst_s``), hold time."""

    base: float = 0.005
    burst: float = 0.04
    burst_at: float = 3600.0
    burst_s: float = 3600.0
    duration_s: float = 4 * 3600.0
    mean_hold_s: float = 600.0


@dataclass(frozen=True, slots=True)
class PoolShape:
    """The nodes (devices each, boot time, price) and the pool's settings."""

    devices: int = 8
    boot_s: float = 90.0
    price_per_hour: float = 98.32
    max_nodes: int = 16
    consolidate_after_s: float = 300.0
    tick_s: float = 10.0


@dataclass(slots=True, eq=False)
class _Node:
    name: str
    started: float
    ready_at: float
    used: int = 0
    empty_since: float | None = None
    stopped: float | None = None


@dataclass(slots=True)
class _Run:
    load: ClaimLoad
    shape: PoolShape
    rnd: random.Random
    nodes: list[_Node] = field(default_factory=list)
    waiting: list[tuple[float, int, float]] = field(default_factory=list)  # arrival, size, hold
    waits: list[float] = field(default_factory=list)
    events: list[tuple[float, int, str, Any]] = field(default_factory=list)
    seq: int = 0
    most: int = 0

    def push(self, at: float, what: str, data: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, what, data))

    def live(self) -> list[_Node]:
        return [n for n in self.nodes if n.stopped is None]

    def add_node(self, now: float, boot: float) -> None:
        node = _Node(f"n{len(self.nodes)}", now, now + boot, empty_since=now + boot)
        self.nodes.append(node)
        self.most = max(self.most, len(self.live()))
        self.push(node.ready_at, "ready")

    def place(self, now: float) -> None:
        still = []
        for arrival, size, hold in self.waiting:
            node = next(
                (
                    n
                    for n in self.live()
                    if n.ready_at <= now and self.shape.devices - n.used >= size
                ),
                None,
            )
            if node is None:
                still.append((arrival, size, hold))
                continue
            node.used += size
            node.empty_since = None
            self.waits.append(now - arrival)
            self.push(now + hold, "release", (node, size))
        self.waiting = still

    def rate(self, t: float) -> float:
        burst = self.load.burst_at <= t < self.load.burst_at + self.load.burst_s
        return self.load.burst if burst else self.load.base


def simulate_nodepool(
    load: ClaimLoad, shape: PoolShape, mode: Mode, *, seed: int = 1
) -> dict[str, Any]:
    """Run the claims against a static cluster or a pool (module docstring); the figures."""
    run = _Run(load, shape, random.Random(seed))
    if mode == "static":
        for _ in range(shape.max_nodes):
            run.add_node(0.0, 0.0)
    else:
        run.push(shape.tick_s, "tick")
    run.push(run.rnd.expovariate(run.rate(0.0)), "arrive")
    while run.events:
        now, _, what, data = heapq.heappop(run.events)
        if now > load.duration_s and what in ("arrive", "tick"):
            continue
        if what == "arrive":
            size = run.rnd.choice(_SIZES)
            run.waiting.append((now, size, run.rnd.expovariate(1.0 / load.mean_hold_s)))
            run.push(now + run.rnd.expovariate(run.rate(now)), "arrive")
        elif what == "release":
            node, size = data
            node.used -= size
            if node.used == 0:
                node.empty_since = now
        elif what == "tick":
            _tick(run, now)
        run.place(now)
    return _figures(run, mode)


def _tick(run: _Run, now: float) -> None:
    shape = run.shape
    view = [PoolNode(n.name, shape.devices, n.used, n.empty_since) for n in run.live()]
    pending = [size for _, size, _ in run.waiting]
    add, _ = nodes_to_add(pending, view, shape.devices, shape.max_nodes, None)
    for _ in range(add):
        run.add_node(now, shape.boot_s)
    gone = set(nodes_to_remove(view, len(pending), now, shape.consolidate_after_s))
    for n in run.live():
        if n.name in gone:
            n.stopped = now
    run.push(now + shape.tick_s, "tick")


def _figures(run: _Run, mode: Mode) -> dict[str, Any]:
    end = run.load.duration_s
    node_s = sum(
        min(n.stopped if n.stopped is not None else end, end) - n.started for n in run.nodes
    )
    waits = sorted(run.waits)
    return {
        "mode": mode,
        "claims_placed": len(waits),
        "claims_waiting_at_end": len(run.waiting),
        "wait_p50_s": _pct(waits, 0.50),
        "wait_p99_s": _pct(waits, 0.99),
        "wait_max_s": round(waits[-1], 1) if waits else None,
        "node_hours": round(node_s / 3600.0, 2),
        "cost_usd": round(node_s / 3600.0 * run.shape.price_per_hour, 2),
        "max_nodes": run.most,
    }


def _pct(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)
