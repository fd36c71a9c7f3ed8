"""What the server does with bad requests: sizes, syntax, media types, methods, paths, tokens, and
the probes; every error is a ``Status`` and none carries a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.server._objects import ALICE, assert_status, model, models_url
from tests.server.conftest import RunningServer

from modelplane.api import Principal
from modelplane.api.errors import BadRequest
from modelplane.server import load_tokens

# -- body size ---------------------------------------------------------------------------------


def test_a_body_over_the_limit_by_content_length_is_413(start_server: Any) -> None:
    server = start_server(max_body_bytes=10_000)
    body = model("big")
    body["metadata"]["annotations"] = {"padding": "x" * 20_000}

    response = server.http.post(models_url(), json=body)

    status = assert_status(response, 413, "RequestEntityTooLarge")
    assert "10000" in status["message"]
    assert server.http.get(models_url(name="big")).status_code == 404


def test_a_streamed_body_over_the_limit_is_413(start_server: Any) -> None:
    server = start_server(max_body_bytes=10_000)

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"metadata": {"name": "big", "annotations": {"padding": "'
        for _ in range(40):
            yield b"x" * 1000
        yield b'"}}}'

    response = server.http.post(
        models_url(), content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert_status(response, 413, "RequestEntityTooLarge")
    assert server.http.get(models_url(name="big")).status_code == 404


def test_a_body_within_the_limit_is_accepted(start_server: Any) -> None:
    server = start_server(max_body_bytes=10_000)

    assert server.http.post(models_url(), json=model("small")).status_code == 201


# -- body syntax and media types ---------------------------------------------------------------

# "billion laughs": a few hundred bytes of YAML aliases that expand to ten million strings
_LAUGHS = (
    'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
    + "".join(
        f"{name}: &{name} [{','.join(['*' + prev] * 10)}]\n"
        for prev, name in zip("abcdef", "bcdefg", strict=True)
    )
).encode()


def test_malformed_json_is_400_with_line_and_column(server: RunningServer) -> None:
    response = server.http.post(
        models_url(),
        content=b'{\n  "kind": "Model",\n  "metadata": {"name": "m",}\n}',
        headers={"Content-Type": "application/json"},
    )

    status = assert_status(response, 400, "BadRequest")
    assert "line 3, column" in status["message"]


def test_malformed_yaml_is_400_with_line_and_column(server: RunningServer) -> None:
    response = server.http.post(
        models_url(),
        content=b"kind: Model\nmetadata:\n  name: [unclosed\n",
        headers={"Content-Type": "application/yaml"},
    )

    status = assert_status(response, 400, "BadRequest")
    assert "line 4, column 1" in status["message"]


@pytest.mark.parametrize(
    ("content", "content_type", "expected"),
    [
        (b"", "application/json", "empty"),
        (b"[1, 2]", "application/json", "a list"),
        (b"- a\n- b\n", "application/yaml", "a list"),
        (b"a: 1\n---\nb: 2\n", "application/yaml", "single document"),
        (b"a: &x [1]\nb: *x\nc: 2024-01-01\nd: !!binary aGk=\n", "application/yaml", "bytes"),
        (b'{"metadata": {"name": "a\\u0000b"}}', "application/json", "NUL"),
        (b"metadata: {1: x}\n", "application/yaml", "not a string"),
        (b"metadata: {x: .inf}\n", "application/yaml", "finite"),
        (b'{"a":' * 150 + b"1" + b"}" * 150, "application/json", "nested deeper"),
        (_LAUGHS, "application/yaml", "expands to more than"),
    ],
)
def test_a_body_that_is_not_one_plain_json_object_is_400(
    server: RunningServer, content: bytes, content_type: str, expected: str
) -> None:
    response = server.http.post(
        models_url(), content=content, headers={"Content-Type": content_type}
    )

    status = assert_status(response, 400, "BadRequest")
    assert expected in status["message"]


def test_yaml_dates_stay_strings(server: RunningServer) -> None:
    text = (
        "apiVersion: modelplane.dev/v1alpha1\nkind: Model\nmetadata:\n  name: dated\n"
        "  annotations: {released: 2024-01-01}\nspec:\n  versions:\n"
        "  - {name: v1, source: 'https://api.example.com/v1', format: upstream}\n"
    )

    response = server.http.post(
        models_url(), content=text, headers={"Content-Type": "application/yaml"}
    )

    assert response.status_code == 201, response.text
    assert response.json()["metadata"]["annotations"] == {"released": "2024-01-01"}


def test_an_unsupported_content_type_is_415(server: RunningServer) -> None:
    response = server.http.post(
        models_url(),
        content=b"name=m",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    status = assert_status(response, 415, "UnsupportedMediaType")
    assert "application/json" in status["message"]


# -- methods and paths -------------------------------------------------------------------------


def test_a_method_a_path_does_not_take_is_405_with_allow(server: RunningServer) -> None:
    collection = server.http.put(models_url(), json=model("m"))
    status_item = server.http.delete(models_url(name="m", sub="status"))

    assert_status(collection, 405, "MethodNotAllowed")
    assert set(collection.headers["allow"].split(", ")) >= {"GET", "POST"}
    assert_status(status_item, 405, "MethodNotAllowed")
    assert "DELETE" not in status_item.headers["allow"]


@pytest.mark.parametrize(
    ("path", "mentions"),
    [
        ("/nowhere", "/apis"),
        ("/apis/modelplane.dev/v1alpha1/namespaces/default/widgets", "models"),
        ("/apis/example.com/v1/things", "modelplane.dev/v1alpha1"),
        ("/apis/example.com", "modelplane.dev"),
        ("/apis/modelplane.dev/v9", "modelplane.dev/v1alpha1"),
        ("/apis/modelplane.dev/v1alpha1/namespaces/default/models/m/logs", "/apis"),
    ],
)
def test_an_unknown_path_or_resource_is_404_naming_what_exists(
    server: RunningServer, path: str, mentions: str
) -> None:
    status = assert_status(server.http.get(path), 404, "NotFound")

    assert mentions in status["message"]


# -- authentication ----------------------------------------------------------------------------


def test_with_tokens_a_request_without_a_valid_bearer_token_is_401(start_server: Any) -> None:
    server = start_server(tokens={"s3cret": ALICE})

    missing = server.http.get(models_url())
    wrong = server.http.get(models_url(), headers={"Authorization": "Bearer nope"})
    basic = server.http.get(models_url(), headers={"Authorization": "Basic czNjcmV0"})
    version = server.http.get("/version")

    for response in (missing, wrong, basic, version):
        assert_status(response, 401, "Unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_with_tokens_a_valid_bearer_token_is_let_through(start_server: Any) -> None:
    server = start_server(tokens={"s3cret": ALICE})
    auth = {"Authorization": "Bearer s3cret"}

    created = server.http.post(models_url(), json=model("m"), headers=auth)
    listed = server.http.get(models_url(), headers=auth)

    assert created.status_code == 201
    assert [o["metadata"]["name"] for o in listed.json()["items"]] == ["m"]


def test_with_tokens_the_probes_need_no_token(start_server: Any) -> None:
    server = start_server(tokens={"s3cret": ALICE})

    assert server.http.get("/healthz").status_code == 200
    assert server.http.get("/readyz").status_code == 200


def test_without_tokens_no_token_is_needed(server: RunningServer) -> None:
    assert server.http.get(models_url()).status_code == 200


def test_a_token_file_maps_tokens_to_users(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('# operators\n\ns3cret,alice,uid-1,"admins,ops"\n  plain-token  \n')

    assert load_tokens(path) == {
        "s3cret": Principal("alice", frozenset({"admins", "ops", "system:authenticated"})),
        "plain-token": Principal("tokens.csv:4", frozenset({"system:authenticated"})),
    }


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("good\n,bob\n", 2, "token must be"),
        ("good\nhas space,bob\n", 2, "token must be"),
        ("good\ngood,bob\n", 2, "already listed"),
        ("# nothing\n\n", None, "holds no token"),
    ],
)
def test_a_bad_token_file_names_the_file_and_line(
    tmp_path: Path, text: str, line: int | None, problem: str
) -> None:
    path = tmp_path / "tokens"
    path.write_text(text)

    with pytest.raises(BadRequest) as caught:
        load_tokens(path)

    assert problem in caught.value.message
    assert str(path) in caught.value.message
    if line is not None:
        assert f"{path}:{line}:" in caught.value.message


def test_a_missing_token_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="cannot read the token file"):
        load_tokens(tmp_path / "absent")


# -- probes, version, failures -----------------------------------------------------------------


def test_healthz_and_readyz_answer_ok(server: RunningServer) -> None:
    assert server.http.get("/healthz").text == "ok"
    assert server.http.get("/readyz").text == "ok"


def test_readyz_is_503_with_the_reason_until_ready(start_server: Any) -> None:
    reasons = ["controllers are starting"]
    server = start_server(readiness=lambda: reasons[0] if reasons else None)

    before = server.http.get("/readyz")
    reasons.clear()
    after = server.http.get("/readyz")

    status = assert_status(before, 503, "ServiceUnavailable")
    assert "controllers are starting" in status["message"]
    assert after.status_code == 200


def test_version_names_the_store_backend(server: RunningServer, store_url: str) -> None:
    body = server.http.get("/version").json()

    assert body["version"]
    assert body["store"] == ("sqlite" if store_url.startswith("sqlite") else "postgresql")


def test_an_unavailable_store_is_503_with_retry_after(server: RunningServer) -> None:
    server.store.close()

    for response in (
        server.http.get(models_url()),
        server.http.get(models_url(name="m")),
        server.http.post(models_url(), json=model("m")),
        server.http.get(models_url(), params={"watch": "true"}),
        server.http.get("/readyz"),
    ):
        assert_status(response, 503, "ServiceUnavailable")
        assert int(response.headers["retry-after"]) >= 1


def test_an_internal_failure_is_a_500_status_without_a_traceback(
    start_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_readiness() -> str | None:
        raise RuntimeError("readiness probe exploded")

    server = start_server(readiness=broken_readiness)

    with caplog.at_level(logging.ERROR, logger="modelplane.server"):
        response = server.http.get("/readyz")

    status = assert_status(response, 500, "InternalError")
    assert "exploded" not in response.text
    assert "logged" in status["message"]
    assert any("readiness probe exploded" in (r.exc_text or "") for r in caplog.records)
