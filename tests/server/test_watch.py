"""Watch streams: synthetic ADDED first, resuming without gaps or repeats, bookmarks, 410, stop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
from tests.server._objects import GROUP, assert_status, model, models_url, node, nodes_url
from tests.server.conftest import RunningServer, serving

from modelplane.server import create_app


class Events:
    """The events of one open watch stream, read one line at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def take(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` events (the client's read timeout bounds the wait)."""
        out: list[dict[str, Any]] = []
        while len(out) < count:
            line = next(self._lines)
            if line.strip():
                out.append(orjson.loads(line))
        return out

    def rest(self) -> list[dict[str, Any]]:
        """Every event until the server ends the stream."""
        return [orjson.loads(line) for line in self._lines if line.strip()]


@contextmanager
def watching(http: httpx.Client, url: str, **params: str) -> Iterator[Events]:
    with http.stream("GET", url, params={"watch": "true", **params}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "application/json;stream=watch"
        yield Events(response)


def _names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


def _versions(events: list[dict[str, Any]]) -> list[int]:
    return [int(e["object"]["metadata"]["resourceVersion"]) for e in events]


def _create(server: RunningServer, obj: dict[str, Any], namespace: str = "default") -> int:
    response = server.http.post(models_url(namespace), json=obj)
    assert response.status_code == 201, response.text
    return int(response.json()["metadata"]["resourceVersion"])


def _label(server: RunningServer, name: str, value: str) -> int:
    response = server.http.patch(
        models_url(name=name), json={"metadata": {"labels": {"step": value}}}
    )
    assert response.status_code == 200, response.text
    return int(response.json()["metadata"]["resourceVersion"])


def test_a_watch_without_a_version_starts_with_every_object_then_follows_changes(
    server: RunningServer,
) -> None:
    _create(server, model("m1"))
    _create(server, model("m2"))

    with watching(server.http, models_url()) as events:
        initial = events.take(2)
        _create(server, model("m3"))
        _label(server, "m1", "x")
        server.http.delete(models_url(name="m2"))
        live = events.take(3)

    assert _names(initial) == [("ADDED", "m1"), ("ADDED", "m2")]
    assert _names(live) == [("ADDED", "m3"), ("MODIFIED", "m1"), ("DELETED", "m2")]
    assert _versions(live) == sorted(set(_versions(live)))


def test_a_watch_resumed_from_the_last_version_seen_gets_every_change_exactly_once(
    server: RunningServer,
) -> None:
    start = _create(server, model("m"))
    written = [_label(server, "m", str(i)) for i in range(5)]

    with watching(server.http, models_url(), resourceVersion=str(start)) as events:
        first = events.take(3)
    last_seen = first[-1]["object"]["metadata"]["resourceVersion"]
    written += [_label(server, "m", str(i)) for i in range(5, 8)]
    with watching(server.http, models_url(), resourceVersion=last_seen) as events:
        second = events.take(5)

    assert _versions(first + second) == written
    assert [e["object"]["metadata"]["labels"]["step"] for e in first + second] == [
        str(i) for i in range(8)
    ]


def test_a_watch_from_a_version_older_than_history_is_a_single_410_error_line(
    server: RunningServer,
) -> None:
    first = _create(server, model("m"))
    for i in range(5):
        _label(server, "m", str(i))
    server.store.compact(1)

    with watching(server.http, models_url(), resourceVersion=str(first)) as events:
        lines = events.rest()

    assert len(lines) == 1
    assert lines[0]["type"] == "ERROR"
    status = lines[0]["object"]
    assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"


def test_the_initial_objects_end_with_a_bookmark_when_bookmarks_are_allowed(
    server: RunningServer,
) -> None:
    version = _create(server, model("m1"))

    with watching(server.http, models_url(), allowWatchBookmarks="true") as events:
        added, bookmark = events.take(2)

    assert added["type"] == "ADDED"
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["kind"] == "Model"
    assert bookmark["object"]["apiVersion"] == GROUP
    assert int(bookmark["object"]["metadata"]["resourceVersion"]) >= version
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_an_idle_watch_gets_bookmarks_it_can_resume_from(
    start_server: Any,
) -> None:
    server = start_server(watch_bookmark_interval=0.2)
    version = _create(server, model("m1"))

    with watching(
        server.http, models_url(), resourceVersion=str(version), allowWatchBookmarks="true"
    ) as events:
        (bookmark,) = events.take(1)
        later = _label(server, "m1", "x")
        modified, *_ = events.take(1)

    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"] == {"resourceVersion": str(version)}
    assert modified["type"] == "MODIFIED"
    assert int(modified["object"]["metadata"]["resourceVersion"]) == later


def test_without_allow_bookmarks_an_idle_watch_sends_nothing_until_a_change(
    start_server: Any,
) -> None:
    server = start_server(watch_bookmark_interval=0.05)
    version = _create(server, model("m1"))

    with watching(server.http, models_url(), resourceVersion=str(version)) as events:
        later = _label(server, "m1", "x")
        (event,) = events.take(1)

    assert event["type"] == "MODIFIED"
    assert int(event["object"]["metadata"]["resourceVersion"]) == later


def test_timeout_seconds_ends_the_stream(server: RunningServer) -> None:
    version = _create(server, model("m1"))

    with watching(
        server.http, models_url(), resourceVersion=str(version), timeoutSeconds="1"
    ) as events:
        lines = events.rest()

    assert lines == []


def test_watch_selectors_filter_the_initial_objects_and_the_changes(
    server: RunningServer,
) -> None:
    _create(server, model("a", labels={"tier": "gpu"}))
    _create(server, model("b", labels={"tier": "cpu"}))

    with (
        watching(server.http, models_url(), labelSelector="tier=gpu") as gpu,
        watching(server.http, models_url(), fieldSelector="metadata.name=b") as only_b,
    ):
        gpu_initial = gpu.take(1)
        b_initial = only_b.take(1)
        _create(server, model("c", labels={"tier": "gpu"}))
        _label(server, "b", "1")
        gpu_live = gpu.take(1)
        b_live = only_b.take(1)

    assert _names(gpu_initial + gpu_live) == [("ADDED", "a"), ("ADDED", "c")]
    assert _names(b_initial + b_live) == [("ADDED", "b"), ("MODIFIED", "b")]


def test_a_watch_across_namespaces_sees_every_namespace(server: RunningServer) -> None:
    _create(server, model("m1"), "team-a")

    with watching(server.http, models_url(None)) as events:
        initial = events.take(1)
        _create(server, model("m2"), "team-b")
        live = events.take(1)

    assert [e["object"]["metadata"]["namespace"] for e in initial + live] == ["team-a", "team-b"]


def test_a_watch_of_a_cluster_scoped_kind(server: RunningServer) -> None:
    assert server.http.post(nodes_url(), json=node("n1")).status_code == 201

    with watching(server.http, nodes_url()) as events:
        initial = events.take(1)
        server.http.delete(nodes_url("n1"))
        live = events.take(1)

    assert _names(initial + live) == [("ADDED", "n1"), ("DELETED", "n1")]


def test_a_watch_with_a_malformed_version_or_selector_is_a_bad_request(
    server: RunningServer,
) -> None:
    for params in (
        {"resourceVersion": "yesterday"},
        {"labelSelector": "a in b"},
        {"resourceVersion": "1", "fieldSelector": "spec.task=chat"},
        {"resourceVersion": "1", "fieldSelector": "metadata.name"},
        {"timeoutSeconds": "-5"},
        {"allowWatchBookmarks": "perhaps"},
    ):
        response = server.http.get(models_url(), params={"watch": "true", **params})
        assert_status(response, 400, "BadRequest")


def test_stopping_the_server_ends_open_watch_streams(store: Any) -> None:
    app = create_app(store)
    with httpx.Client(timeout=10.0) as http:
        with serving(app) as url:
            stream = http.stream("GET", url + models_url(), params={"watch": "true"})
            response = stream.__enter__()
            assert response.status_code == 200
            # leaving the block stops the server and waits for it: the open stream must not hold it
        try:
            lines = Events(response).rest()
        finally:
            stream.__exit__(None, None, None)

    assert lines == []
