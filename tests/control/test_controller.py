"""The controller runtime: reconcile on changes, retry failures with backoff, map watched kinds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tests.control._wait import wait_until

from modelplane.control import Controller, RateLimiter, Request, Result, Watches

NS = "team-a"


def _obj(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


class RecordingController(Controller):
    """Reconciles Models: records requests; fails the first ``failures`` times per request."""

    kind = "Model"
    name = "recording"
    watches = (
        Watches("Endpoint", lambda ep: [Request(ep["metadata"]["namespace"], ep["spec"]["model"])]),
    )

    def __init__(self, store: Any, failures: int = 0) -> None:
        super().__init__(
            store, workers=2, rate_limiter=lambda: RateLimiter(base_delay=0.05, max_delay=1.0)
        )
        self.failures = failures
        self.requests: list[Request] = []
        self.active: set[Request] = set()
        self.overlaps = 0
        self._lock = threading.Lock()

    def reconcile(self, request: Request) -> Result:
        with self._lock:
            if request in self.active:
                self.overlaps += 1
            self.active.add(request)
            self.requests.append(request)
            attempt = self.requests.count(request)
        try:
            if attempt <= self.failures:
                raise RuntimeError(f"simulated failure {attempt} of {request}")
            return Result()
        finally:
            with self._lock:
                self.active.discard(request)

    def seen(self, request: Request) -> int:
        with self._lock:
            return self.requests.count(request)


@pytest.fixture
def running(store: Any) -> Iterator[RecordingController]:
    c = RecordingController(store)
    c.start()
    yield c
    assert c.stop(10)


def test_a_change_to_the_primary_kind_reconciles_its_key(
    store: Any, running: RecordingController
) -> None:
    store.create(_obj("Model", "llama"))

    wait_until(lambda: running.seen(Request(NS, "llama")) >= 1, what="llama reconciled")
    assert running.stats().errors == 0


def test_a_change_to_a_watched_kind_reconciles_the_key_it_maps_to(
    store: Any, running: RecordingController
) -> None:
    wait_until(running.has_synced, what="caches synced")

    store.create(_obj("Endpoint", "chat", model="llama"))

    wait_until(lambda: running.seen(Request(NS, "llama")) >= 1, what="llama reconciled")
    assert running.informer("Endpoint").get(NS, "chat") is not None


def test_a_failing_reconcile_is_retried_with_backoff_until_it_succeeds(store: Any) -> None:
    c = RecordingController(store, failures=3)
    c.start()
    try:
        store.create(_obj("Model", "flaky"))
        wait_until(lambda: c.seen(Request(NS, "flaky")) >= 4, what="three failures and a success")
    finally:
        assert c.stop(10)
    stats = c.stats()
    assert stats.errors == 3
    assert stats.reconciles >= 4
    assert c.overlaps == 0


def test_reconcile_runs_again_after_a_restart_from_a_fresh_list(store: Any) -> None:
    c = RecordingController(store)
    store.create(_obj("Model", "llama"))
    c.start()
    wait_until(lambda: c.seen(Request(NS, "llama")) == 1, what="first reconcile")
    assert c.stop(10)

    c.start()
    try:
        wait_until(lambda: c.seen(Request(NS, "llama")) == 2, what="reconcile after restart")
    finally:
        assert c.stop(10)


def test_requeue_after_calls_reconcile_again_later(store: Any) -> None:
    class Polling(Controller):
        kind = "Model"

        def __init__(self, store: Any) -> None:
            super().__init__(store)
            self.count = 0

        def reconcile(self, request: Request) -> Result:
            self.count += 1  # one worker: no race
            return Result(requeue_after=0.05)

    c = Polling(store)
    c.start()
    try:
        store.create(_obj("Model", "llama"))
        wait_until(lambda: c.count >= 3, what="three periodic reconciles")
    finally:
        assert c.stop(10)
    assert c.stats().requeues >= 3


def test_informer_of_an_unwatched_kind_is_refused_with_a_sentence(
    running: RecordingController,
) -> None:
    with pytest.raises(RuntimeError, match="no running informer for 'Queue'"):
        running.informer("Queue")


def test_live_object_is_the_stored_object_until_it_is_being_deleted_or_gone(store: Any) -> None:
    # given a controller (not started: live_object reads the store itself), a Model, and a Model
    # whose finalizer holds it while it is being deleted
    controller = RecordingController(store)
    store.create(_obj("Model", "kept", task="chat"))
    held = _obj("Model", "held", task="chat")
    held["metadata"]["finalizers"] = ["modelplane.dev/test"]
    store.create(held)
    store.delete("Model", NS, "held")
    # then the first is read as stored, the one being deleted and a missing one are None
    kept = controller.live_object(Request(NS, "kept"))
    assert kept is not None and kept["spec"] == {"task": "chat"}
    assert store.get("Model", NS, "held")["metadata"].get("deletionTimestamp")
    assert controller.live_object(Request(NS, "held")) is None
    assert controller.live_object(Request(NS, "missing")) is None
