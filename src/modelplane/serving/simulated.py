"""A simulated model worker: the worker's HTTP API over a latency model instead of weights.

Replicas on simulated nodes (Nodes labelled ``modelplane.dev/simulated=true``) run this, so large
clusters can be exercised without hardware; it is also the test double for gateway benchmarks::

    python -m modelplane.serving.simulated --port 0 --port-file FILE --name NAME \\
        [--ttft 0.05] [--tpot 0.01] [--prefill-per-token 0] [--max-running 64] \\
        [--output-tokens 16] [--slowdown 0]

The latency model, per request: wait for one of ``max_running`` slots (the queue), then the first
token after ``ttft + prefill_per_token * prompt_tokens`` seconds, then one token every
``tpot * (1 + slowdown * (running - 1))`` seconds, until ``min(max_tokens, output_tokens)`` tokens
(or a stop string). Tokens are filler words; a prompt's tokens are counted as its words.
Embeddings are deterministic unit vectors derived from the text's hash.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette

from modelplane.serving._app import create_worker_app
from modelplane.serving._engine import (
    Delta,
    GenerationRequest,
    SamplingDefaults,
    safe_prefix_length,
    truncate_at_stop,
)
from modelplane.serving._serve import announce, bind, exit_with_parent, serve_app

_FILLER = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "simulated",
    "replicas",
    "answer",
    "every",
    "request",
    "with",
    "filler",
    "text",
    "of",
    "a",
    "known",
    "length",
]


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Seconds to the first token and between tokens (see the module docstring)."""

    ttft: float = 0.05
    tpot: float = 0.01
    prefill_per_token: float = 0.0
    slowdown: float = 0.0
    max_running: int = 64
    output_tokens: int = 16
    embedding_dim: int = 8


class SimulatedEngine:
    """An :class:`~modelplane.serving._engine.Engine` that sleeps instead of computing."""

    def __init__(self, latency: LatencyModel | None = None) -> None:
        self.latency = latency or LatencyModel()
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0
        self._running = 0

    @property
    def queue_depth(self) -> int:
        return self._waiting

    @property
    def running(self) -> int:
        return self._running

    @property
    def kv_cache_usage(self) -> float:
        return min(1.0, self._running / self.latency.max_running)

    @property
    def sampling_defaults(self) -> SamplingDefaults:
        return SamplingDefaults()

    @property
    def features(self) -> frozenset[str]:
        # filler words: no grammar, no tools, no token probabilities (the worker answers 400)
        return frozenset()

    def render_chat(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> str:
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        lat = self.latency
        if self._slots is None:
            self._slots = asyncio.Semaphore(lat.max_running)
        prompt_tokens = max(1, len(request.prompt.split()))
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._running += 1
        try:
            await asyncio.sleep(lat.ttft + lat.prefill_per_token * prompt_tokens)
            count = max(1, min(request.max_tokens, lat.output_tokens))
            text, sent = "", 0
            for i in range(count):
                if i:
                    factor = 1 + lat.slowdown * max(0, self._running - 1)
                    await asyncio.sleep(lat.tpot * factor)
                text += ("" if i == 0 else " ") + _FILLER[i % len(_FILLER)]
                cut, stopped = truncate_at_stop(text, request.stop)
                if stopped or i == count - 1:
                    yield Delta(
                        cut[sent:],
                        finish_reason="stop" if stopped else "length",
                        prompt_tokens=prompt_tokens,
                        completion_tokens=i + 1,
                    )
                    return
                end = safe_prefix_length(text, request.stop)
                if end > sent:
                    yield Delta(text[sent:end])
                    sent = end
        finally:
            self._running -= 1
            self._slots.release()

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        vectors = []
        for text in texts:
            raw = hashlib.sha256(text.encode()).digest()
            v = [(b - 127.5) for b in raw[: self.latency.embedding_dim]]
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            vectors.append([x / norm for x in v])
        return vectors, sum(max(1, len(t.split())) for t in texts)

    def close(self) -> None:
        pass


def create_simulated_app(name: str, latency: LatencyModel | None = None) -> Starlette:
    """The worker app of a simulated replica named ``name`` (for in-process tests and benches)."""
    return create_worker_app(SimulatedEngine(latency), model_name=name, digest="")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m modelplane.serving.simulated", description=__doc__)
    p.add_argument("--name", default="simulated")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", default=None)
    p.add_argument("--ttft", type=float, default=0.05)
    p.add_argument("--tpot", type=float, default=0.01)
    p.add_argument("--prefill-per-token", type=float, default=0.0)
    p.add_argument("--slowdown", type=float, default=0.0)
    p.add_argument("--max-running", type=int, default=64)
    p.add_argument("--output-tokens", type=int, default=16)
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    exit_with_parent()
    latency = LatencyModel(
        ttft=args.ttft,
        tpot=args.tpot,
        prefill_per_token=args.prefill_per_token,
        slowdown=args.slowdown,
        max_running=args.max_running,
        output_tokens=args.output_tokens,
    )
    app = create_simulated_app(args.name, latency)
    sock = bind(args.host, args.port)
    announce(args.port_file, sock.getsockname()[1])
    serve_app(app, sock, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
