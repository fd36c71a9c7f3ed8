"""The simulated worker: the worker API over a latency model."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from .conftest import WorkerProcess


def test_simulated_worker_follows_its_latency_model_and_streams_sse(tmp_path: Path) -> None:
    # given a simulated worker with TTFT 200 ms and 50 ms per output token
    worker = WorkerProcess(
        "modelplane.serving.simulated",
        ["--name", "sim", "--ttft", "0.2", "--tpot", "0.05", "--output-tokens", "5"],
        tmp_path,
    )
    try:
        url = worker.wait_ready()
        body = {"model": "sim", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        # when a streaming chat completion is requested
        start = time.monotonic()
        first_at = None
        lines = []
        with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=10) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data: ") and first_at is None:
                    first_at = time.monotonic() - start
                if line:
                    lines.append(line)
        total = time.monotonic() - start
        # then the first token came after the TTFT, the 5 tokens after 4 more TPOTs
        assert first_at is not None and first_at >= 0.2
        assert total >= 0.2 + 4 * 0.05
        assert lines[-1] == "data: [DONE]"
        assert sum('"content"' in line for line in lines) == 5
        # and the metrics saw one request and five tokens
        metrics = httpx.get(url.removesuffix("/v1") + "/metrics").text
        assert "modelplane_worker_generated_tokens_total 5.0" in metrics
        assert "modelplane_worker_time_to_first_token_seconds_count 1.0" in metrics
    finally:
        worker.stop()


def test_simulated_worker_answers_bad_requests_in_openai_error_shape(tmp_path: Path) -> None:
    worker = WorkerProcess("modelplane.serving.simulated", ["--ttft", "0"], tmp_path)
    try:
        url = worker.wait_ready()
        r = httpx.post(f"{url}/chat/completions", json={"messages": "hi"})
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["param"] == "messages"
        assert error["type"] == "invalid_request_error"
        r = httpx.post(f"{url}/chat/completions", content=b"{not json")
        assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    finally:
        worker.stop()


def test_sampling_defaults_follow_the_generation_config_as_transformers_reads_it() -> None:
    from types import SimpleNamespace

    from modelplane.serving._transformers import _generation_defaults

    # a config without do_sample decodes greedily, whatever temperature it names
    greedy = _generation_defaults(SimpleNamespace(do_sample=False, temperature=0.7, top_p=0.9))
    assert (greedy.temperature, greedy.top_p) == (0.0, 1.0)
    # a sampling config gives its own temperature and top_p
    sampled = _generation_defaults(SimpleNamespace(do_sample=True, temperature=0.6, top_p=0.95))
    assert (sampled.temperature, sampled.top_p) == (0.6, 0.95)
