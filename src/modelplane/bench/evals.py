"""Evaluations benchmark: what scoring every answer of a rollout costs the clients' requests.

    python benchmarks/evals.py              # 20 rounds of 200 requests per endpoint
    python benchmarks/evals.py --quick      # 4 rounds of 100

One gateway (``serve_gateway``, in a thread) over a SQLite store, one fake hosted provider
(``modelplane.testing.FakeUpstream``) and two Endpoints on it: ``plain`` (no rollout) and
``evaluated`` (a rollout in progress whose eval set scores every answer, ``sampleRate: 1``,
with three cases, one of them a regular expression). Sequential chat requests go to each in
alternating rounds, so that load from other programs moves both alike; half are streamed. The
baseline is ``plain`` in the same run: ``ratio_p50``/``ratio_p99`` are evaluated over plain. The
gateway's ``modelplane_gateway_evaluations_total`` says how many were scored and dropped.

Progress goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import functools
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from modelplane.api import validate
from modelplane.bench._figures import percentile, print_summary, progress
from modelplane.egress import EgressRules
from modelplane.gateway import serve_gateway
from modelplane.store import Store, open_store
from modelplane.testing import FakeUpstream

GROUP = "modelplane.dev/v1alpha1"
CASES = [
    {"prompt": "What is 2+2?", "expect": "exact", "answer": "4"},
    {"prompt": "(?i)2\\+2", "promptMatch": "regex", "expect": "regex", "answer": "^\\d+$"},
    {"prompt": "as json", "expect": "json"},
]
say = progress("evals")


def _declare(store: Store, provider: FakeUpstream) -> None:
    for name, evals in (("plain", None), ("evaluated", {"sampleRate": 1.0, "cases": CASES})):
        store.create(
            validate(
                {
                    "apiVersion": GROUP,
                    "kind": "Model",
                    "metadata": {"name": f"{name}-model"},
                    "spec": {
                        "versions": [{"name": "v1", "format": "upstream", "source": provider.url}]
                    },
                }
            )
        )
        spec: dict[str, Any] = {"model": f"{name}-model"}
        if evals is not None:
            spec["rollout"] = {"steps": [50, 100], "analysis": {"eval": evals}}
        created = store.create(
            validate(
                {"apiVersion": GROUP, "kind": "Endpoint", "metadata": {"name": name}, "spec": spec}
            )
        )
        if evals is not None:
            # as the rollout controller writes it while a step is analysed
            created["status"] = {
                "rollout": {"phase": "Progressing", "canary": "v1", "stable": "v1"}
            }
            store.update_status(created)


def _round(client: httpx.Client, model: str, n: int, out: list[float]) -> None:
    for i in range(n):
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "What is 2+2?"}],
            "stream": bool(i % 2),
        }
        start = time.perf_counter()
        r = client.post("/v1/chat/completions", json=body)
        r.read()
        out.append(time.perf_counter() - start)
        if r.status_code != 200:
            raise SystemExit(f"{model} answered {r.status_code}: {r.text[:200]}")


def _wait_routed(client: httpx.Client) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        names = client.get("/v1/models").text
        if "plain" in names and "evaluated" in names:
            return
        time.sleep(0.05)  # polling a condition with a deadline
    raise SystemExit("the gateway did not route both endpoints within 30 s")


def _counts(client: httpx.Client) -> dict[str, int]:
    found: dict[str, int] = {}
    for line in client.get("/metrics").text.splitlines():
        m = re.match(r'modelplane_gateway_evaluations_total\{.*result="(\w+)"\} (\d+)', line)
        if m:
            found[m.group(1)] = found.get(m.group(1), 0) + int(m.group(2))
    return found


def run(rounds: int, per_round: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home, FakeUpstream("provider", reply="4") as provider:
        store = open_store(f"sqlite:///{Path(home) / 'modelplane.db'}")
        _declare(store, provider)
        started: list[str] = []
        stop = threading.Event()
        loopback = EgressRules(allow_loopback=True)  # the fake provider listens on loopback
        serve = functools.partial(
            serve_gateway, store, port=0, egress=loopback, on_started=started.append, stop=stop
        )
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not started and time.monotonic() < deadline:
            time.sleep(0.01)  # polling a condition with a deadline
        if not started:
            raise SystemExit("the gateway did not start within 30 s")
        timings: dict[str, list[float]] = {"plain": [], "evaluated": []}
        with httpx.Client(base_url=started[0], timeout=30) as client:
            _wait_routed(client)
            for model in timings:  # warm-up, not counted
                _round(client, model, 50, [])
            for i in range(rounds):
                order = ("plain", "evaluated") if i % 2 == 0 else ("evaluated", "plain")
                for model in order:
                    _round(client, model, per_round, timings[model])
                say(f"round {i + 1}/{rounds}")
            counts = _counts(client)
        stop.set()
        thread.join(10)
        store.close()
    return _figures(timings, counts, rounds, per_round)


def _figures(
    timings: dict[str, list[float]], counts: dict[str, int], rounds: int, per_round: int
) -> dict[str, Any]:
    ms = {
        model: {"p50_ms": percentile(t, 0.5) * 1000, "p99_ms": percentile(t, 0.99) * 1000}
        for model, t in timings.items()
    }
    return {
        "bench": "evals",
        "requests_per_endpoint": rounds * per_round,
        "plain": ms["plain"],
        "evaluated": ms["evaluated"],
        "ratio_p50": ms["evaluated"]["p50_ms"] / ms["plain"]["p50_ms"],
        "ratio_p99": ms["evaluated"]["p99_ms"] / ms["plain"]["p99_ms"],
        "evaluations": counts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="4 rounds of 100 requests")
    args = parser.parse_args(argv)
    rounds, per_round = (4, 100) if args.quick else (20, 200)
    print_summary(run(rounds, per_round))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
