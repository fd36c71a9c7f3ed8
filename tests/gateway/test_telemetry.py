"""Per-version samples for canary analysis, and the gateway's Prometheus metrics."""

from __future__ import annotations

import time

from tests.gateway._env import Env


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
