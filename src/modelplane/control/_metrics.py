"""The controller runtime's metrics, under the names controller-runtime and client-go give them, so
that the dashboards and alerts written for Kubernetes controllers read ours unchanged.

They live in prometheus_client's process-wide registry (as controller-runtime's live in its global
``metrics.Registry``): every controller and work queue of the process reports into the same
families, told apart by the ``controller`` or ``name`` label; ``/metrics`` of ``up`` and
``modelplane server`` renders that registry.

* ``controller_runtime_reconcile_total{controller,result}`` (``success``, ``error``,
  ``requeue``, ``requeue_after``), ``controller_runtime_reconcile_errors_total{controller}``,
  ``controller_runtime_reconcile_time_seconds{controller}`` (a histogram),
  ``controller_runtime_active_workers{controller}``;
* ``workqueue_depth{name}``, ``workqueue_adds_total{name}``, ``workqueue_retries_total{name}``,
  ``workqueue_queue_duration_seconds{name}`` (added to handed out),
  ``workqueue_work_duration_seconds{name}`` (handed out to done);
* ``leader_election_master_status{name}``: 1 while this process holds the lease ``name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

#: seconds: controller-runtime's reconcile-time buckets, from 5 ms to a minute
_RECONCILE_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8,
    0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30,
    40, 50, 60,
)  # fmt: skip
#: seconds: client-go's work-queue buckets, 1 us to 10 s by powers of ten
_QUEUE_BUCKETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0)

RECONCILES = Counter(
    "controller_runtime_reconcile_total",
    "Total number of reconciliations per controller, by result.",
    ["controller", "result"],
)
RECONCILE_ERRORS = Counter(
    "controller_runtime_reconcile_errors_total",
    "Total number of reconciliation errors per controller.",
    ["controller"],
)
RECONCILE_TIME = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Length of time per reconciliation per controller.",
    ["controller"],
    buckets=_RECONCILE_BUCKETS,
)
ACTIVE_WORKERS = Gauge(
    "controller_runtime_active_workers",
    "Number of currently used workers per controller.",
    ["controller"],
)
LEADER = Gauge(
    "leader_election_master_status",
    "1 while this process is the leader of the lease `name`, else 0.",
    ["name"],
)
_DEPTH = Gauge("workqueue_depth", "Current depth of the work queue.", ["name"])
_ADDS = Counter("workqueue_adds_total", "Total number of adds handled by the work queue.", ["name"])
_RETRIES = Counter(
    "workqueue_retries_total", "Total number of retries handled by the work queue.", ["name"]
)
_QUEUED = Histogram(
    "workqueue_queue_duration_seconds",
    "How long an item stays in the work queue before being requested.",
    ["name"],
    buckets=_QUEUE_BUCKETS,
)
_WORKED = Histogram(
    "workqueue_work_duration_seconds",
    "How long processing an item from the work queue takes.",
    ["name"],
    buckets=_QUEUE_BUCKETS,
)


@dataclass(frozen=True, slots=True)
class QueueMetrics:
    """The work-queue series of one queue name (looked up once, used on every add and get)."""

    depth: Any
    adds: Any
    retries: Any
    queued: Any
    worked: Any

    @classmethod
    def of(cls, name: str) -> QueueMetrics:
        return cls(
            _DEPTH.labels(name),
            _ADDS.labels(name),
            _RETRIES.labels(name),
            _QUEUED.labels(name),
            _WORKED.labels(name),
        )
