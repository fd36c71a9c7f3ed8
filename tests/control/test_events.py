"""Events: created once per (object, reason, message), then counted."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.control import record_event


def _model(store: Any, name: str = "llama") -> dict[str, Any]:
    return dict(
        store.create(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Model",
                "metadata": {"name": name, "namespace": "team-a"},
                "spec": {"versions": []},
            }
        )
    )


def test_an_event_names_its_object_reason_message_and_source(store: Any) -> None:
    model = _model(store)

    event = record_event(
        store, model, type="Warning", reason="DigestMismatch", message="bad", component="test"
    )

    assert event["kind"] == "Event"
    assert event["apiVersion"] == "modelplane.dev/v1alpha1"
    assert event["metadata"]["namespace"] == "team-a"
    assert event["involvedObject"] == {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "namespace": "team-a",
        "name": "llama",
        "uid": model["metadata"]["uid"],
    }
    assert (event["type"], event["reason"], event["message"], event["count"]) == (
        "Warning",
        "DigestMismatch",
        "bad",
        1,
    )
    assert event["firstTimestamp"] == event["lastTimestamp"]
    assert event["source"] == {"component": "test"}


def test_a_repeated_event_bumps_the_count_instead_of_adding_another(store: Any) -> None:
    model = _model(store)

    for _ in range(3):
        record_event(store, model, type="Normal", reason="Verified", message="ok", component="t")
    record_event(store, model, type="Normal", reason="Verified", message="other", component="t")

    events = store.list("Event", "team-a").items
    by_message = {e["message"]: e["count"] for e in events}
    assert by_message == {"ok": 3, "other": 1}


def test_the_same_reason_on_a_recreated_object_is_a_new_event(store: Any) -> None:
    first = _model(store)
    record_event(store, first, type="Normal", reason="Verified", message="ok", component="t")
    store.delete("Model", "team-a", "llama")
    second = _model(store)

    record_event(store, second, type="Normal", reason="Verified", message="ok", component="t")

    uids = sorted(e["involvedObject"]["uid"] for e in store.list("Event", "team-a").items)
    assert uids == sorted([first["metadata"]["uid"], second["metadata"]["uid"]])


def test_events_about_cluster_scoped_objects_go_to_the_default_namespace(store: Any) -> None:
    node = store.create(
        {"apiVersion": "modelplane.dev/v1alpha1", "kind": "Node", "metadata": {"name": "n1"}}
    )

    event = record_event(
        store, node, type="Normal", reason="Registered", message="hi", component="t"
    )

    assert event["metadata"]["namespace"] == "default"
    assert event["involvedObject"]["namespace"] == ""
    assert event["involvedObject"]["name"] == "n1"


def test_an_unknown_event_type_is_refused(store: Any) -> None:
    model = _model(store)
    with pytest.raises(ValueError, match="'Normal' or 'Warning'"):
        record_event(store, model, type="Error", reason="R", message="m", component="t")  # type: ignore[arg-type]
