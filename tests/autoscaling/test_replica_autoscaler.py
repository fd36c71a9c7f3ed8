"""The replica autoscaler controller on a real store, reading a real simulated worker's /metrics.

The test drives the controller's clocks (``clock``: monotonic seconds, ``wall``: Unix seconds)
and calls ``reconcile`` itself, so windows of seconds pass without waiting for them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.serving.conftest import WorkerProcess

from modelplane.api import DEMAND_ANNOTATION, validate
from modelplane.autoscaling import ReplicaAutoscaler
from modelplane.control import Request
from modelplane.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[str]:
    proc = WorkerProcess("modelplane.serving.simulated", ["--name", "lazy"], tmp_path)
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


def _endpoint(store: Store, url: str) -> None:
    store.create(
        validate(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Endpoint",
                "metadata": {"name": "lazy"},
                "spec": {
                    "model": "m",
                    "replicas": {
                        "min": 0,
                        "max": 4,
                        "scaleToZero": True,
                        "autoscaling": {
                            "metric": "modelplane_worker_running_requests",
                            "target": 1,
                            "stableWindow": "6s",
                            "panicWindow": "2s",
                        },
                    },
                },
            }
        )
    )
    current = store.get("Endpoint", "default", "lazy")
    replica = {"name": "lazy-v1-0", "version": "v1", "url": url, "ready": True}
    store.update_status({**current, "status": {"replicas": [replica], "readyReplicas": 1}})


def _autoscaling(store: Store) -> dict[str, Any]:
    return dict(store.get("Endpoint", "default", "lazy")["status"]["autoscaling"])


def test_idle_replica_scales_to_zero_after_a_stable_window_and_demand_brings_one_back(
    store: Store, worker: str
) -> None:
    # given a scale-to-zero Endpoint whose one ready replica is idle, and a clock the test drives
    clock, wall = Clock(), Clock()
    wall.now = time.time()
    controller = ReplicaAutoscaler(store, interval=2.0, clock=clock, wall=wall)
    _endpoint(store, worker)
    request = Request("default", "lazy")
    # when the controller reads it every 2 s for less than the stable window
    for _ in range(2):
        controller.reconcile(request)
        clock.now += 2.0
        wall.now += 2.0
    # then it keeps one replica: traffic was "seen" when the autoscaler started
    first = _autoscaling(store)
    assert first["desiredReplicas"] == 1
    assert first["observed"] == 0.0 and first["readyReplicas"] == 1
    assert first["mode"] == "stable"
    # when a whole stable window passes without traffic
    for _ in range(4):
        controller.reconcile(request)
        clock.now += 2.0
        wall.now += 2.0
    controller.reconcile(request)
    # then it wants zero replicas, says why, and records the change as an Event
    zero = _autoscaling(store)
    assert zero["desiredReplicas"] == 0
    assert zero["lastScaleTime"]
    downs = [e for e in store.list("Event", "default").items if e["reason"] == "ScaledDown"]
    assert downs and "1 -> 0 replicas" in downs[0]["message"]
    # when the gateway records demand (a request found no ready replica) and nothing is running
    current = store.get("Endpoint", "default", "lazy")
    current["metadata"].setdefault("annotations", {})[DEMAND_ANNOTATION] = str(int(wall.now))
    store.update(current)
    current = store.get("Endpoint", "default", "lazy")
    store.update_status({**current, "status": {**current["status"], "replicas": []}})
    controller.reconcile(request)
    # then it wants one replica again
    assert _autoscaling(store)["desiredReplicas"] == 1
    ups = [e for e in store.list("Event", "default").items if e["reason"] == "ScaledUp"]
    assert ups


def test_a_replica_that_does_not_answer_is_left_out_without_waiting_on_it(store: Store) -> None:
    # given an Endpoint whose only "ready" replica listens nowhere
    clock = Clock()
    controller = ReplicaAutoscaler(store, clock=clock, scrape_timeout=1.0)
    _endpoint(store, "http://127.0.0.1:9/v1")
    # when the controller reconciles
    controller.reconcile(Request("default", "lazy"))
    # then it holds its initial count (one, as Knative's initial scale), saying it has no reading
    status = _autoscaling(store)
    assert status["desiredReplicas"] == 1
    assert "no reading" in status["message"]
