"""The real model worker: SmolLM2-135M-Instruct on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from .conftest import WorkerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["continuous", "rounds"])
def smollm2_worker(
    smollm2: tuple[Path, str],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> object:
    """The worker with each ``--batching``: both must answer alike over HTTP."""
    folder, digest = smollm2
    tmp = tmp_path_factory.mktemp("worker")
    args = ["--model-dir", str(folder), "--digest", digest, "--name", "smollm2", "--home", str(tmp)]
    worker = WorkerProcess(
        "modelplane.serving.worker",
        [*args, "--batching", request.param],
        tmp,
        env={"CUDA_VISIBLE_DEVICES": ""},
    )
    try:
        worker.wait_ready(timeout=120)
        yield worker
    finally:
        worker.stop()


def test_worker_answers_a_factual_question_greedily(smollm2_worker: WorkerProcess) -> None:
    # when asked with temperature 0
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0,
        "max_tokens": 20,
    }
    r = httpx.post(f"{smollm2_worker.url}/chat/completions", json=body, timeout=60)
    # then the answer names Paris, in OpenAI's shape
    assert r.status_code == 200, r.text
    answer = r.json()
    assert "Paris" in answer["choices"][0]["message"]["content"]
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] > 0


def test_worker_streams_sse_chunks_ending_with_done(smollm2_worker: WorkerProcess) -> None:
    body = {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0,
        "max_tokens": 20,
        "stream": True,
    }
    with httpx.stream("POST", f"{smollm2_worker.url}/chat/completions", json=body, timeout=60) as r:
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len(chunks) > 2  # streamed token by token, not in one piece
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert "Paris" in text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    metrics = httpx.get(smollm2_worker.url.removesuffix("/v1") + "/metrics").text
    for name in (
        "modelplane_worker_queue_depth",
        "modelplane_worker_running_requests",
        "modelplane_worker_kv_cache_usage_ratio",
        "modelplane_worker_time_to_first_token_seconds_bucket",
        "modelplane_worker_time_per_output_token_seconds_bucket",
        "modelplane_worker_generated_tokens_total",
    ):
        assert name in metrics
