"""Informers: the cache follows the store, handlers see every change, an expired watch relists."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from tests.control._wait import wait_until

from modelplane.control import Informer
from modelplane.store import open_store

NS = "team-a"


def _model(name: str, namespace: str = NS, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"versions": []},
    }


class Recorder:
    """Collects handler calls as ("add"|"update"|"delete", name) in order."""

    def __init__(self, informer: Informer) -> None:
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        informer.add_handler(
            on_add=lambda o: self._record("add", o),
            on_update=lambda _old, new: self._record("update", new),
            on_delete=lambda o: self._record("delete", o),
        )

    def _record(self, what: str, obj: dict[str, Any]) -> None:
        with self._lock:
            self.calls.append((what, obj["metadata"]["name"]))

    def snapshot(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.calls)


@pytest.fixture
def informer(store: Any) -> Any:
    inf = Informer(store, "Model")
    yield inf
    assert inf.stop(5), "the informer thread did not stop"


def _names(inf: Informer) -> list[str]:
    return [o["metadata"]["name"] for o in inf.list()]


def test_cache_lists_existing_objects_before_reporting_synced(
    store: Any, informer: Informer
) -> None:
    store.create(_model("llama"))
    store.create(_model("mistral"))

    informer.start()

    assert informer.wait_for_sync(10)
    assert _names(informer) == ["llama", "mistral"]
    assert informer.get(NS, "llama")["metadata"]["uid"]  # type: ignore[index]


def test_cache_follows_creates_updates_and_deletes(store: Any, informer: Informer) -> None:
    recorder = Recorder(informer)
    informer.start()
    assert informer.wait_for_sync(10)

    created = store.create(_model("llama"))
    store.create(_model("qwen"))
    created["spec"] = {"versions": [{"name": "v1", "format": "upstream"}]}
    updated = store.update(created)
    store.delete("Model", NS, "qwen")

    wait_until(
        lambda: (
            recorder.snapshot()
            == [("add", "llama"), ("add", "qwen"), ("update", "llama"), ("delete", "qwen")]
        ),
        what="add, add, update, delete",
    )
    assert _names(informer) == ["llama"]
    cached = informer.get(NS, "llama")
    assert cached is not None
    assert cached["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]
    assert informer.get(NS, "qwen") is None


def test_namespaced_informer_ignores_other_namespaces(store: Any) -> None:
    inf = Informer(store, "Model", namespace=NS)
    try:
        store.create(_model("mine"))
        store.create(_model("theirs", namespace="team-b"))
        inf.start()
        assert inf.wait_for_sync(10)
        store.create(_model("mine-too"))
        store.create(_model("theirs-too", namespace="team-b"))

        wait_until(lambda: _names(inf) == ["mine", "mine-too"], what="only team-a objects")
    finally:
        inf.stop(5)


def test_resumed_informer_whose_history_was_compacted_relists_and_emits_the_difference(
    store: Any, informer: Informer, caplog: pytest.LogCaptureFixture
) -> None:
    # given: an informer that saw a, b and c, then stopped
    for name in ("a", "b", "c"):
        store.create(_model(name))
    recorder = Recorder(informer)
    informer.start()
    wait_until(lambda: _names(informer) == ["a", "b", "c"], what="a, b, c cached")
    assert informer.stop(5)
    seen = len(recorder.snapshot())

    # when: while it was away a was deleted, b changed, d appeared, and the history was dropped
    store.delete("Model", NS, "a")
    b = store.get("Model", NS, "b")
    b["metadata"]["labels"] = {"tier": "gold"}
    store.update(b)
    store.create(_model("d"))
    store.compact(0)
    caplog.set_level(logging.INFO, logger="modelplane.control.informer")
    informer.start()

    # then: it relists and reports exactly the difference, as ordinary events
    wait_until(lambda: _names(informer) == ["b", "c", "d"], what="cache == [b, c, d]")
    wait_until(lambda: len(recorder.snapshot()) >= seen + 3, what="three difference events")
    assert sorted(recorder.snapshot()[seen:]) == [("add", "d"), ("delete", "a"), ("update", "b")]
    assert informer.get(NS, "b")["metadata"]["labels"] == {"tier": "gold"}  # type: ignore[index]
    assert any("relisting" in r.getMessage() for r in caplog.records)

    # and it keeps watching after the relist
    store.create(_model("e"))
    wait_until(lambda: _names(informer) == ["b", "c", "d", "e"], what="e arrives by watch")


def test_resync_replays_every_cached_object_as_an_update(store: Any) -> None:
    store.create(_model("llama"))
    inf = Informer(store, "Model", resync=0.05)
    recorder = Recorder(inf)
    try:
        inf.start()
        wait_until(lambda: recorder.snapshot().count(("update", "llama")) >= 2, what="two resyncs")
    finally:
        inf.stop(5)
    assert recorder.snapshot()[0] == ("add", "llama")


def test_a_failing_handler_does_not_stop_the_informer(store: Any, informer: Informer) -> None:
    def explode(_obj: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    informer.add_handler(on_add=explode)
    recorder = Recorder(informer)
    informer.start()
    assert informer.wait_for_sync(10)

    store.create(_model("one"))
    store.create(_model("two"))

    wait_until(lambda: recorder.snapshot() == [("add", "one"), ("add", "two")], what="both adds")


def test_handler_added_late_is_replayed_the_cached_objects(store: Any, informer: Informer) -> None:
    store.create(_model("llama"))
    informer.start()
    assert informer.wait_for_sync(10)

    recorder = Recorder(informer)

    assert recorder.snapshot() == [("add", "llama")]


def test_informer_refuses_a_nonpositive_resync(store: Any) -> None:
    with pytest.raises(ValueError, match="resync must be a positive number"):
        Informer(store, "Model", resync=0)


def test_an_informer_whose_store_is_closed_under_it_ends_instead_of_spinning(
    sqlite_url: str,
) -> None:
    # given an informer following a store that its owner then closes without stopping it
    store = open_store(sqlite_url)
    inf = Informer(store, "Model")
    inf.start()
    assert inf.wait_for_sync(5)
    watch = store.watch("Model")
    # when the store is closed
    store.close()
    # then its watches say they ended (a loop on them must stop, not spin on empty batches)
    assert watch.closed and watch.next_batch(5) == []
    # and the informer's thread ends on its own
    wait_until(lambda: not inf.running, what="the informer to end with its store")
