"""Retries before the first token, never after; fallbacks; 503 and 504 with Retry-After."""

from __future__ import annotations

import time

import orjson
from tests.e2e._proc import free_port
from tests.gateway._env import Env

from modelplane.gateway import FALLBACKS_ANNOTATION
from modelplane.testing import FakeUpstream


def test_failure_before_the_first_token_is_retried_on_another_replica(env: Env) -> None:
    # given one failing (500) replica and one refusing connections, beside a healthy one
    broken, good = env.fake("broken"), env.fake("good")
    broken.mode = "fail"
    refused = FakeUpstream("refused", port=free_port())  # never started: connection refused
    env.endpoint("ep", {"v1": [broken, refused, good]}, policy="round-robin")
    # when requests arrive, then every one is answered by the healthy replica
    for _ in range(6):
        r = env.chat("ep")
        assert r.status_code == 200, r.text
        assert r.headers["x-modelplane-replica"] == "ep-v1-2"
    assert broken.requests["/v1/chat/completions"] >= 2


def test_a_dropped_connection_before_any_byte_is_retried(env: Env) -> None:
    dropping, good = env.fake(), env.fake()
    dropping.mode = "drop"
    env.endpoint("ep", {"v1": [dropping, good]}, policy="round-robin")
    assert all(env.chat("ep", stream=False).status_code == 200 for _ in range(4))
    assert dropping.requests["/v1/chat/completions"] >= 1


def test_no_retry_after_the_stream_started_the_client_gets_an_error_event(env: Env) -> None:
    breaking, good = env.fake("breaking"), env.fake("good")
    breaking.mode = "break"
    env.endpoint("ep", {"v1": [breaking, good]}, policy="round-robin")
    body = {"model": "ep", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    outcomes = []
    for _ in range(2):
        with env.client.stream("POST", "/chat/completions", json=body) as r:
            assert r.status_code == 200
            events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
        errors = [orjson.loads(e)["error"] for e in events[:-1] if '"error"' in e]
        outcomes.append((r.headers["x-modelplane-replica"], errors, events[-1]))
    broken = [o for o in outcomes if o[0] == "ep-v1-0"]
    assert len(broken) == 1
    _, errors, last = broken[0]
    assert errors and errors[0]["code"] == "stream_interrupted" and last == "[DONE]"
    # the interrupted request was not replayed on the healthy replica
    assert good.requests["/v1/chat/completions"] == 1


def test_fallback_chain_serves_from_the_next_model(env: Env) -> None:
    down = env.fake()
    down.mode = "fail"
    also_down = env.fake()
    also_down.mode = "fail"
    backup = env.fake("backup", reply="from the backup")
    env.endpoint("second", {"v1": [also_down]})
    env.endpoint("backup", {"v1": [backup]})
    env.endpoint("primary", {"v1": [down]}, annotations={FALLBACKS_ANNOTATION: "second, backup"})
    r = env.chat("primary")
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "from the backup"
    assert r.headers["x-modelplane-fallback-from"] == "primary"
    assert also_down.requests["/v1/chat/completions"] == 1


def test_all_replicas_down_is_503_with_retry_after(env: Env) -> None:
    a, b = env.fake(), env.fake()
    a.mode = b.mode = "fail"
    env.endpoint("ep", {"v1": [a, b]})
    r = env.chat("ep")
    assert r.status_code == 503
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "upstream_unavailable"


def test_an_endpoint_without_ready_replicas_is_503(env: Env) -> None:
    env.endpoint("ep", {"v1": []})
    r = env.chat("ep")
    assert r.status_code == 503 and "retry-after" in r.headers
    assert "no ready replica" in r.json()["error"]["message"]


def test_a_hanging_upstream_times_out_instead_of_hanging(env: Env) -> None:
    hanging = env.fake()
    hanging.mode = "hang"
    env.endpoint("ep", {"v1": [hanging]})
    start = time.monotonic()
    r = env.chat("ep")
    elapsed = time.monotonic() - start
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
    assert elapsed < 1.5 + 3  # the read timeout of the test gateway, plus slack
