"""Constrained decoding benchmark: decode tokens/s of the transformers worker with and without a
JSON Schema (``response_format``), same prompt, same worker, same run.

It starts one real worker process (``python -m modelplane.serving.worker``) on SmolLM2, then in
alternating rounds (so other load on the machine moves both alike) streams the same greedy chat
completion twice: once free, once under a JSON Schema that leaves the model a long free string
(so both runs generate ``max_tokens`` tokens), after one warm-up request of each. Per request it
takes the decode rate (tokens after the first, over the time from the first streamed token to
the last) and the time to the first token (``ttft_s_schema_first_use``: the grammar compiled on
its first use, then cached). The last stdout line is one JSON object; ``ratio`` = constrained /
free median decode tokens/s (1.0: no cost), ``best_ratio`` the same of each mode's fastest
request (the least disturbed on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from modelplane.bench.batching import find_model
from modelplane.serving import artifact_digest

PROMPT = [{"role": "user", "content": "Describe Paris in detail: its history, its food, its art."}]
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "description": {"type": "string"}},
    "required": ["city", "description"],
    "additionalProperties": False,
}


def _start(model_dir: Path, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = home / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelplane.serving.worker",
            "--model-dir",
            str(model_dir),
            "--digest",
            artifact_digest(model_dir),
            "--name",
            "bench",
            "--home",
            str(home),
            "--port",
            "0",
            "--port-file",
            str(port_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited with {proc.returncode}")
        text = port_file.read_text().strip() if port_file.exists() else ""
        if text:
            url = f"http://127.0.0.1:{text}"
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the worker did not start within 300 s")


def _one(url: str, max_tokens: int, constrained: bool) -> dict[str, float]:
    """Stream one greedy completion: tokens, time to first token, decode tokens/s."""
    body: dict[str, Any] = {
        "messages": PROMPT,
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if constrained:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": SCHEMA},
        }
    start = time.perf_counter()
    first = last = 0.0
    tokens = 0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif any((c.get("delta") or {}).get("content") for c in chunk["choices"]):
                last = time.perf_counter()
                first = first or last
    decode = (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0
    return {"tokens": tokens, "ttft_s": first - start, "decode_tps": decode}


def measure(model_dir: Path, rounds: int, max_tokens: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-constrained-") as tmp:
        proc, url = _start(model_dir, Path(tmp))
        try:
            cold = _one(url, max_tokens, constrained=True)  # the grammar compiled here
            _one(url, max_tokens, constrained=False)  # both paths warm before measuring
            runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
            for i in range(rounds):
                # the order alternates too: a burst of other load hits each mode first as often
                for constrained in (False, True) if i % 2 == 0 else (True, False):
                    runs[constrained].append(_one(url, max_tokens, constrained))
        finally:
            proc.terminate()
            proc.wait(30)
    free = statistics.median(r["decode_tps"] for r in runs[False])
    schema = statistics.median(r["decode_tps"] for r in runs[True])
    best_free = max(r["decode_tps"] for r in runs[False])
    best_schema = max(r["decode_tps"] for r in runs[True])
    return {
        "benchmark": "constrained_decoding",
        "rounds": rounds,
        "max_tokens": max_tokens,
        "tokens_free": [r["tokens"] for r in runs[False]],
        "tokens_schema": [r["tokens"] for r in runs[True]],
        "decode_tps_free": round(free, 2),
        "decode_tps_schema": round(schema, 2),
        "ratio": round(schema / free, 3) if free else None,
        # the least disturbed request of each mode (the machine may be shared)
        "best_decode_tps_free": round(best_free, 2),
        "best_decode_tps_schema": round(best_schema, 2),
        "best_ratio": round(best_schema / best_free, 3) if best_free else None,
        "ttft_s_free": round(statistics.median(r["ttft_s"] for r in runs[False]), 3),
        "ttft_s_schema": round(statistics.median(r["ttft_s"] for r in runs[True]), 3),
        "ttft_s_schema_first_use": round(cold["ttft_s"], 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="SmolLM2 safetensors (default: found as benchmarks/batching.py finds it)",
    )
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--quick", action="store_true", help="one round of 12 tokens")
    args = p.parse_args(argv)
    model_dir = find_model(str(args.model_dir) if args.model_dir else None)
    if not (model_dir / "config.json").exists():
        p.error(f"no model at {model_dir}: give --model-dir a SmolLM2 safetensors folder")
    rounds, max_tokens = (1, 12) if args.quick else (args.rounds, args.max_tokens)
    print(json.dumps(measure(model_dir, rounds, max_tokens)))
    return 0
