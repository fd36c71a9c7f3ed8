"""Random requests against the REST API never make it fail: no 500, and every error is a ``Status``.

Methods, paths under ``/apis/...`` (valid pieces mixed with random ones), query strings, bodies
(random bytes, random JSON, mutated valid manifests as JSON or YAML, oversized) and content types
are drawn by hypothesis and sent over loopback to a server on the test's store.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.server._objects import DRA, GROUP, model, node
from tests.server.conftest import RunningServer

from modelplane.api import kinds

MAX_BODY = 16 * 1024

_GROUP_VERSIONS = [GROUP, DRA, "modelplane.dev/v2", "example.com/v1"]
_PLURALS = sorted({info.plural for info in kinds()})
_NAMES = ["default", "m1", "m2", "n1", "gpu.example.com", "status", "namespaces", "Bad_Name"]
_QUERY_KEYS = [
    "watch",
    "labelSelector",
    "fieldSelector",
    "limit",
    "continue",
    "resourceVersion",
    "allowWatchBookmarks",
    "timeoutSeconds",
]
_QUERY_VALUES = [
    "true",
    "false",
    "1",
    "0",
    "-1",
    "10",
    "99999999999999999999",
    "tier=gpu",
    "tier in (a,b)",
    "!tier",
    "metadata.name=m1",
    "metadata.namespace!=x",
    "spec.x=1",
    "a=",
    "=",
    "(",
    "\x00",
]
_CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/yaml",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
]

_ascii = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
_segment = st.one_of(st.sampled_from(_NAMES), st.text(max_size=12))


_KINDS = {info.kind: info for info in kinds()}
_ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO"]
#: the methods each shape of path takes
_SHAPES = {
    "collection": ["GET", "POST"],
    "item": ["GET", "PUT", "PATCH", "DELETE"],
    "status": ["GET", "PUT", "PATCH"],
}
_name = st.one_of(st.sampled_from(_NAMES), st.sampled_from(_NAMES), st.text(max_size=12))


@st.composite
def _route(draw: st.DrawFn, kind: str) -> tuple[str, str]:
    """(method, path): mostly a route of ``kind`` with a method it takes; sometimes anything."""
    if draw(st.integers(0, 9)) == 0:
        segments = draw(st.lists(_segment, max_size=6))
        return draw(st.sampled_from(_ANY_METHOD)), "/apis/" + "/".join(
            quote(s, safe="") for s in segments
        )
    info = _KINDS[kind]
    valid = draw(st.integers(0, 9)) > 0
    parts = [info.api_version if valid else draw(st.sampled_from(_GROUP_VERSIONS))]
    if info.namespaced == valid or draw(st.integers(0, 9)) == 0:
        parts += ["namespaces", quote(draw(_name), safe="")]
    parts.append(info.plural if valid else quote(draw(_segment), safe=""))
    shape = draw(st.sampled_from(list(_SHAPES)))
    if shape != "collection":
        parts.append(quote(draw(_name), safe=""))
    if shape == "status":
        parts.append(draw(st.sampled_from(["status"] * 4 + ["scale", ""])))
    methods = _SHAPES[shape] if draw(st.integers(0, 4)) else _ANY_METHOD
    return draw(st.sampled_from(methods)), "/apis/" + "/".join(parts)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def _manifests(kind: str) -> list[dict[str, Any]]:
    if kind == "Model":
        return [model("m1"), model("m2", "default", labels={"tier": "gpu"})]
    if kind == "Node":
        return [node("n1")]
    return [
        {
            "apiVersion": DRA,
            "kind": "DeviceClass",
            "metadata": {"name": "gpu.example.com"},
            "spec": {},
        }
    ]


@st.composite
def _mutated_manifest(draw: st.DrawFn, kind: str) -> Any:
    obj: Any = orjson.loads(orjson.dumps(draw(st.sampled_from(_manifests(kind)))))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):
        # walk to a random container, then set, drop or replace one of its entries
        target = obj
        while isinstance(target, dict | list) and target and draw(st.booleans()):
            keys = list(target) if isinstance(target, dict) else list(range(len(target)))
            child = target[draw(st.sampled_from(keys))]
            if not isinstance(child, dict | list):
                break
            target = child
        if isinstance(target, dict):
            key = draw(
                st.one_of(
                    st.sampled_from([*target, "status", "resourceVersion"]),
                    st.text(max_size=8),
                )
            )
            if target and key in target and draw(st.booleans()):
                del target[key]
            else:
                target[key] = draw(_json_values)
        elif isinstance(target, list) and target:
            target[draw(st.integers(0, len(target) - 1))] = draw(_json_values)
    return obj


@st.composite
def _bodies(draw: st.DrawFn, kind: str) -> tuple[bytes | None, str]:
    """A body and the content type that would suit it."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return None, ""
    if choice == 1:
        return draw(st.binary(max_size=256)), "application/json"
    if choice == 2:
        return orjson.dumps(draw(_json_values)), "application/json"
    if choice == 3:
        return b"x" * (MAX_BODY + 1), "application/json"
    manifest = draw(_mutated_manifest(kind))
    if choice <= 5:
        return yaml.safe_dump(manifest).encode(), "application/yaml"
    return orjson.dumps(manifest), "application/json"


@st.composite
def _requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes | None, str]:
    kind = draw(st.sampled_from(["Model", "Node", "DeviceClass"]))
    method, path = draw(_route(kind))
    query = draw(
        st.dictionaries(
            st.one_of(st.sampled_from(_QUERY_KEYS), _ascii),
            st.one_of(st.sampled_from(_QUERY_VALUES), st.text(max_size=20)),
            max_size=3,
        )
    )
    body, suitable = draw(_bodies(kind))
    if method == "PATCH" and suitable == "application/json" and draw(st.booleans()):
        suitable = "application/merge-patch+json"
    content_type = draw(
        st.one_of(st.just(suitable), st.just(suitable), st.sampled_from(_CONTENT_TYPES), _ascii)
    )
    # h11 refuses header values with outer spaces
    return method, path, query, body, content_type.strip()


def _check(method: str, response: Any, body: bytes) -> None:
    code = response.status_code
    event(f"{code}")  # the spread of answers: pytest --hypothesis-show-statistics
    assert code < 500, (code, body[:2000])
    if method == "HEAD" or code < 400:
        return
    text = body.decode("utf-8", "replace")
    assert "Traceback" not in text and 'File "' not in text, text
    status = orjson.loads(body)
    assert status["kind"] == "Status", status
    assert status["code"] == code, status
    assert isinstance(status["message"], str) and status["message"], status


@pytest.mark.slow
def test_random_requests_never_fail_the_server(start_server: Any) -> None:
    server: RunningServer = start_server(max_body_bytes=MAX_BODY)

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_requests())
    def request(drawn: tuple[str, str, dict[str, str], bytes | None, str]) -> None:
        method, path, query, body, content_type = drawn
        headers = {"Content-Type": content_type} if content_type else {}
        with server.http.stream(
            method, path, params=query, content=body, headers=headers
        ) as response:
            if response.headers.get("content-type", "").endswith("stream=watch"):
                # a live watch: its status and media type are the answer; leave it
                assert response.status_code == 200
                event("200 watch")
                return
            _check(method, response, response.read())

    request()
