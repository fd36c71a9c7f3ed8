"""``commit_status``: the one way a controller writes what it observed."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelplane.control import (
    Controller,
    Request,
    Result,
    StatusEvent,
    commit_status,
    set_condition,
)
from modelplane.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path}/store.db")
    try:
        yield s
    finally:
        s.close()


def _graph(store: Store) -> dict[str, Any]:
    return store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Graph",
            "metadata": {"name": "g", "namespace": "default"},
            "spec": {"root": "a", "nodes": {"a": {"type": "Sequence", "steps": []}}},
        }
    )


def _ready(obj: dict[str, Any], ready: bool, reason: str, message: str) -> dict[str, Any]:
    status = copy.deepcopy(obj.get("status") or {})
    set_condition(status, "Ready", ready, reason, message, obj["metadata"]["generation"])
    return status


def _events(store: Store) -> list[dict[str, Any]]:
    return list(store.list("Event", "default").items)


def test_a_changed_condition_is_written_with_its_generation_and_recorded_once(
    store: Store,
) -> None:
    graph = _graph(store)
    # when a controller commits a Ready condition
    stored = commit_status(store, graph, _ready(graph, True, "StepsReady", "ok"), component="t")
    # then it is stored with the generation it describes, and one Event says so
    assert stored is not None
    assert stored["status"]["observedGeneration"] == graph["metadata"]["generation"]
    assert [(e["type"], e["reason"]) for e in _events(store)] == [("Normal", "StepsReady")]
    # and committing the same again writes nothing and records nothing
    again = commit_status(store, stored, _ready(stored, True, "StepsReady", "ok"), component="t")
    assert again is stored
    assert (
        store.get("Graph", "default", "g")["metadata"]["resourceVersion"]
        == (stored["metadata"]["resourceVersion"])
    )
    assert len(_events(store)) == 1


def test_a_status_written_from_a_stale_copy_asks_to_read_again(store: Store) -> None:
    graph = _graph(store)
    commit_status(store, graph, _ready(graph, True, "StepsReady", "ok"), component="t")
    # when another commit starts from the copy read before that write
    lost = commit_status(
        store, graph, _ready(graph, False, "EndpointMissing", "no x"), component="t"
    )
    # then nothing is written, no Event is recorded, and the caller is told to requeue
    assert lost is None
    assert store.get("Graph", "default", "g")["status"]["conditions"][0]["reason"] == "StepsReady"
    assert len(_events(store)) == 1


def test_only_the_compared_fields_of_the_condition_make_an_event(store: Store) -> None:
    graph = _graph(store)
    first = commit_status(store, graph, _ready(graph, False, "Scaling", "0/2 ready"), component="t")
    assert first is not None
    # when only the message changes and the caller compares status and reason
    second = commit_status(
        store,
        first,
        _ready(first, False, "Scaling", "1/2 ready"),
        component="t",
        compared=("status", "reason"),
    )
    # then the status is written but no second Event is recorded
    assert second is not None and second is not first
    assert [e["reason"] for e in _events(store)] == ["Scaling"]
    assert all(e["type"] == "Warning" for e in _events(store))


def test_an_event_the_controller_names_is_recorded_instead_of_the_conditions(
    store: Store,
) -> None:
    graph = _graph(store)
    # when a controller commits a status with an Event of its own (as the scheduler's "Allocated")
    named = StatusEvent("Normal", "Allocated", "allocated node-a: gpu-0")
    stored = commit_status(
        store, graph, _ready(graph, True, "StepsReady", "ok"), component="t", event=named
    )
    # then the status is written and that Event, not the condition's, is recorded
    assert stored is not None
    assert [(e["type"], e["reason"], e["message"]) for e in _events(store)] == [
        ("Normal", "Allocated", "allocated node-a: gpu-0")
    ]
    # and a commit that lost a race records no Event at all
    lost = commit_status(
        store, graph, _ready(graph, False, "Broken", "x"), component="t", event=named
    )
    assert lost is None
    assert len(_events(store)) == 1


class _GraphParts(Controller):
    kind = "Graph"
    name = "parts"

    def reconcile(self, request: Request) -> Result:  # not run: the tests call write_status
        return Result()


def test_a_controller_writes_its_part_of_the_status_and_its_event_once(store: Store) -> None:
    graph = _graph(store)
    controller = _GraphParts(store)
    event = StatusEvent.of("Normal", "Split", "a 90/10 split")
    # when a controller writes a part of the status it owns, with an Event of its own
    result = controller.write_status(graph, {"split": [90, 10]}, event=event, requeue_after=2.0)
    # then it is stored as given (no observedGeneration stamp), and the result comes back later
    stored = store.get("Graph", "default", "g")
    assert stored["status"] == {"split": [90, 10]}
    assert result == Result(requeue_after=2.0)
    assert [(e["type"], e["reason"]) for e in _events(store)] == [("Normal", "Split")]
    # and writing the same again records no second Event
    controller.write_status(stored, {"split": [90, 10]}, event=event)
    assert len(_events(store)) == 1


def test_a_controllers_status_write_that_lost_a_race_is_requeued(store: Store) -> None:
    stale = _graph(store)
    store.update_status({**stale, "status": {"split": [100]}})
    # when the controller writes from the copy it read before someone else wrote
    result = _GraphParts(store).write_status(stale, {"split": [50, 50]})
    # then nothing is written and the request is reconciled again
    assert result == Result(requeue=True)
    assert store.get("Graph", "default", "g")["status"] == {"split": [100]}


def test_an_event_of_any_other_word_than_warning_is_normal() -> None:
    assert StatusEvent.of("Warning", "R", "m").type == "Warning"
    assert StatusEvent.of("Info", "R", "m").type == "Normal"
