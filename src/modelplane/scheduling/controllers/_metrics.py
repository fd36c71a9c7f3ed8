"""The scheduler's metrics, in prometheus_client's process-wide registry (``/metrics`` of ``up``
and ``modelplane server``):

* ``modelplane_scheduler_schedule_attempts_total{result}``: allocation decisions, by
  ``scheduled``, ``unschedulable`` or ``error`` (kube-scheduler's ``schedule_attempts_total``);
* ``modelplane_scheduler_allocation_duration_seconds{result}``: how long a decision took;
* ``modelplane_scheduler_pending_claims``: claims without an allocation, now;
* ``modelplane_scheduler_devices{driver,node}`` and
  ``modelplane_scheduler_allocated_devices{driver,node}``: devices published and devices held by
  claims, so that utilisation by node and driver is their ratio.

The last three are read when ``/metrics`` is scraped, from the caches of the claim controller that
runs in this process (the leader's: a standby reports nothing).
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

ATTEMPTS = Counter(
    "modelplane_scheduler_schedule_attempts_total",
    "Allocation decisions of ResourceClaims, by result (scheduled, unschedulable, error).",
    ["result"],
)
DECISION_TIME = Histogram(
    "modelplane_scheduler_allocation_duration_seconds",
    "Time one allocation decision took, by result.",
    ["result"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

#: what the running claim controller reports at a scrape: pending claims, then
#: (driver, node, published, allocated) per node and driver
Snapshot = tuple[int, list[tuple[str, str, int, int]]]


class _Collector(Collector):
    """Reads the snapshot of the claim controller that started last (None: none runs)."""

    def __init__(self) -> None:
        self.source: Callable[[], Snapshot] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Any]:
        with self._lock:
            source = self.source
        pending = GaugeMetricFamily(
            "modelplane_scheduler_pending_claims", "ResourceClaims without an allocation, now."
        )
        devices = GaugeMetricFamily(
            "modelplane_scheduler_devices", "Devices published, by driver and node.", None,
            ["driver", "node"],
        )  # fmt: skip
        allocated = GaugeMetricFamily(
            "modelplane_scheduler_allocated_devices",
            "Devices held by claims, by driver and node.",
            labels=["driver", "node"],
        )
        if source is not None:
            waiting, nodes = source()
            pending.add_metric([], waiting)
            for driver, node, published, held in nodes:
                devices.add_metric([driver, node], published)
                allocated.add_metric([driver, node], held)
        yield pending
        yield devices
        yield allocated

    def use(self, source: Callable[[], Snapshot] | None) -> None:
        with self._lock:
            self.source = source


COLLECTOR = _Collector()
REGISTRY.register(COLLECTOR)


def by_node(
    devices: Iterator[Any], held: set[tuple[str, str, str]]
) -> list[tuple[str, str, int, int]]:
    """(driver, node, published, allocated) for ``devices`` (the inventory's) and the ids of the
    devices claims hold."""
    published: Tally[tuple[str, str]] = Tally()
    allocated: Tally[tuple[str, str]] = Tally()
    for d in devices:
        where = (d.driver, d.node or d.pool)
        published[where] += 1
        if d.id in held:
            allocated[where] += 1
    return [(drv, node, n, allocated[(drv, node)]) for (drv, node), n in sorted(published.items())]
