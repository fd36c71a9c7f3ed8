"""Shared limits benchmark: rate limits held across 3 gateways on PostgreSQL, and their cost.

Six ``modelplane gateway`` processes share one PostgreSQL schema and one fake hosted upstream
(``modelplane.testing.upstream``, in this process): three hold Endpoint limits across gateways
(the default), three per process (``--per-process-limits``, the baseline). Clients hammer each
set of three until every gateway refuses, in one minute window:

* ``overshoot`` — per set: requests admitted on an Endpoint with ``requestsPerMinute``, tokens
  admitted (the usage the answers reported) on one with ``tokensPerMinute``, against the limit;
  ``bound``: the overshoot the docs state (shared: none for requests, one request's reservation
  per gateway for tokens). Per-process limits admit about three times the limit;
* ``latency`` — sequential requests on an Endpoint whose limits are never reached, round-robin
  over each set, in alternating rounds so that load from other programs moves both alike: p50,
  p99 and mean per set, and ``p50_ratio`` (shared over per-process).

Needs PostgreSQL (``--database-url``, default ``$MODELPLANE_TEST_DATABASE_URL`` or the local
one); works in a schema of its own, dropped at the end. Progress goes to stderr; the last stdout
line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from modelplane.bench._figures import percentile, print_summary, progress
from modelplane.bench.gateway import _free_port, stop_processes

_say = progress("shared-limits")

#: tokens a test request may use: max_tokens 20, plus the prompt estimate and one
MAX_TOKENS = 20
RESERVATION = MAX_TOKENS + 1


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """``url`` with its search_path on a fresh schema, dropped on leaving."""
    import psycopg

    schema = f"mp_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def hosted_endpoints(database_url: str, upstream: str, limits: dict[str, dict[str, Any]]) -> None:
    """A Model on ``upstream`` and one Endpoint per entry of ``limits`` (name: spec.limits)."""
    from modelplane.api import validate
    from modelplane.store import open_store

    versions = [{"name": "v1", "format": "upstream", "source": upstream}]
    objects: list[dict[str, Any]] = [
        {"kind": "Model", "metadata": {"name": "hosted"}, "spec": {"versions": versions}}
    ]
    for name, spec_limits in limits.items():
        spec = {"model": "hosted", "limits": spec_limits}
        objects.append({"kind": "Endpoint", "metadata": {"name": name}, "spec": spec})
    with open_store(database_url) as store:
        for obj in objects:
            store.create(validate({"apiVersion": "modelplane.dev/v1alpha1", **obj}))


@dataclass(frozen=True)
class GatewayProcess:
    """A started ``modelplane gateway``: its base URL and its process."""

    url: str
    proc: subprocess.Popen[bytes]


@contextlib.contextmanager
def gateways(
    database_url: str, home: Path, count: int = 3, *, per_process: bool = False
) -> Iterator[list[GatewayProcess]]:
    """``count`` ``modelplane gateway`` processes on ``database_url``, ready; stopped on leaving."""
    started: list[GatewayProcess] = []
    env = {k: v for k, v in os.environ.items() if k != "MODELPLANE_DATABASE_URL"}
    home.mkdir(parents=True, exist_ok=True)
    try:
        for i in range(count):
            port = _free_port()
            args = [sys.executable, "-m", "modelplane.cli", "gateway", "--port", str(port)]
            args += ["--home", str(home), "--database-url", database_url]
            args += ["--allow-loopback-upstreams"]
            args += ["--per-process-limits"] if per_process else []
            with open(home / f"gateway-{i}.log", "ab") as log:
                proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
            started.append(GatewayProcess(f"http://127.0.0.1:{port}", proc))
        for g in started:
            _wait_ready(g.proc, g.url)
        yield started
    finally:
        stop_processes(*(g.proc for g in started))


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway at {url} exited with {proc.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the gateway at {url} was not ready within {timeout:.0f} s")


def wait_for_window(margin: float = 20.0) -> None:
    """Return when at least ``margin`` seconds are left in the current minute (windows are
    minutes of the Unix clock), so that a burst after it falls in one window."""
    left = 60.0 - time.time() % 60.0
    if left < margin:
        time.sleep(left + 0.05)


@dataclass
class Hammered:
    """What one burst got admitted: requests, and the tokens their answers reported."""

    requests: int = 0
    tokens: int = 0
    refused: int = 0
    windows: set[int] = field(default_factory=set)


def hammer(urls: Sequence[str], model: str, clients: int = 6, refusals: int = 5) -> Hammered:
    """Send chat requests for ``model`` from ``clients`` threads round-robin over ``urls`` until
    each gateway has refused ``refusals`` in a row (or 60 s passed)."""
    got = Hammered()
    streak = dict.fromkeys(urls, 0)
    lock = threading.Lock()
    body = {
        "model": model,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": "hi"}],
    }
    deadline = time.monotonic() + 60

    def client(offset: int) -> None:
        with httpx.Client(timeout=30.0) as http:
            i = offset
            while time.monotonic() < deadline:
                with lock:
                    if min(streak.values()) >= refusals:
                        return
                url = urls[i % len(urls)]
                i += 1
                r = http.post(f"{url}/v1/chat/completions", json=body)
                with lock:
                    got.windows.add(int(time.time() // 60))
                    if r.status_code == 200:
                        got.requests += 1
                        got.tokens += int(r.json()["usage"]["total_tokens"])
                        streak[url] = 0
                    elif r.status_code == 429:
                        got.refused += 1
                        streak[url] += 1
                    else:
                        raise RuntimeError(f"{url} answered {r.status_code}: {r.text}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def _overshoot(urls: list[str], rpm: int, tpm: int, shared: bool) -> dict[str, Any]:
    wait_for_window()
    requests = hammer(urls, "rpm")
    tokens = hammer(urls, "tpm")
    return {
        "requests_limit": rpm,
        "requests_admitted": requests.requests,
        "requests_ratio": round(requests.requests / rpm, 3),
        "requests_bound": rpm if shared else None,
        "tokens_limit": tpm,
        "tokens_admitted": tokens.tokens,
        "tokens_ratio": round(tokens.tokens / tpm, 3),
        "tokens_bound": tpm + len(urls) * RESERVATION if shared else None,
        "one_window": len(requests.windows | tokens.windows) == 1,
    }


def _latency(sets: dict[str, list[str]], n: int, round_size: int = 50) -> dict[str, Any]:
    body = {
        "model": "roomy",
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": "hi"}],
    }
    times: dict[str, list[float]] = {name: [] for name in sets}
    with httpx.Client(timeout=30.0) as http:
        for urls in sets.values():  # warm-up: connections, slices, caches
            for url in urls:
                for _ in range(5):
                    http.post(f"{url}/v1/chat/completions", json=body).raise_for_status()
        done = 0
        while done < n:
            for name, urls in sets.items():
                for i in range(round_size):
                    url = urls[i % len(urls)]
                    start = time.perf_counter()
                    http.post(f"{url}/v1/chat/completions", json=body).raise_for_status()
                    times[name].append(time.perf_counter() - start)
            done += round_size
    out: dict[str, Any] = {"requests_per_set": len(times["shared"])}
    for name, seen in times.items():
        out[name] = {
            "p50_ms": round(percentile(seen, 0.5) * 1e3, 3),
            "p99_ms": round(percentile(seen, 0.99) * 1e3, 3),
            "mean_ms": round(sum(seen) / len(seen) * 1e3, 3),
        }
    out["p50_ratio"] = round(out["shared"]["p50_ms"] / out["per_process"]["p50_ms"], 3)
    out["added_p50_ms"] = round(out["shared"]["p50_ms"] - out["per_process"]["p50_ms"], 3)
    return out


def run(database_url: str, *, quick: bool = False, requests: int | None = None) -> dict[str, Any]:
    """Start both sets of gateways and measure (see the module docstring)."""
    from modelplane.testing import FakeUpstream

    rpm, tpm = (60, 600) if quick else (300, 6000)
    n = requests or (300 if quick else 3000)
    figures: dict[str, Any] = {"benchmark": "shared-limits", "cpus": os.cpu_count(), "gateways": 3}
    with (
        postgres_schema(database_url) as url,
        FakeUpstream("provider") as upstream,
        tempfile.TemporaryDirectory(prefix="mp-bench-limits-") as tmp,
    ):
        limits = {
            "rpm": {"requestsPerMinute": rpm},
            "tpm": {"tokensPerMinute": tpm},
            "roomy": {"requestsPerMinute": 10**9, "tokensPerMinute": 10**12},
        }
        hosted_endpoints(url, upstream.url, limits)
        _say("starting 3 gateways with shared limits and 3 with per-process limits")
        with (
            gateways(url, Path(tmp) / "shared") as shared_set,
            gateways(url, Path(tmp) / "local", per_process=True) as local_set,
        ):
            shared, local = [g.url for g in shared_set], [g.url for g in local_set]
            _say(f"overshoot: hammering {rpm} requests/min and {tpm} tokens/min, shared")
            figures["shared"] = _overshoot(shared, rpm, tpm, shared=True)
            _say("overshoot: the same, per-process limits")
            figures["per_process"] = _overshoot(local, rpm, tpm, shared=False)
            _say(f"latency: {n} sequential requests per set, alternating rounds")
            figures["latency"] = _latency({"shared": shared, "per_process": local}, n)
    s = figures["shared"]
    figures["met"] = {
        "requests_within_bound": s["requests_admitted"] <= s["requests_bound"],
        "tokens_within_bound": s["tokens_admitted"] <= s["tokens_bound"],
    }
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelplane bench shared-limits", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MODELPLANE_TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test"),
        help="The PostgreSQL to work in (a schema of its own is created and dropped).",
    )
    parser.add_argument("--quick", action="store_true", help="Small sizes: a smoke test.")
    parser.add_argument("--requests", type=int, help="Sequential requests per latency set.")
    args = parser.parse_args(argv)
    print_summary(run(args.database_url, quick=args.quick, requests=args.requests))
    return 0
