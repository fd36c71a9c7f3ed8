"""`modelplane gateway` alone: serves /v1 from the store named by --database-url."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess, free_port
from tests.policy._manifests import runtime_policy

from modelplane.api import validate
from modelplane.policy import open_audit_log
from modelplane.store import open_store
from modelplane.testing import FakeUpstream


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=1.0)
    except httpx.TransportError:
        return None


def test_gateway_command_serves_models_from_the_store(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    with FakeUpstream("provider", reply="pong") as provider, open_store(db) as store:
        store.create(
            validate(
                {
                    "apiVersion": "modelplane.dev/v1alpha1",
                    "kind": "Model",
                    "metadata": {"name": "hosted"},
                    "spec": {
                        "versions": [{"name": "v1", "format": "upstream", "source": provider.url}]
                    },
                }
            )
        )
        store.create(
            validate(
                {
                    "apiVersion": "modelplane.dev/v1alpha1",
                    "kind": "Endpoint",
                    "metadata": {"name": "ping"},
                    "spec": {"model": "hosted"},
                }
            )
        )
        with _standalone_gateway(db, tmp_path) as base:
            r = httpx.post(
                f"{base}/v1/chat/completions",
                json={"model": "ping", "messages": [{"role": "user", "content": "ping?"}]},
            )
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == "pong"
            assert "modelplane_gateway_requests_total" in httpx.get(f"{base}/metrics").text


def _raw(base: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as written on a fresh connection; (status, headers, body) of the answer."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the connection after {answer!r}"
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
        }
        while len(body) < int(headers.get("content-length", "0")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split()[1]), headers, body


def test_both_fast_http_pieces_are_installed_so_the_pins_below_are_exercised() -> None:
    assert importlib.util.find_spec("httptools") is not None
    assert importlib.util.find_spec("uvloop") is not None


def test_standalone_gateway_runs_on_httptools_and_uvloop_when_installed() -> None:
    from modelplane.gateway._serve import server_stack

    assert server_stack() == "uvicorn+httptools+uvloop"


def test_standalone_gateway_answers_a_malformed_request_with_an_openai_400(
    tmp_path: Path,
) -> None:
    with _standalone_gateway(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path) as base:
        for request in (
            b"FOO /v1/models HTTP/1.1\r\nhost: t\r\n\r\n",  # unknown method
            b"GET /v1/models HTTP/9.9\r\nhost: t\r\n\r\n",  # unknown version
            b"\x00\x01garbage\r\n\r\n",  # not HTTP at all
            b"GET /v1/models HTTP/1.1\r\nbad header\r\n\r\n",  # header without a colon
        ):
            status, headers, body = _raw(base, request)
            assert status == 400, (request, status, body)
            assert headers["content-type"] == "application/json", (request, headers)
            error = orjson.loads(body)["error"]
            assert error["type"] == "invalid_request_error"
            assert error["message"].startswith("malformed HTTP request")
        # and it still serves well-formed requests afterwards
        r = httpx.get(f"{base}/v1/models")
        assert r.status_code == 200, r.text


def test_rest_api_under_up_answers_an_unknown_method_with_a_status_despite_httptools(
    tmp_path: Path,
) -> None:
    up = UpProcess(tmp_path / "home").start()
    try:
        status, headers, body = _raw(
            up.url, b"FOO /apis/modelplane.dev/v1alpha1/models HTTP/1.1\r\nhost: t\r\n\r\n"
        )
    finally:
        up.stop()
    assert 400 <= status < 500, (status, body)
    assert headers["content-type"].startswith("application/json"), headers
    obj = orjson.loads(body)
    assert obj["kind"] == "Status" and obj["status"] == "Failure", obj
    assert obj["code"] == status
    assert b"Traceback" not in (tmp_path / "home" / "up.log").read_bytes()


CAPPED = """
@id("small-calls")
@reason("calls ask for at most 100 tokens")
forbid(principal, action == Action::"model.call", resource)
when { context.max_tokens > 100 };
"""


def test_gateway_command_applies_runtime_policies_and_records_their_decisions(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    with FakeUpstream("provider", reply="pong") as provider, open_store(db) as store:
        # given a served model and a runtime Policy capping max_tokens, in the shared store
        store.create(validate(_upstream_model("hosted", provider.url)))
        store.create(validate(_endpoint("ping", "hosted")))
        store.create(validate(runtime_policy("small-calls", "default", CAPPED)))
        with _standalone_gateway(db, tmp_path) as base:
            # when a client asks for 500 tokens, then for 50
            over, under = (
                httpx.post(
                    f"{base}/v1/chat/completions",
                    json={"model": "ping", "messages": [{"role": "user", "content": "hi"}]}
                    | {"max_tokens": n},
                    timeout=30,
                )
                for n in (500, 50)
            )
            # then the standalone gateway refuses the first naming the policy, serves the second
            assert over.status_code == 403, over.text
            assert "small-calls" in over.json()["error"]["message"]
            assert under.status_code == 200, under.text
    # and both decisions are in the platform's audit log, in the shared database
    with open_audit_log(db) as log:
        events = [r.event for r in log.records()]
    decisions = [(e.category, e.decision) for e in events if e.category == "model"]
    assert decisions == [("model", "deny"), ("model", "allow")]


def _upstream_model(name: str, source: str) -> dict[str, object]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"versions": [{"name": "v1", "format": "upstream", "source": source}]},
    }


def _endpoint(name: str, model: str) -> dict[str, object]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Endpoint",
        "metadata": {"name": name},
        "spec": {"model": model},
    }


@contextmanager
def _standalone_gateway(db: str, home: Path) -> Iterator[str]:
    """`modelplane gateway` on ``db`` in a process of its own, ready; yields its base URL and, on
    leaving, stops it and checks that it printed no traceback."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "modelplane.cli", "gateway", "--port", str(port)),
            *("--database-url", db, "--home", str(home), "--allow-loopback-upstreams"),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: (r := _get(f"{base}/readyz")) is not None and r.status_code == 200,
            timeout=20,
            what="the gateway to be ready",
        )
        yield base
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert b"Traceback" not in err
