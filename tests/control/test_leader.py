"""Leader election and the manager: one leader at a time, prompt handover on a graceful stop."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.control._wait import wait_until

from modelplane import platform
from modelplane.control import LeaderElector, Manager, get_condition
from modelplane.serving import ModelController

#: long enough that a handover within the test's deadlines can only come from release_lease
LEASE_DURATION = 15.0
RETRY_PERIOD = 0.05


def _manager(store: Any, identity: str, controllers: list[ModelController]) -> Manager:
    return Manager(
        store,
        identity=identity,
        controllers=controllers,
        lease_name="mgr",
        lease_duration=LEASE_DURATION,
        renew_deadline=10.0,
        retry_period=RETRY_PERIOD,
    )


class Transitions:
    def __init__(self) -> None:
        self.log: list[str] = []
        self._lock = threading.Lock()

    def started(self) -> None:
        with self._lock:
            self.log.append("started")

    def stopped(self) -> None:
        with self._lock:
            self.log.append("stopped")

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.log)


def _elector(store: Any, identity: str, t: Transitions) -> LeaderElector:
    return LeaderElector(
        store,
        "test-lease",
        identity,
        lease_duration=LEASE_DURATION,
        renew_deadline=10.0,
        retry_period=RETRY_PERIOD,
        on_started_leading=t.started,
        on_stopped_leading=t.stopped,
    )


def test_one_of_two_candidates_leads_and_a_graceful_stop_hands_over_at_once(store: Any) -> None:
    ta, tb = Transitions(), Transitions()
    a, b = _elector(store, "a", ta), _elector(store, "b", tb)
    a.start()
    assert a.wait_for_leadership(10)
    b.start()
    try:
        # b keeps trying (every 50 ms) and is refused while a holds the lease
        wait_until(lambda: store.get_lease("test-lease") is not None, what="a lease")
        assert not b.wait_for_leadership(0.3)
        assert store.get_lease("test-lease").holder == "a"

        # when: the leader stops gracefully
        started = time.monotonic()
        assert a.stop(5)

        # then: it stopped leading before releasing, and b took over long before the lease lapsed
        assert ta.snapshot() == ["started", "stopped"]
        assert b.wait_for_leadership(5)
        assert time.monotonic() - started < LEASE_DURATION / 2
        assert store.get_lease("test-lease").holder == "b"
        assert tb.snapshot() == ["started"]
    finally:
        a.stop(5)
        b.stop(5)
    assert tb.snapshot() == ["started", "stopped"]
    lease = store.get_lease("test-lease")
    assert lease is None or lease.holder != "b" or lease.expires_at <= time.time()


def test_a_leader_that_loses_its_lease_to_another_holder_steps_down(store: Any) -> None:
    t = Transitions()
    elector = LeaderElector(
        store,
        "test-lease",
        "a",
        0.6,
        0.4,
        0.05,
        on_started_leading=t.started,
        on_stopped_leading=t.stopped,
    )
    elector.start()
    try:
        assert elector.wait_for_leadership(10)
        # when: someone else takes the lease (as if a's renewals had not reached the store)
        store.release_lease("test-lease", "a")
        assert store.acquire_lease("test-lease", "intruder", 60) is not None

        # then: a notices at its next renewal and stops leading
        wait_until(lambda: t.snapshot() == ["started", "stopped"], what="a steps down")
        assert not elector.is_leader
    finally:
        elector.stop(5)


def test_leader_elector_refuses_timings_that_could_let_two_lead() -> None:
    with pytest.raises(ValueError, match="lease_duration > renew_deadline > retry_period"):
        LeaderElector(object(), "l", "me", lease_duration=5, renew_deadline=10, retry_period=2)  # type: ignore[arg-type]


def _model_with_file(tmp_path: Path, name: str) -> dict[str, Any]:
    f = tmp_path / f"{name}.gguf"
    f.write_bytes(name.encode() * 100)
    digest = "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "versions": [{"name": "v1", "source": str(f), "format": "gguf", "digest": digest}]
        },
    }


def _ready(store: Any, name: str) -> bool:
    status = store.get("Model", "default", name).get("status")
    cond = get_condition(status, "Ready")
    return bool(cond and cond["status"] == "True")


def test_only_the_leading_manager_reconciles_and_a_standby_takes_over_on_stop(
    store: Any, tmp_path: Path
) -> None:
    ca = ModelController(store, model_roots=[tmp_path])
    cb = ModelController(store, model_roots=[tmp_path])
    a = _manager(store, "manager-a", [ca])
    b = _manager(store, "manager-b", [cb])
    a.start()
    try:
        assert a.wait_for_leadership(10)
        b.start()
        store.create(_model_with_file(tmp_path, "first"))

        wait_until(lambda: _ready(store, "first"), what="first Ready=True")
        # the counter moves when reconcile returns, just after the status write we saw
        wait_until(lambda: ca.stats().reconciles >= 1, what="a's reconcile counted")
        assert cb.stats().reconciles == 0
        assert not b.is_leader

        # when: the leader shuts down gracefully
        assert a.stop(10)
        reconciles_of_a = ca.stats().reconciles
        assert b.wait_for_leadership(5)
        store.create(_model_with_file(tmp_path, "second"))

        # then: the new leader reconciles; the old one does nothing more
        wait_until(lambda: _ready(store, "second"), what="second Ready=True")
        wait_until(lambda: cb.stats().reconciles >= 1, what="b's reconcile counted")
        assert ca.stats().reconciles == reconciles_of_a
    finally:
        a.stop(10)
        b.stop(10)


def test_a_leader_that_cannot_reach_the_store_steps_down_within_the_renew_deadline(
    store: Any,
) -> None:
    from modelplane.store import open_store

    own = open_store(store.url)  # this candidate's own connection, which we will cut
    t = Transitions()
    elector = LeaderElector(
        own,
        "test-lease",
        "a",
        lease_duration=3.0,
        renew_deadline=0.5,
        retry_period=0.05,
        on_started_leading=t.started,
        on_stopped_leading=t.stopped,
    )
    elector.start()
    try:
        assert elector.wait_for_leadership(10)

        # when: its store goes away (renewals fail instead of being refused)
        own.close()
        lost_at = time.monotonic()

        # then: it stops leading on its own, before its lease could lapse for the others
        wait_until(lambda: t.snapshot() == ["started", "stopped"], what="a steps down")
        assert time.monotonic() - lost_at < 3.0
    finally:
        elector.stop(5)


def test_manager_run_until_returns_after_the_event_and_leaves_the_lease_free(store: Any) -> None:
    manager = _manager(store, "solo", [])
    stop = threading.Event()
    runner = threading.Thread(target=manager.run_until, args=(stop,))
    runner.start()
    try:
        assert manager.wait_for_leadership(10)
        assert store.get_lease("mgr").holder == "solo"
    finally:
        stop.set()
        runner.join(10)

    assert not runner.is_alive()
    assert not manager.is_leader
    # free: someone else gets it at once, without waiting out the 15 s lease
    assert store.acquire_lease("mgr", "next", 15) is not None


def test_the_platform_composes_the_controllers_the_manager_runs(store: Any) -> None:
    # the control runtime knows no subsystem: platform.py is the one place that lists them
    manager = Manager(store, controllers=platform.controllers(store))

    assert ModelController in [type(c) for c in manager.controllers]
    assert manager.identity
