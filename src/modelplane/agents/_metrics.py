"""The agent runtime's metrics, in prometheus_client's process-wide registry (``/metrics`` of
``up``):

* ``modelplane_agent_instances{status}``: instances resident in this process's runtimes, by
  status (``running``, ``waiting``, ``idle``...), read at a scrape;
* ``modelplane_agent_steps_total{result}``: steps executed (``ok`` or ``error``; a replayed step
  is not executed again, so it is not counted);
* ``modelplane_agent_journal_commit_duration_seconds``: one durable journal transaction;
* ``modelplane_agent_resume_duration_seconds``: bringing an instance back into memory from its
  snapshot and journal (its resume latency).
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

STEPS = Counter("modelplane_agent_steps_total", "Agent steps executed, by result.", ["result"])
COMMIT_TIME = Histogram(
    "modelplane_agent_journal_commit_duration_seconds",
    "Time of one durable journal transaction of the agent runtime.",
    buckets=_SECONDS,
)
RESUME_TIME = Histogram(
    "modelplane_agent_resume_duration_seconds",
    "Time to bring an agent instance back into memory from its snapshot and journal.",
    buckets=_SECONDS,
)


class _Instances(Collector):
    """Counts the resident instances of every live runtime of the process by status."""

    def __init__(self) -> None:
        self._runtimes: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, runtime: Any) -> None:
        with self._lock:
            self._runtimes.add(runtime)

    def collect(self) -> Iterator[Any]:
        with self._lock:
            runtimes = list(self._runtimes)
        tally: Tally[str] = Tally()
        for rt in runtimes:
            for inst in list(rt.resident.values()):
                tally[str(inst.status)] += 1
        family = GaugeMetricFamily(
            "modelplane_agent_instances",
            "Agent instances resident in this process, by status.",
            labels=["status"],
        )
        for status, count in sorted(tally.items()):
            family.add_metric([status], count)
        yield family


INSTANCES = _Instances()
REGISTRY.register(INSTANCES)
