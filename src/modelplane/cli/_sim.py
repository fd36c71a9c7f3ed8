"""``modelplane sim cluster|workload|schedule|route``: simulated clusters, scheduler and routing.

``sim cluster`` writes an HGX-like cluster (DeviceClasses, Nodes, ResourceSlices) as YAML or
JSON, ready for ``modelplane apply -f`` or ``sim schedule``; ``sim workload`` writes
ResourceClaims with arrival and duration annotations; ``sim schedule`` replays a workload on a
cluster with one policy and prints one JSON object: allocations, unschedulable claims, metrics.
``sim route`` replays a request trace on simulated vLLM-like replicas with one of the gateway's
routing policies (or writes a trace with ``--generate``). Everything runs locally; no server is
needed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
import orjson

from modelplane.cli._options import F, count_option, positive_option
from modelplane.cli._output import to_json, to_yaml

_NODE_API_VERSION = "modelplane.dev/v1alpha1"


def _emit(objs: list[dict[str, Any]], output: str) -> None:
    if output == "json":
        click.echo(to_json({"apiVersion": "v1", "kind": "List", "items": objs}))
        return
    click.echo("\n---\n".join(to_yaml(o).rstrip("\n") for o in objs))


@click.group()
def sim() -> None:
    """Simulate clusters and workloads, and replay the scheduler on them."""


@sim.command("cluster")
@click.option("--nodes", type=click.IntRange(min=1), required=True, help="Number of nodes.")
@click.option("--gpus-per-node", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--mig/--no-mig", default=False, show_default=True, help="Publish MIG partitions.")
@click.option("--nvl72", is_flag=True, help="One NVLink domain per rack (NVL72-like).")
@click.option("--nics", is_flag=True, help="Publish RDMA NICs on the GPUs' PCIe roots.")
@click.option(
    "--kv-cache", is_flag=True, help="Publish GPUs as shared, with KV-cache blocks as capacity."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml")
def cluster(
    nodes: int,
    gpus_per_node: int,
    mig: bool,
    nvl72: bool,
    nics: bool,
    kv_cache: bool,
    seed: int,
    output: str,
) -> None:
    """Print an HGX-like cluster: N nodes x 8 GPUs, two PCIe roots, racks of 16, blocks of 8."""
    from modelplane.sim import generate_cluster

    objs = generate_cluster(
        nodes,
        gpus_per_node=gpus_per_node,
        mig=mig,
        nvl72=nvl72,
        nics=nics,
        kv_cache=kv_cache,
        seed=seed,
    )
    for o in objs:
        if o.get("kind") == "Node":
            o["apiVersion"] = _NODE_API_VERSION  # ours, so `modelplane apply -f` takes it as it is
    _emit(objs, output)


@sim.command("workload")
@click.option("--claims", type=click.IntRange(min=1), required=True, help="Number of claims.")
@positive_option("--rate", 10.0, "Arrivals per second (Poisson).")
@positive_option("--mean-duration", 600.0, "Mean claim duration in seconds (exponential).")
@count_option("--infeasible", 0, "Add this many claims no node can ever hold.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml")
def workload(
    claims: int, rate: float, mean_duration: float, infeasible: int, seed: int, output: str
) -> None:
    """Print ResourceClaims with arrival-seconds and duration-seconds annotations."""
    from modelplane.sim import generate_workload

    objs = generate_workload(
        claims,
        rate_per_second=rate,
        mean_duration_seconds=mean_duration,
        infeasible=infeasible,
        seed=seed,
    )
    _emit(objs, output)


def _objects(path: str, what: str) -> list[dict[str, Any]]:
    from modelplane.api import load_paths

    objs = [m.obj for m in load_paths([path])]
    if not objs:
        raise click.ClickException(f"{path}: the {what} file holds no objects")
    return objs


#: ``-o json``, the one format of a report (kept as an option for scripts that pass it)
_JSON_ONLY = click.option(
    "-o",
    "--output",
    type=click.Choice(["json"]),
    default="json",
    help="One JSON object (the only format).",
)


def _objects_option(flag: str, dest: str, help: str) -> Callable[[F], F]:
    """A required file of objects (``-``: standard input), as another ``sim`` command prints."""
    return click.option(flag, dest, required=True, type=click.Path(allow_dash=True), help=help)


@sim.command("schedule")
@_objects_option(
    "--cluster", "cluster_path", "DeviceClasses, ResourceSlices and Nodes (from `sim cluster`)."
)
@_objects_option(
    "--workload",
    "workload_path",
    "ResourceClaims with arrival/duration annotations (from `sim workload`).",
)
@click.option(
    "--scorer",
    type=click.Choice(["modelplane", "first-fit", "binpack"]),
    default="modelplane",
    show_default=True,
    help="The placement policy.",
)
@positive_option("--deadline-ms", 50.0, "Time bound of one decision.")
@_JSON_ONLY
def schedule(
    cluster_path: str, workload_path: str, scorer: str, deadline_ms: float, output: str
) -> None:
    """Replay a workload on a cluster; print {allocations, unschedulable, metrics} as JSON."""
    from modelplane.scheduling import SchedulingInputError
    from modelplane.sim import simulate

    cluster_objs = _objects(cluster_path, "cluster")
    workload_objs = _objects(workload_path, "workload")
    claims = sum(1 for o in workload_objs if o.get("kind") == "ResourceClaim")
    if not claims:
        raise click.ClickException(f"{workload_path}: the workload holds no ResourceClaims")
    click.echo(f"replaying {claims} claims on {cluster_path} with policy {scorer}...", err=True)
    try:
        result = simulate(cluster_objs, workload_objs, scorer, deadline_ms=deadline_ms)
    except SchedulingInputError as exc:
        raise click.ClickException(f"{cluster_path}: {exc}") from None
    metrics = result["metrics"]
    click.echo(
        f"{metrics['allocated']} allocated, {metrics['unschedulable']} unschedulable,"
        f" {metrics['claims_per_second']} claims/s",
        err=True,
    )
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


@sim.command("route")
@click.option(
    "--trace",
    "trace_path",
    type=click.Path(allow_dash=True, dir_okay=False),
    help="JSON lines {arrival, prefix, prefix_tokens, suffix_tokens, output_tokens, session}.",
)
@click.option(
    "--generate",
    type=click.Choice(["shared-prefix", "multi-round", "low-reuse", "hot-prefix"]),
    help="Print a trace of this workload (JSON lines) instead of simulating.",
)
@click.option("--replicas", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--policy",
    type=click.Choice(
        ["round-robin", "least-request", "load", "prefix-cache", "session-affinity", "prefix-load"]
    ),
    default="prefix-load",
    show_default=True,
    help="The gateway's routing policy.",
)
@positive_option("--rate", 50.0, "With --generate: requests per second (Poisson).")
@positive_option("--duration", 60.0, "With --generate: seconds of arrivals.")
@positive_option(
    "--queue-timeout", 60.0, "Seconds a request may wait for a replica before it counts as failed."
)
@click.option(
    "--prefix-weight",
    type=click.FloatRange(min=0),
    default=None,
    help="The router's prefix_weight (prefix-load); default: the gateway's.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@_JSON_ONLY
def route(
    trace_path: str | None,
    generate: str | None,
    replicas: int,
    policy: str,
    rate: float,
    duration: float,
    queue_timeout: float,
    prefix_weight: float | None,
    seed: int,
    output: str,
) -> None:
    """Replay a request trace with a routing policy; print TTFT, throughput, cache hits as JSON."""
    from modelplane.gateway import Router
    from modelplane.sim import TraceError, generate_trace, parse_trace, simulate_routing

    if generate and trace_path:
        raise click.UsageError("give either --trace FILE (simulate) or --generate KIND, not both")
    if generate:
        for req in generate_trace(generate, rate=rate, duration_s=duration, seed=seed):
            sys.stdout.write(orjson.dumps(req.to_json()).decode() + "\n")
        return
    if not trace_path:
        raise click.UsageError(
            "--trace FILE is required (or --generate KIND to write one; `-` reads stdin)"
        )
    try:
        if trace_path == "-":
            trace = parse_trace(sys.stdin.buffer, "<stdin>")
        else:
            with open(trace_path, "rb") as f:
                trace = parse_trace(f, trace_path)
    except OSError as exc:
        raise click.ClickException(f"{trace_path}: {exc.strerror or exc}") from None
    except TraceError as exc:
        raise click.ClickException(str(exc)) from None
    if not trace:
        raise click.ClickException(f"{trace_path}: the trace holds no requests")
    router = (
        Router(seed=seed)
        if prefix_weight is None
        else Router(seed=seed, prefix_weight=prefix_weight)
    )
    click.echo(f"replaying {len(trace)} requests on {replicas} replicas with {policy}...", err=True)
    result = simulate_routing(
        trace,
        replicas=replicas,
        policy=policy,
        seed=seed,
        queue_timeout_s=queue_timeout,
        router=router,
    )
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
