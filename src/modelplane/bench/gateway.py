"""Gateway benchmark: what the /v1 gateway adds over calling the upstream directly.

Three processes share the machine: a fake OpenAI-compatible upstream (a raw asyncio protocol,
``modelplane.testing.upstream``), ``modelplane gateway`` over a SQLite store whose Endpoint routes to
that upstream as a worker replica, and this load generator (raw sockets, keep-alive). Every
figure through the gateway has its baseline in the same run: the same requests sent straight to
the upstream, in alternating rounds so that load from other programs moves both alike.
The gateway measured is the standalone one, on uvicorn with ``httptools`` and ``uvloop`` when they
import (the JSON's ``server`` says which, e.g. ``"uvicorn+httptools+uvloop"``).

* ``overhead`` — sequential requests, non-streamed and streamed (4 SSE chunks): p50/p99 of the
  gateway and of the direct call; ``added_*`` is their difference (goals: <= 1 ms p50,
  <= 2 ms p99);
* ``throughput`` — ``--connections`` concurrent keep-alive connections for ``--seconds`` (closed
  loop): requests/s through the gateway and directly (goal >= 1,500 req/s); its p99 is mostly
  queueing (32 requests waiting on one saturated process). ``at_goal_rate``: an open loop at the
  goal's 1,500 req/s, latency counted from each request's scheduled time: the p99 added there is
  the figure for the goal (<= 5 ms). On a 2-core machine the three processes compete for the
  cores;
* ``routing`` — in-process: one routing decision (version by split, replica by policy) at 64
  replicas, per policy, against ``random.choice`` as the baseline (goal <= 100 us p50);
* ``memory`` — the gateway's RSS after a warm-up and after ``--memory-requests`` more requests;
  growth per request, extrapolated linearly to 1M requests (goal < 5 %). ``--quick`` runs fewer
  requests, so its extrapolation is rougher; the figures say how many were run.

Progress goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from modelplane.bench._figures import percentile, print_summary, progress

GOALS = {
    "added_p50_ms": 1.0,
    "added_p99_ms": 2.0,
    "throughput_rps": 1500.0,
    "throughput_added_p99_ms": 5.0,
    "routing_p50_us": 100.0,
    "rss_growth_1m_pct": 5.0,
}


_say = progress("gateway")


# -- a minimal keep-alive HTTP/1.1 client ------------------------------------------------------


class _Conn:
    """One blocking keep-alive connection; reads Content-Length and chunked answers."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(self, path: str, body: bytes) -> bytes:
        self.sock.sendall(
            b"POST %s HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
        )
        return self._response()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data

    def _response(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        lower = head.lower()
        self.buf = rest
        if b"transfer-encoding: chunked" in lower:
            while b"0\r\n\r\n" not in self.buf:
                self._fill()
            end = self.buf.index(b"0\r\n\r\n") + 5
            body, self.buf = self.buf[:end], self.buf[end:]
        else:
            at = lower.index(b"content-length:") + 15
            length = int(lower[at : lower.index(b"\r\n", at) if b"\r\n" in lower[at:] else None])
            while len(self.buf) < length:
                self._fill()
            body, self.buf = self.buf[:length], self.buf[length:]
        if status != 200:
            raise RuntimeError(f"status {status}: {body[:200]!r}")
        return body

    def close(self) -> None:
        self.sock.close()


async def _read_answer(reader: asyncio.StreamReader) -> bytes:
    """One non-streamed answer (``Content-Length``) from a keep-alive connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    at = lower.index(b"content-length:") + 15
    return await reader.readexactly(int(lower[at : lower.index(b"\r\n", at)]))


async def _async_load(
    host: str, port: int, path: str, body: bytes, connections: int, seconds: float
) -> tuple[int, list[float]]:
    request = (
        b"POST %s HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
    )
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                writer.write(request)
                await _read_answer(reader)
                latencies.append(time.perf_counter() - start)
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return len(latencies), latencies


async def _paced_load(
    host: str, port: int, body: bytes, rate: float, seconds: float, connections: int
) -> list[float]:
    """Open loop: requests sent on a fixed schedule (``rate`` per second over ``connections``);
    each latency counts from the scheduled send time, so queueing is not hidden."""
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    latencies: list[float] = []
    interval = connections / rate
    begin = time.perf_counter() + 0.05
    per_connection = int(seconds * rate / connections)

    async def one(offset: float) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in range(per_connection):
                due = begin + offset + i * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(request)
                await _read_answer(reader)
                latencies.append(time.perf_counter() - due)
        finally:
            writer.close()

    await asyncio.gather(*(one(c * interval / connections) for c in range(connections)))
    return latencies


# -- processes ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _processes(work: Path) -> Iterator[tuple[int, int, int]]:
    """(upstream port, gateway port, gateway pid) of a running pair."""
    from modelplane.store import open_store

    upstream_port, gateway_port = _free_port(), _free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "modelplane.testing.upstream", "--port", str(upstream_port)],
        stdout=subprocess.PIPE,
    )
    db = f"sqlite:///{work / 'bench.db'}"
    store = open_store(db)
    digest = "sha256:" + "0" * 64
    store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "bench-model", "namespace": "default"},
            "spec": {
                "versions": [
                    {"name": "v1", "source": "/m", "format": "safetensors", "digest": digest}
                ]
            },
        }
    )
    ep = store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Endpoint",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"model": "bench-model", "routing": {"policy": "least-request"}},
        }
    )
    ep["status"] = {
        "replicas": [
            {
                "name": "fake-0",
                "version": "v1",
                "node": "local",
                "url": f"http://127.0.0.1:{upstream_port}/v1",
                "ready": True,
            }
        ]
    }
    store.update_status(ep)
    store.close()
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelplane.cli",
            "gateway",
            "--port",
            str(gateway_port),
            "--database-url",
            db,
            "--home",
            str(work),
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_serving(gateway_port, upstream_port)
        yield upstream_port, gateway_port, gateway.pid
    finally:
        stop_processes(gateway, fake)


def stop_processes(*procs: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGTERM each process a benchmark started, then SIGKILL one still running ``timeout`` s on."""
    for proc in procs:
        if proc is None:
            continue
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_serving(gateway_port: int, upstream_port: int) -> None:
    body = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "hi"}]})
    deadline = time.monotonic() + 30
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            conn = _Conn("127.0.0.1", gateway_port)
            try:
                conn.request("/v1/chat/completions", body)
                return
            finally:
                conn.close()
        except (OSError, RuntimeError) as exc:
            last = exc
            time.sleep(0.1)  # polling a condition with a deadline
    raise RuntimeError(f"the gateway did not serve within 30 s: {last}")


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# -- the measurements --------------------------------------------------------------------------

_CHAT = {"model": "bench", "messages": [{"role": "user", "content": "Say something short."}]}


def _sequential(port: int, body: bytes, n: int) -> list[float]:
    conn = _Conn("127.0.0.1", port)
    out = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            conn.request("/v1/chat/completions", body)
            out.append(time.perf_counter() - start)
    finally:
        conn.close()
    return out


def _overhead(up: int, gw: int, n: int, rounds: int, stream: bool) -> dict[str, Any]:
    body = orjson.dumps({**_CHAT, "stream": stream})
    direct: list[float] = []
    through: list[float] = []
    _sequential(gw, body, 200)  # warm-up
    _sequential(up, body, 200)
    for _ in range(rounds):
        direct += _sequential(up, body, n // rounds)
        through += _sequential(gw, body, n // rounds)
    return {"requests": len(through), **added_latency(direct, through)}


def added_latency(direct: Sequence[float], through: Sequence[float]) -> dict[str, float]:
    """p50 and p99 in ms of request times in seconds, direct and through a gateway, and the
    difference (``added_*``)."""
    d50, d99 = percentile(direct, 0.5) * 1e3, percentile(direct, 0.99) * 1e3
    g50, g99 = percentile(through, 0.5) * 1e3, percentile(through, 0.99) * 1e3
    return {
        "direct_p50_ms": round(d50, 3),
        "direct_p99_ms": round(d99, 3),
        "gateway_p50_ms": round(g50, 3),
        "gateway_p99_ms": round(g99, 3),
        "added_p50_ms": round(g50 - d50, 3),
        "added_p99_ms": round(g99 - d99, 3),
    }


def _throughput(up: int, gw: int, connections: int, seconds: float) -> dict[str, Any]:
    body = orjson.dumps(_CHAT)
    n_direct, lat_direct = asyncio.run(
        _async_load("127.0.0.1", up, "/v1/chat/completions", body, connections, seconds)
    )
    n_gw, lat_gw = asyncio.run(
        _async_load("127.0.0.1", gw, "/v1/chat/completions", body, connections, seconds)
    )
    rate = GOALS["throughput_rps"]
    paced_direct = asyncio.run(_paced_load("127.0.0.1", up, body, rate, seconds, 16))
    paced_gw = asyncio.run(_paced_load("127.0.0.1", gw, body, rate, seconds, 16))
    paced = {
        "rate_rps": rate,
        "direct_p50_ms": round(percentile(paced_direct, 0.5) * 1e3, 3),
        "direct_p99_ms": round(percentile(paced_direct, 0.99) * 1e3, 3),
        "gateway_p50_ms": round(percentile(paced_gw, 0.5) * 1e3, 3),
        "gateway_p99_ms": round(percentile(paced_gw, 0.99) * 1e3, 3),
        "added_p99_ms": round(
            (percentile(paced_gw, 0.99) - percentile(paced_direct, 0.99)) * 1e3, 3
        ),
    }
    return {
        "at_goal_rate": paced,
        "connections": connections,
        "seconds": seconds,
        "direct_rps": round(n_direct / seconds),
        "gateway_rps": round(n_gw / seconds),
        "direct_p99_ms": round(percentile(lat_direct, 0.99) * 1e3, 3),
        "gateway_p99_ms": round(percentile(lat_gw, 0.99) * 1e3, 3),
        "added_p99_ms": round((percentile(lat_gw, 0.99) - percentile(lat_direct, 0.99)) * 1e3, 3),
    }


def _routing(samples: int) -> dict[str, Any]:
    from modelplane.gateway import (
        POLICIES,
        EndpointRoute,
        Replica,
        Router,
        VersionRoute,
        pick_version,
        prompt_blocks,
    )

    replicas = tuple(
        Replica(f"r{i}", f"http://10.0.{i // 250}.{i % 250}:8000/v1", "v1") for i in range(64)
    )
    versions = (VersionRoute("v1", 90, replicas[:56]), VersionRoute("v2", 10, replicas[56:]))
    rnd = random.Random(7)
    prefixes = [f"System prompt of tenant {t}. " * 40 for t in range(32)]
    prompts = [p + f"question {i}" for i, p in enumerate(prefixes * 8)]
    out: dict[str, Any] = {"replicas": len(replicas)}
    base: list[float] = []
    for _ in range(samples):
        start = time.perf_counter()
        rnd.choice(replicas)
        base.append(time.perf_counter() - start)
    out["baseline_random_choice_p50_us"] = round(percentile(base, 0.5) * 1e6, 2)
    for policy in POLICIES:
        route = EndpointRoute("default", "bench", "m", "chat", versions, policy=policy)
        router = Router(seed=1)
        for r in replicas:  # some load, so load-aware policies have something to weigh
            router.load(r.url).in_flight = rnd.randrange(8)
            router.load(r.url).queue_depth = rnd.randrange(6)
        times: list[float] = []
        for i in range(samples):
            prompt = prompts[i % len(prompts)]
            start = time.perf_counter()
            blocks = prompt_blocks(prompt) if policy in ("prefix-cache", "prefix-load") else []
            version = pick_version(route, f"s{i % 100}", rnd)
            assert version is not None
            router.pick(route, version, session=f"s{i % 100}", blocks=blocks)
            times.append(time.perf_counter() - start)
        out[policy] = {
            "p50_us": round(percentile(times, 0.5) * 1e6, 2),
            "p99_us": round(percentile(times, 0.99) * 1e6, 2),
        }
    out["worst_p50_us"] = max(v["p50_us"] for k, v in out.items() if isinstance(v, dict))
    return out


def _memory(gw: int, pid: int, requests: int) -> dict[str, Any]:
    body = orjson.dumps(_CHAT)
    _sequential(gw, body, min(20_000, requests // 5 or 1))  # warm-up: caches, pools, allocator
    before = _rss_bytes(pid)
    # concurrent, to go through many requests quickly
    done = 0
    while done < requests:
        n, _ = asyncio.run(_async_load("127.0.0.1", gw, "/v1/chat/completions", body, 16, 2.0))
        done += n
    after = _rss_bytes(pid)
    per_request = (after - before) / done
    return {
        "requests": done,
        "rss_before_mb": round(before / 2**20, 2),
        "rss_after_mb": round(after / 2**20, 2),
        "growth_pct": round(100 * (after - before) / before, 3),
        "bytes_per_request": round(per_request, 3),
        "rss_growth_1m_pct_extrapolated": round(100 * per_request * 1_000_000 / before, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelplane bench gateway", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="Small sizes: a smoke test.")
    parser.add_argument("--requests", type=int, help="Sequential requests per overhead figure.")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, help="Duration of each throughput run.")
    parser.add_argument("--memory-requests", type=int, help="Requests between the RSS readings.")
    args = parser.parse_args(argv)
    n = args.requests or (1000 if args.quick else 5000)
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    memory_requests = args.memory_requests or (20_000 if args.quick else 200_000)
    from modelplane.gateway import server_stack

    figures: dict[str, Any] = {
        "benchmark": "gateway",
        "cpus": os.cpu_count(),
        # what `modelplane gateway` (the standalone gateway measured here) runs on
        "server": server_stack(),
        "goals": GOALS,
    }
    _say("routing decisions at 64 replicas")
    figures["routing"] = _routing(2000 if args.quick else 20000)
    with (
        tempfile.TemporaryDirectory(prefix="mp-bench-gw-") as tmp,
        _processes(Path(tmp)) as (up, gw, pid),
    ):
        _say(f"overhead, {n} sequential requests (non-streamed)")
        figures["overhead"] = _overhead(up, gw, n, 5, stream=False)
        _say(f"overhead, {n} sequential requests (streamed)")
        figures["overhead_stream"] = _overhead(up, gw, n, 5, stream=True)
        _say(f"throughput, {args.connections} connections for {seconds}s each")
        figures["throughput"] = _throughput(up, gw, args.connections, seconds)
        _say(f"memory over {memory_requests} requests")
        figures["memory"] = _memory(gw, pid, memory_requests)
    o, s, t, m = (
        figures["overhead"],
        figures["overhead_stream"],
        figures["throughput"],
        figures["memory"],
    )
    figures["met"] = {
        "added_p50_ms": max(o["added_p50_ms"], s["added_p50_ms"]) <= GOALS["added_p50_ms"],
        "added_p99_ms": max(o["added_p99_ms"], s["added_p99_ms"]) <= GOALS["added_p99_ms"],
        "throughput_rps": t["gateway_rps"] >= GOALS["throughput_rps"],
        "throughput_added_p99_ms": t["at_goal_rate"]["added_p99_ms"]
        <= GOALS["throughput_added_p99_ms"],
        "routing_p50_us": figures["routing"]["worst_p50_us"] <= GOALS["routing_p50_us"],
        "rss_growth_1m_pct": m["rss_growth_1m_pct_extrapolated"] < GOALS["rss_growth_1m_pct"],
    }
    print_summary(figures)
    return 0
