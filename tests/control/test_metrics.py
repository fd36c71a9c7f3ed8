"""The controller runtime's metrics carry controller-runtime's and client-go's names and count what
happened: reconciles by result, errors, time, and the work queue's adds, retries and depth."""

from __future__ import annotations

import uuid
from typing import Any

from prometheus_client import REGISTRY
from tests.control._wait import wait_until

from modelplane.control import Controller, RateLimiter, Request, Result, WorkQueue

NS = "team-a"


def _sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def _controller(store: Any, failures: int) -> Controller:
    """A Model controller with a name of its own (its series start at zero) that fails the first
    ``failures`` reconciles of each key."""
    seen: dict[Request, int] = {}

    class Counting(Controller):
        kind = "Model"
        name = f"metrics-{uuid.uuid4().hex[:8]}"

        def reconcile(self, request: Request) -> Result:
            seen[request] = seen.get(request, 0) + 1
            if seen[request] <= failures:
                raise RuntimeError("simulated failure")
            return Result()

    return Counting(store, rate_limiter=lambda: RateLimiter(base_delay=0.01, max_delay=0.1))


def test_reconciles_are_counted_by_result_with_their_errors_and_time(store: Any) -> None:
    # given a controller whose first two reconciles of a key fail
    controller = _controller(store, failures=2)
    name = controller.component
    controller.start()
    try:
        # when a Model is created
        store.create(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Model",
                "metadata": {"name": "m", "namespace": NS},
                "spec": {},
            }
        )
        # then two errors and one success are counted, each timed
        wait_until(
            lambda: _sample(
                "controller_runtime_reconcile_total", controller=name, result="success"
            ),
            what="a successful reconcile counted",
        )
    finally:
        assert controller.stop(10)
    errors = _sample("controller_runtime_reconcile_total", controller=name, result="error")
    assert errors == 2
    assert _sample("controller_runtime_reconcile_errors_total", controller=name) == 2
    assert _sample("controller_runtime_reconcile_time_seconds_count", controller=name) == 3
    assert _sample("controller_runtime_active_workers", controller=name) == 0
    # and its queue counted the adds and the two retries
    assert _sample("workqueue_retries_total", name=name) == 2
    assert _sample("workqueue_adds_total", name=name) >= 3
    assert _sample("workqueue_work_duration_seconds_count", name=name) == 3


def test_the_queue_depth_follows_what_waits_and_the_queue_time_is_observed() -> None:
    name = f"q-{uuid.uuid4().hex[:8]}"
    queue: WorkQueue[str] = WorkQueue(name=name)
    queue.add("a")
    queue.add("b")
    queue.add("a")  # de-duplicated: not another add
    assert _sample("workqueue_depth", name=name) == 2
    assert _sample("workqueue_adds_total", name=name) == 2
    key = queue.get(timeout=1)
    assert key == "a" and _sample("workqueue_depth", name=name) == 1
    assert _sample("workqueue_queue_duration_seconds_count", name=name) == 1
    queue.done(key)
    assert _sample("workqueue_work_duration_seconds_count", name=name) == 1
