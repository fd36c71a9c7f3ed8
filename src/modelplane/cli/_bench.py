"""``modelplane bench store|scheduling|...``: the benchmarks of ``modelplane.bench``, from the CLI.

A benchmark module has ``main(argv) -> int``, reports progress on stderr and prints its figures as
one JSON object on its last stdout line. This command keeps that last line as it is (so scripts
can read it) and, unless ``-o json``, shows the figures as indented text above it. Each module is
imported only when asked for, so the CLI starts fast and works in an installation without it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Callable
from typing import Any, cast

import click
import orjson

from modelplane.cli._output import to_yaml


def _benchmark_main(module: str) -> Callable[[list[str]], int]:
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise click.ClickException(
                f"this installation of Modelplane has no {module.rsplit('.', 1)[-1]} benchmark"
                f" ({module} is missing)"
            ) from None
        raise
    return cast(Callable[[list[str]], int], loaded.main)


def _run(ctx: click.Context, module: str, args: tuple[str, ...], output: str | None) -> None:
    main = _benchmark_main(module)
    captured = io.StringIO()
    code: Any = 0
    try:
        with contextlib.redirect_stdout(captured):
            code = main(list(args))
    except SystemExit as exc:  # the benchmark's own argument parser: --help, or a mistake
        code = exc.code
    lines = captured.getvalue().rstrip("\n").splitlines()
    try:
        figures = orjson.loads(lines[-1]) if lines else None
    except orjson.JSONDecodeError:
        figures = None
    if not isinstance(figures, dict):
        click.echo(captured.getvalue(), nl=False)  # not figures (help text): show it as it is
    else:
        if output != "json":
            click.echo(to_yaml(figures).rstrip("\n"))
        click.echo(lines[-1])
    if isinstance(code, int) and code:
        ctx.exit(code)


_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.group()
def bench() -> None:
    """Run a benchmark; each prints a JSON object of figures on its last line.

    Options the CLI does not know are passed to the benchmark: `bench store --quick`;
    `bench store -- --help` lists them.
    """


#: each benchmark of ``modelplane.bench`` the CLI runs, with its help
_BENCHMARKS = {
    "store": "The object store: updates/s, list time, watch latency, on SQLite and PostgreSQL.",
    "scheduling": "The device allocator: claims placed per second on a simulated cluster.",
    "gateway": "The /v1 gateway: overhead over a direct call, throughput, routing decisions, memory.",
    "agents": "The agent runtime: durable steps/s beside DBOS and LangGraph, residency, resume,"
    " storage.",
    "routing": "Routing policies on simulated vLLM-like replicas: TTFT, throughput, cache hits.",
    "qos": "Flow control on simulated replicas beside FCFS: high-priority TTFT at 3x overload,"
    " shedding, tenants' weighted shares.",
    "mcp": "The MCP gateway: added tools/call latency over calling the MCP server directly.",
    "policy": "Cedar decisions beside the naive use, decisions/s, admission overhead, list"
    " filtering.",
    "nics": "GPU+NIC claims on one PCIe root: aligned when the cluster has them, beside"
    " first-fit GPUs then NICs.",
    "power": "Tokens per joule and TPOT p99 under a 25% power cut, against uncapped (simulated).",
    "slo": "SLO burn-rate alerts on simulated faults: time to detect, false alarms.",
    "shared-limits": "Rate limits across 3 gateways on PostgreSQL: overshoot, and the latency"
    " cost beside per-process limits.",
    "autoscaling": "A load step on a simulated fleet: KPA with panic vs stable-only vs static;"
    " NodePools vs a static cluster.",
    "sandbox": "WASM tool calls beside a fresh compile and python -c, runaway stops, process"
    " sandbox starts, escape probes.",
}
#: benchmarks whose module is not named as the command (``mcp`` would shadow the SDK)
_MODULES = {"mcp": "mcp_gateway", "shared-limits": "shared_limits"}


def _add_benchmark(name: str, help: str) -> None:
    @bench.command(name, context_settings=_PASS_THROUGH, help=help)
    @click.option(
        "-o", "--output", type=click.Choice(["json"]), help="Print only the JSON figures."
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_context
    def run(ctx: click.Context, output: str | None, args: tuple[str, ...]) -> None:
        _run(ctx, f"modelplane.bench.{_MODULES.get(name, name)}", args, output)


for _name, _help in _BENCHMARKS.items():
    _add_benchmark(_name, _help)
