"""Per-version samples for canary analysis, and the gateway's Prometheus metrics."""

from __future__ import annotations

import time

import pytest
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
