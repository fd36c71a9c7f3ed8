"""Malformed input is a 4xx naming what was wrong, on every surface, as kube-apiserver answers.

Each test here reproduces one hole of the security issue (a 500, a hang, or a 200 for nonsense)
against a real server on loopback with the routes `modelplane up` mounts.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from tests.server._objects import GROUP, assert_status, model, models_url
from tests.server.conftest import RunningServer

from modelplane.gateway._call import parse_call

AGENT = {
    "apiVersion": GROUP,
    "kind": "Agent",
    "metadata": {"name": "echo", "namespace": "default"},
    "spec": {"entrypoint": "agent_handlers:echo"},
}
INSTANCES = "/agents/default/echo/instances"


def _openai_error(response: httpx.Response, param: str) -> str:
    """The response is a 400 in OpenAI's error shape naming ``param``; returns its message."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert isinstance(error["message"], str) and "Traceback" not in response.text
    return str(error["message"])


def _current_version(api: RunningServer) -> int:
    listed = api.http.get(models_url())
    assert listed.status_code == 200, listed.text
    return int(listed.json()["metadata"]["resourceVersion"])


def _with_agent(api: RunningServer) -> None:
    created = api.http.post(f"/apis/{GROUP}/namespaces/default/agents", json=AGENT)
    assert created.status_code == 201, created.text


# -- /v1: prompt and input ----------------------------------------------------------------------


def test_a_completion_prompt_mixing_strings_and_numbers_is_a_400_naming_prompt(
    api: RunningServer,
) -> None:
    # when a client sends a prompt array whose second item is a number
    response = api.http.post("/v1/completions", json={"model": "m", "prompt": ["a", 1]})
    # then the gateway names the field and the item, in OpenAI's shape (it was a 500)
    message = _openai_error(response, "prompt")
    assert "prompt[1] is an integer" in message


def test_an_embedding_input_holding_an_object_is_a_400_naming_input(api: RunningServer) -> None:
    response = api.http.post("/v1/embeddings", json={"model": "m", "input": ["a", {}]})
    message = _openai_error(response, "input")
    assert "input[1] is an object" in message


@pytest.mark.parametrize(
    "value", [{}, 5, True, [[]], [["a"]], [-1], [True], [1, "a"], [[1], 2], [None]]
)
def test_every_malformed_prompt_shape_is_a_400_naming_prompt(
    api: RunningServer, value: Any
) -> None:
    response = api.http.post("/v1/completions", json={"model": "m", "prompt": value})
    _openai_error(response, "prompt")


@pytest.mark.parametrize("value", ["hello", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_every_shape_openai_documents_for_a_prompt_is_accepted(value: Any) -> None:
    # the check refuses mixtures only: strings, token ids and arrays of token ids all parse
    model_name, call = parse_call(
        "/completions",
        httpx.Request("POST", "/", json={"model": "m", "prompt": value}).read(),
        None,
    )
    assert model_name == "m" and call.body["prompt"] == value


# -- /agents: path segments, query parameters, bodies ---------------------------------------------


def test_a_journal_read_after_a_word_is_a_400_naming_after(api: RunningServer) -> None:
    response = api.http.get(f"{INSTANCES}/i1/journal", params={"after": "x"})
    status = assert_status(response, 400, "BadRequest")
    assert "after" in status["message"]


def test_an_instance_id_that_is_not_a_string_is_a_400_naming_id(api: RunningServer) -> None:
    # given an Agent that exists
    _with_agent(api)
    # when an instance is asked for with a list as its id (it was a 500 from the database)
    response = api.http.post(INSTANCES, json={"id": [1, 2]})
    # then the field is named and nothing was created
    status = assert_status(response, 400, "BadRequest")
    assert status["message"].startswith("id ")
    assert api.http.get(INSTANCES).json()["items"] == []


@pytest.mark.parametrize("instance_id", ["UPPER", "a/b", "-x", "x" * 254, "a\x00b"])
def test_an_instance_id_breaking_the_name_rules_is_a_400(
    api: RunningServer, instance_id: str
) -> None:
    _with_agent(api)
    response = api.http.post(INSTANCES, json={"id": instance_id})
    status = assert_status(response, 400, "BadRequest")
    assert "id in the request body" in status["message"]


@pytest.mark.parametrize(
    ("path", "segment"),
    [
        ("/agents/%2e%2e/%2e%2e/instances", "namespace"),
        ("/agents/default/%2e%2e/instances", "agent"),
        ("/agents/Default/echo/instances", "namespace"),
        ("/agents/default/echo/instances/%2e%2e", "id"),
        ("/agents/default/echo/instances/a%00b/journal", "id"),
        ("/agents/default/echo/instances/UP/audit", "id"),
    ],
)
def test_agent_routes_refuse_names_that_break_the_name_rules(
    api: RunningServer, path: str, segment: str
) -> None:
    # (`/agents/%2e%2e/%2e%2e/instances` answered 200 with an empty list)
    response = api.http.get(path)
    status = assert_status(response, 400, "BadRequest")
    assert f"{segment} segment" in status["message"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"continue": "a\x00b"}, "continue"),
        ({"status": "asleep"}, "status"),
    ],
)
def test_agent_list_parameters_are_checked(
    api: RunningServer, params: dict[str, str], named: str
) -> None:
    response = api.http.get(INSTANCES, params=params)
    status = assert_status(response, 400, "BadRequest")
    assert named in status["message"]


def test_an_agent_body_that_is_not_a_json_object_is_a_400(api: RunningServer) -> None:
    _with_agent(api)
    for body in (b"[1]", b"{", b'"text"'):
        response = api.http.post(
            INSTANCES, content=body, headers={"content-type": "application/json"}
        )
        assert_status(response, 400, "BadRequest")


# -- REST: names, watch from the future, list parameters ---------------------------------------


def test_rest_routes_refuse_dot_dot_namespaces_and_names(api: RunningServer) -> None:
    for path in (
        f"/apis/{GROUP}/namespaces/%2e%2e/models",
        f"/apis/{GROUP}/namespaces/default/models/%2e%2e",
    ):
        status = assert_status(api.http.get(path), 400, "BadRequest")
        assert "in the URL" in status["message"]


def test_a_watch_from_a_future_version_is_kube_apiservers_504_within_seconds(
    api: RunningServer,
) -> None:
    # given a store at version M
    current = _current_version(api)
    wanted = current + 1000
    # when a client watches from a version the store has not reached (it hung for ever)
    started = time.monotonic()
    response = api.http.get(
        models_url(), params={"watch": "true", "resourceVersion": str(wanted)}, timeout=15.0
    )
    elapsed = time.monotonic() - started
    # then, after the freshness wait, it gets kube-apiserver's error, field for field
    status = assert_status(response, 504, "Timeout")
    assert elapsed < 10.0
    assert f"Too large resource version: {wanted}, current: {current}" in status["message"]
    assert status["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    assert status["details"]["causes"][0]["message"] == "Too large resource version"
    assert status["details"]["retryAfterSeconds"] == 1
    assert response.headers["retry-after"] == "1"


def test_a_list_at_a_future_version_gets_the_same_504(api: RunningServer) -> None:
    current = _current_version(api)
    response = api.http.get(models_url(), params={"resourceVersion": str(current + 5)})
    status = assert_status(response, 504, "Timeout")
    assert status["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"


def test_a_list_at_the_current_version_is_served(api: RunningServer) -> None:
    current = _current_version(api)
    response = api.http.get(models_url(), params={"resourceVersion": str(current)})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"timeoutSeconds": "-1"}, "timeoutSeconds"),
        ({"timeoutSeconds": "soon"}, "timeoutSeconds"),
        ({"allowWatchBookmarks": "perhaps"}, "allowWatchBookmarks"),
        ({"sendInitialEvents": "true"}, "sendInitialEvents"),
        ({"sendInitialEvents": "maybe"}, "sendInitialEvents"),
        ({"resourceVersionMatch": "Newest", "resourceVersion": "1"}, "resourceVersionMatch"),
        ({"resourceVersionMatch": "NotOlderThan"}, "resourceVersionMatch"),
        ({"resourceVersion": "-3"}, "resourceVersion"),
    ],
)
def test_a_plain_list_checks_the_watch_parameters_too(
    api: RunningServer, params: dict[str, str], named: str
) -> None:
    # (a list ignored them, so timeoutSeconds=-1 was a 200)
    response = api.http.get(models_url(), params=params)
    status = assert_status(response, 400, "BadRequest")
    assert named in status["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"resourceVersionMatch": "NotOlderThan", "resourceVersion": "1"},
        {"sendInitialEvents": "true"},
        {"sendInitialEvents": "true", "resourceVersionMatch": "Exact", "resourceVersion": "1"},
    ],
)
def test_a_watch_checks_how_its_parameters_go_together(
    api: RunningServer, params: dict[str, str]
) -> None:
    response = api.http.get(models_url(), params={"watch": "true", **params})
    assert_status(response, 400, "BadRequest")


def test_send_initial_events_starts_a_watch_with_the_objects_then_a_bookmark(
    api: RunningServer,
) -> None:
    # given one model
    assert api.http.post(models_url(), json=model("first")).status_code == 201
    current = _current_version(api)
    params = {
        "watch": "true",
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "resourceVersion": str(current),
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "1",
    }
    # when a client asks for the initial events from a version the store has
    response = api.http.get(models_url(), params=params)
    assert response.status_code == 200, response.text
    events = [httpx.Response(200, content=line).json() for line in response.text.splitlines()]
    # then the model comes first, and a bookmark marks the end of the initial events
    assert [e["type"] for e in events[:2]] == ["ADDED", "BOOKMARK"]
    assert events[0]["object"]["metadata"]["name"] == "first"
    annotations = events[1]["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


def test_send_initial_events_false_without_a_version_starts_from_now(api: RunningServer) -> None:
    assert api.http.post(models_url(), json=model("old")).status_code == 201
    params = {
        "watch": "true",
        "sendInitialEvents": "false",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "1",
    }
    response = api.http.get(models_url(), params=params)
    assert response.status_code == 200, response.text
    assert '"old"' not in response.text


# -- REST: unknown metadata fields ----------------------------------------------------------------

WARNING = '299 - "unknown field \\"metadata.foo\\""'


def _stored(api: RunningServer, name: str) -> dict[str, Any]:
    response = api.http.get(models_url(name=name))
    assert response.status_code == 200, response.text
    metadata: dict[str, Any] = response.json()["metadata"]
    return metadata


def test_an_unknown_metadata_key_is_dropped_with_a_warning_by_default(api: RunningServer) -> None:
    # when a client creates an object with a key ObjectMeta does not have (it was stored as sent)
    response = api.http.post(models_url(), json=model("m1", foo="bar"))
    # then it is created without the key, and a Kubernetes Warning header says so
    assert response.status_code == 201, response.text
    assert response.headers.get_list("warning") == [WARNING]
    assert "foo" not in response.json()["metadata"]
    assert "foo" not in _stored(api, "m1")


def test_strict_field_validation_refuses_an_unknown_metadata_key_and_stores_nothing(
    api: RunningServer,
) -> None:
    response = api.http.post(
        models_url(), params={"fieldValidation": "Strict"}, json=model("m2", foo="bar")
    )
    status = assert_status(response, 400, "BadRequest")
    assert 'unknown field "metadata.foo"' in status["message"]
    assert_status(api.http.get(models_url(name="m2")), 404, "NotFound")


def test_ignore_field_validation_drops_the_key_silently(api: RunningServer) -> None:
    response = api.http.post(
        models_url(), params={"fieldValidation": "Ignore"}, json=model("m3", foo="bar")
    )
    assert response.status_code == 201, response.text
    assert "warning" not in response.headers
    assert "foo" not in _stored(api, "m3")


def test_replace_and_patch_handle_unknown_metadata_keys_the_same_way(api: RunningServer) -> None:
    # given a model
    created = api.http.post(models_url(), json=model("m4"))
    assert created.status_code == 201, created.text
    body = created.json()
    # when it is replaced, then patched, with an unknown metadata key
    body["metadata"]["foo"] = "bar"
    replaced = api.http.put(models_url(name="m4"), json=body)
    patched = api.http.patch(
        models_url(name="m4"),
        json={"metadata": {"foo": "baz", "labels": {"a": "b"}}},
        headers={"content-type": "application/merge-patch+json"},
    )
    strict = api.http.patch(
        models_url(name="m4"),
        params={"fieldValidation": "Strict"},
        json={"metadata": {"foo": "baz", "labels": {"a": "c"}}},
    )
    # then both writes drop it with a warning, and Strict refuses the patch
    assert replaced.status_code == 200 and replaced.headers.get_list("warning") == [WARNING]
    assert patched.status_code == 200 and patched.headers.get_list("warning") == [WARNING]
    status = assert_status(strict, 400, "BadRequest")
    assert "metadata.foo" in status["message"]
    stored = _stored(api, "m4")
    assert "foo" not in stored and stored["labels"] == {"a": "b"}


def test_an_unknown_field_validation_value_is_a_400(api: RunningServer) -> None:
    response = api.http.post(models_url(), params={"fieldValidation": "Loose"}, json=model("m5"))
    status = assert_status(response, 400, "BadRequest")
    assert "fieldValidation" in status["message"]


def test_a_warning_for_a_key_with_a_line_break_stays_one_header_line(api: RunningServer) -> None:
    response = api.http.post(models_url(), json=model("m6", **{"a\nb\u00e9": 1}))
    assert response.status_code == 201, response.text
    assert response.headers.get_list("warning") == [
        '299 - "unknown field \\"metadata.a\\u000ab\\u00e9\\""'
    ]
