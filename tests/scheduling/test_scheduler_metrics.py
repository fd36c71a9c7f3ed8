"""The scheduler's metrics: decisions by result and time, pending claims, and devices published and
held by driver and node, read from the running claim controller's caches at a scrape."""

from __future__ import annotations

from prometheus_client import REGISTRY
from tests.control._wait import wait_until

from modelplane.control import get_condition
from modelplane.scheduling import ResourceClaimController
from modelplane.store import Store

from .test_controller import _allocated, _claim, _cluster, _results, _status


def _sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def test_decisions_pending_claims_and_held_devices_are_reported(store: Store) -> None:
    scheduled = _sample("modelplane_scheduler_schedule_attempts_total", result="scheduled")
    refused = _sample("modelplane_scheduler_schedule_attempts_total", result="unschedulable")
    controller = ResourceClaimController(store, retry=(0.05, 0.5), deadline_ms=10_000)
    controller.start()
    try:
        # given two nodes of one GPU each, a claim that fits and one that cannot (three GPUs)
        _cluster(store, 2)
        store.create(_claim("fits"))
        store.create(_claim("too-big", count=3))
        held = _results(wait_until(lambda: _allocated(store, "fits"), what="allocation"))[0]
        wait_until(
            lambda: get_condition(_status(store, "too-big"), "Allocated"), what="the refusal"
        )
        # then the decisions are counted by result, each timed
        after = _sample("modelplane_scheduler_schedule_attempts_total", result="scheduled")
        assert after >= scheduled + 1
        wait_until(
            lambda: (
                _sample("modelplane_scheduler_schedule_attempts_total", result="unschedulable")
                >= refused + 1
            ),
            what="the unschedulable decision counted",
        )
        timed = _sample(
            "modelplane_scheduler_allocation_duration_seconds_count", result="scheduled"
        )
        assert timed >= 1
        # and a scrape sees one pending claim, and the held GPU on its node of the two
        assert _sample("modelplane_scheduler_pending_claims") == 1
        driver, node = held["driver"], held["pool"]
        assert _sample("modelplane_scheduler_allocated_devices", driver=driver, node=node) == 1
        nodes = {
            s.labels["node"]: s.value
            for metric in REGISTRY.collect()
            if metric.name == "modelplane_scheduler_devices"
            for s in metric.samples
        }
        assert len(nodes) == 2 and set(nodes.values()) == {1.0}
    finally:
        assert controller.stop(10)
    # a stopped controller reports nothing more
    assert REGISTRY.get_sample_value("modelplane_scheduler_pending_claims") is None
