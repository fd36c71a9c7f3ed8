"""Per-version samples for canary analysis, and the gateway's Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.gateway._env import Env

from modelplane.gateway._telemetry import answered_tpot
from modelplane.serving.simulated import LatencyModel, create_simulated_app


def test_samples_are_kept_per_version_with_ttft_and_errors(env: Env) -> None:
    good, bad = env.fake(), env.fake()
    bad.mode = "fail"
    env.endpoint("ep", {"v1": [good], "v2": [bad]}, traffic={"v1": 50, "v2": 50})
    start = time.time()
    body = {"model": "ep", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    for _ in range(20):
        env.client.post("/chat/completions", json=body).read()
    r = env.client.get(
        "/_modelplane/samples", params={"endpoint": "ep", "version": "v1", "since": start}
    )
    samples = r.json()["samples"]
    assert samples and all(s["t"] > start and s["ttft_s"] > 0 and not s["error"] for s in samples)
    failed = env.client.get("/_modelplane/samples", params={"endpoint": "ep"}).json()["versions"][
        "v2"
    ]
    assert failed and all(s["error"] for s in failed)
    later = env.client.get(
        "/_modelplane/samples", params={"endpoint": "ep", "version": "v1", "since": time.time()}
    )
    assert later.json()["samples"] == []


def test_metrics_count_requests_by_model_version_and_code(env: Env) -> None:
    env.endpoint("ep", {"v1": [env.fake()]})
    for _ in range(3):
        env.chat("ep")
    text = env.client.get("/_modelplane/metrics").text
    assert 'modelplane_gateway_requests_total{model="ep",version="v1",code="200"} 3' in text
    assert "modelplane_gateway_request_duration_seconds_count" in text
    assert "modelplane_gateway_time_to_first_token_seconds_bucket" in text


def test_a_non_streamed_answer_records_the_time_per_output_token_the_worker_reports(
    env: Env,
) -> None:
    # given a simulated replica producing 5 tokens, 40 ms apart after the first
    latency = LatencyModel(ttft=0.02, tpot=0.04, output_tokens=5)
    env.endpoint("ep", {"v1": [env.worker(create_simulated_app("sim", latency))]})
    # when a client asks for a non-streamed answer
    r = env.chat("ep", "hello")
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 5, r.text
    # then its sample holds that TPOT, not 0 (the whole answer reached the gateway at once)
    (sample,) = env.client.get(
        "/_modelplane/samples", params={"endpoint": "ep", "version": "v1"}
    ).json()["samples"]
    # (less a little: uvloop keeps time in whole milliseconds, so its sleeps can end up to 1 ms early)
    early = 0.005
    assert 0.04 - early <= sample["tpot_s"] < 0.04 + 0.1
    assert (
        sample["ttft_s"] >= 0.02 + 4 * 0.04 - early
    )  # the client's first token came with the last


def test_a_non_streamed_answer_without_worker_timing_records_no_tpot_rather_than_0(
    env: Env,
) -> None:
    # given an upstream that reports no timing (as hosted providers do)
    env.endpoint("ep", {"v1": [env.fake(reply="one two three four five six")]})
    # when a client asks for a non-streamed answer of several tokens
    r = env.chat("ep")
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] > 1
    # then its TPOT is unknown, not a fabricated 0
    (sample,) = env.client.get(
        "/_modelplane/samples", params={"endpoint": "ep", "version": "v1"}
    ).json()["samples"]
    assert sample["tpot_s"] is None and sample["ttft_s"] > 0


@pytest.mark.parametrize(
    ("header", "tokens", "expected"),
    [
        ("ttft;dur=100, tpot;dur=25", 9, 0.025),  # the worker's own figure
        ("ttft;dur=200", 9, (1.0 - 0.2) / 8),  # derived from the worker's TTFT
        ('cache;desc="hit", ttft;dur="200"', 5, (1.0 - 0.2) / 4),
        ("ttft;dur=200", 1, None),  # one token: nothing between tokens
        ("db;dur=abc", 9, None),
        (None, 9, None),
    ],
)
def test_a_non_streamed_tpot_comes_from_the_workers_server_timing(
    header: str | None, tokens: int, expected: float | None
) -> None:
    tpot = answered_tpot(header, 1.0, tokens)
    assert tpot is None if expected is None else tpot == pytest.approx(expected)


def _families(text: str) -> dict[str, Any]:
    """The metric families of a Prometheus text page, as prometheus_client's parser reads them."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def _count(family: Any, **labels: str) -> float:
    return sum(
        s.value
        for s in family.samples
        if s.name.endswith("_count") and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_genai_metrics_carry_the_conventions_names_labels_and_buckets(env: Env) -> None:
    # given an Endpoint answering chat, streamed and not, and one whose replica fails
    good, bad = env.fake(), env.fake()
    bad.mode = "fail"
    env.endpoint("ep", {"v1": [good]})
    env.endpoint("broken", {"v1": [bad]})
    env.chat("ep")
    body = {"model": "ep", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    env.client.post("/chat/completions", json=body).read()
    env.client.post("/chat/completions", json={**body, "model": "broken", "stream": False})
    # when the metrics are read by Prometheus' own parser
    families = _families(env.client.get("/_modelplane/metrics").text)
    chat = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "modelplane"}
    # then token usage is by token type, with the conventions' buckets
    tokens = families["gen_ai_client_token_usage"]
    assert tokens.type == "histogram"
    output = _count(tokens, gen_ai_request_model="ep", gen_ai_token_type="output", **chat)
    assert output == 2
    bounds = {float(s.labels["le"]) for s in tokens.samples if s.name.endswith("_bucket")}
    assert {1, 4, 16, 67108864, float("inf")} <= bounds
    # and every operation is timed, failures with their error type
    duration = families["gen_ai_client_operation_duration_seconds"]
    assert _count(duration, gen_ai_request_model="ep", **chat) == 2
    assert _count(duration, gen_ai_request_model="broken", **chat) >= 1
    failed = [s for s in duration.samples if s.labels.get("gen_ai_request_model") == "broken"]
    assert failed and all(s.labels.get("error_type", "").startswith("5") for s in failed)
    # and the stream's first token is the server's time to first token (the whole answer is not)
    assert (
        _count(families["gen_ai_server_time_to_first_token_seconds"], gen_ai_request_model="ep")
        == 1
    )
