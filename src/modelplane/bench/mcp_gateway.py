"""MCP gateway benchmark: the added latency of ``tools/call`` through ``/mcp`` over a direct call.

One run starts, each in a process of its own:

* an MCP server (the official SDK's ``MCPServer``, one ``echo`` tool) over Streamable HTTP;
* a Modelplane server (REST API with bearer tokens, the MCP gateway mounted as ``modelplane up``
  mounts it) whose ToolServer ``http`` names that server's URL and ToolServer ``stdio`` starts the
  same program over stdio.

The benchmark process is the client (the SDK's ``ClientSession``): sequential ``tools/call``
requests, in alternating rounds so other load on the machine moves both sides alike,

* ``http``: directly to the Streamable HTTP server, and through ``/mcp/bench/http``;
* ``stdio``: directly over stdio to a process the client starts, and through ``/mcp/bench/stdio``
  (the gateway's pooled process);

``added_p50_ms`` / ``added_p99_ms`` are the gateway's percentiles minus the direct ones. The HTTP
hop to the gateway is part of what is added for the stdio server (the direct client has no HTTP at
all). ``gateway_cpu_ms_per_call`` is the CPU time the gateway's process spent per call (its whole
stack: HTTP, authentication, the SDK's server and client, the upstream hop), less sensitive than
the latencies to other programs on the machine (not immune: shared cores slow every instruction). ``decision_us`` is the
gateway's own work per call in-process: the authorizer, the audit record and the arguments' digest.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from modelplane.bench._figures import print_summary, progress
from modelplane.bench.gateway import added_latency, stop_processes

GOALS: dict[str, float] = {"added_p99_ms": 0.5}
_TOKEN = "bench-token"
_MODULE = "modelplane.bench.mcp_gateway"


_say = progress("mcp")


def _echo_server() -> Any:
    from mcp.server.mcpserver import MCPServer

    _quiet()
    server = MCPServer("bench-echo")

    @server.tool()
    def echo(text: str) -> str:
        """Answer the text."""
        return text

    return server


def _quiet() -> None:
    """The SDK logs every session at INFO: figures only, please."""
    logging.getLogger("mcp").setLevel(logging.WARNING)


def _listen() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    return sock


def _serve_upstream() -> None:
    import uvicorn

    sock = _listen()
    app = _echo_server().streamable_http_app(json_response=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


def _serve_gateway(store_url: str) -> None:
    from modelplane.api import ADMIN_GROUP, Principal
    from modelplane.egress import EgressRules
    from modelplane.mcpgateway import mount
    from modelplane.policy import MemoryAudit
    from modelplane.server import serve
    from modelplane.store import open_store

    _quiet()
    store = open_store(store_url)
    route = mount(store, egress=EgressRules.parse(allow_loopback=True), audit=MemoryAudit())
    tokens = {_TOKEN: Principal("bench", frozenset({"modelplane:namespace:bench"}))}
    assert ADMIN_GROUP not in tokens[_TOKEN].groups  # measured as a tenant, not an admin
    serve(
        store,
        port=0,
        tokens=tokens,
        routes=[route],
        on_started=lambda url: print(url.rsplit(":", 1)[1], flush=True),
    )


def _spawn(*args: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", _MODULE, *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.isdigit():
        process.kill()
        raise RuntimeError(f"{' '.join(args)} did not start (said {line!r})")
    return process, int(line)


@contextmanager
def _servers(work: Path) -> Iterator[tuple[str, str, int]]:
    """The upstream's URL, the gateway's base URL and its pid, serving until the block ends."""
    from modelplane.store import open_store

    upstream, up_port = _spawn("--serve-upstream")
    gateway: subprocess.Popen[str] | None = None
    try:
        up_url = f"http://127.0.0.1:{up_port}/mcp"
        store_url = f"sqlite:///{work / 'bench.db'}"
        # a gateway's stdio server gets only its ToolServer's env: where modelplane is, if not installed
        path = os.environ.get("PYTHONPATH")
        env = {"PYTHONPATH": path} if path else {}
        with open_store(store_url) as store:
            for name, spec in (
                ("http", {"url": up_url}),
                (
                    "stdio",
                    {"command": "python", "args": ["-m", _MODULE, "--serve-stdio"], "env": env},
                ),
            ):
                meta = {"name": name}
                kind = {"apiVersion": "modelplane.dev/v1alpha1", "kind": "ToolServer"}
                store.create({**kind, "metadata": meta, "spec": spec})
        gateway, gw_port = _spawn("--serve-gateway", store_url)
        yield up_url, f"http://127.0.0.1:{gw_port}/mcp/bench", gateway.pid
    finally:
        stop_processes(gateway, upstream)


@asynccontextmanager
async def _stdio_session() -> AsyncIterator[Any]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=["-m", _MODULE, "--serve-stdio"], env=dict(os.environ)
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def _calls(session: Any, n: int) -> list[float]:
    times: list[float] = []
    for i in range(n):
        start = time.perf_counter()
        result = await session.call_tool("echo", {"text": f"hello {i}"})
        times.append(time.perf_counter() - start)
        if result.is_error:
            raise RuntimeError(f"the call failed: {result.content}")
    return times


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _compare(direct: Any, through: Any, n: int, rounds: int, pid: int) -> dict[str, Any]:
    await _calls(direct, 100)  # warm-up: connections, the pooled upstream session
    await _calls(through, 100)
    d: list[float] = []
    g: list[float] = []
    cpu = 0.0
    for _ in range(rounds):
        d += await _calls(direct, n // rounds)
        before = _cpu_seconds(pid)
        g += await _calls(through, n // rounds)
        cpu += _cpu_seconds(pid) - before
    # CPU the gateway's process spent per call: less sensitive to other load than latencies
    cpu_ms = round(cpu / len(g) * 1e3, 3)
    return {"calls": len(g), **added_latency(d, g), "gateway_cpu_ms_per_call": cpu_ms}


async def _measure(up_url: str, gw_url: str, pid: int, n: int, rounds: int) -> dict[str, Any]:
    from modelplane.mcpgateway import open_session

    figures: dict[str, Any] = {}
    _say(f"http: {n} sequential calls direct and through the gateway")
    async with (
        open_session(up_url, None) as direct,
        open_session(f"{gw_url}/http", _TOKEN) as through,
    ):
        figures["http"] = await _compare(direct, through, n, rounds, pid)
    _say(f"stdio: {n} sequential calls direct and through the gateway")
    async with _stdio_session() as direct, open_session(f"{gw_url}/stdio", _TOKEN) as through:
        figures["stdio"] = await _compare(direct, through, n, rounds, pid)
    return figures


def _decision_us(n: int) -> float:
    """The gateway's own work per call, in-process: authorizer, digest, audit record."""
    from modelplane.api import Principal
    from modelplane.mcpgateway import call_event, decide, tenancy
    from modelplane.policy import MemoryAudit

    principal = Principal("bench", frozenset({"modelplane:namespace:bench"}))
    audit = MemoryAudit()
    arguments = {"text": "hello", "n": 1}
    start = time.perf_counter()
    for _ in range(n):
        decision = decide(tenancy, principal, "bench", "http", "echo", arguments)
        audit.append(call_event(principal, "bench", "http", "echo", arguments, decision))
    return (time.perf_counter() - start) / n * 1e6


def run(calls: int, rounds: int = 5) -> dict[str, Any]:
    """Every figure of the benchmark (see the module docstring)."""
    figures: dict[str, Any] = {"benchmark": "mcp", "cpus": os.cpu_count(), "goals": GOALS}
    with tempfile.TemporaryDirectory(prefix="mp-bench-mcp-") as tmp, _servers(Path(tmp)) as urls:
        figures.update(asyncio.run(_measure(*urls, calls, rounds)))
    figures["decision_us"] = round(statistics.median(_decision_us(5000) for _ in range(3)), 2)
    added = max(figures["http"]["added_p99_ms"], figures["stdio"]["added_p99_ms"])
    figures["met"] = {"added_p99_ms": added <= GOALS["added_p99_ms"]}
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelplane bench mcp", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="Few calls: a smoke test.")
    parser.add_argument("--calls", type=int, help="Sequential calls per figure (default 2000).")
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-stdio", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-gateway", metavar="STORE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_upstream:
        _serve_upstream()
    elif args.serve_stdio:
        _echo_server().run("stdio")
    elif args.serve_gateway:
        _serve_gateway(args.serve_gateway)
    else:
        figures = run(args.calls or (200 if args.quick else 2000))
        print_summary(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
