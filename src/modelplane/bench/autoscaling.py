"""Autoscaling benchmark: a load step on a simulated fleet, KPA with panic vs stable-only vs static.

The fleet (:func:`modelplane.sim.simulate_fleet`) is scaled by the platform's real
:class:`~modelplane.autoscaling.KPA` (stable 60 s, panic 6 s at 200 %), by the same without its
panic window, and not at all (a static fleet of ``max`` replicas, the baseline for cost and
latency). The load steps from 4 to 24 requests/s for three minutes; replicas serve 8 requests at a
time, 2 s each, and take 15 s to start. Figures per scaler: seconds until the burst is absorbed,
TTFT p99 (all requests and the burst's), replica-seconds (cost); ratios against stable-only and
against the static fleet in the same run.

NodePools (:func:`modelplane.sim.simulate_nodepool`): claims for 1 to 8 devices of one node
arrive at 0.005/s, then 0.04/s for the second quarter of the run, held 10 minutes on average; a
pool of 8-device nodes (the real :func:`~modelplane.autoscaling.nodes_to_add` and
``nodes_to_remove``, nodes booting in 90 s, removed after 5 minutes empty, at most 16) against a
static cluster of 16 such nodes: the wait for capacity (p50, p99) and the cost. ``--quick``
shortens both runs for a smoke test.

Progress on stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from modelplane.bench._figures import parse_sized, print_summary, progress
from modelplane.sim import (
    ClaimLoad,
    Fleet,
    LoadStep,
    PoolShape,
    simulate_fleet,
    simulate_nodepool,
)

_say = progress("autoscaling")


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


def _replica_figures(args: argparse.Namespace) -> dict[str, Any]:
    load = LoadStep(
        base=args.base_rate,
        burst=args.burst_rate,
        burst_at=args.burst_at,
        burst_s=args.burst_s,
        duration_s=args.duration,
    )
    fleet = Fleet(cold_start_s=args.cold_start, max_replicas=args.max_replicas)
    runs = {s: simulate_fleet(load, fleet, s, seed=args.seed) for s in ("kpa", "stable", "static")}
    for name, row in runs.items():
        _say(
            f"{name}: absorbed after {row['absorbed_after_s']}s, TTFT p99 {row['ttft_p99_s']}s,"
            f" {row['replica_seconds']} replica-seconds"
        )
    kpa, stable, static = runs["kpa"], runs["stable"], runs["static"]
    return {
        "load": {
            "base_per_s": load.base,
            "burst_per_s": load.burst,
            "burst_at_s": load.burst_at,
            "burst_s": load.burst_s,
            "duration_s": load.duration_s,
        },
        "fleet": {"cold_start_s": fleet.cold_start_s, "max_replicas": fleet.max_replicas},
        "runs": runs,
        "ratios": {
            "absorb_stable_over_kpa": _ratio(stable["absorbed_after_s"], kpa["absorbed_after_s"]),
            "ttft_p99_stable_over_kpa": _ratio(stable["ttft_p99_s"], kpa["ttft_p99_s"]),
            "cost_kpa_over_static": _ratio(kpa["replica_seconds"], static["replica_seconds"]),
            "cost_kpa_over_stable": _ratio(kpa["replica_seconds"], stable["replica_seconds"]),
        },
    }


def _pool_figures(args: argparse.Namespace) -> dict[str, Any]:
    hours = args.pool_hours
    load = ClaimLoad(burst_at=hours * 900.0, burst_s=hours * 900.0, duration_s=hours * 3600.0)
    shape = PoolShape(boot_s=args.boot)
    runs = {m: simulate_nodepool(load, shape, m, seed=args.seed) for m in ("pool", "static")}
    for name, row in runs.items():
        _say(
            f"nodes {name}: wait p99 {row['wait_p99_s']}s, {row['node_hours']} node-hours,"
            f" ${row['cost_usd']}"
        )
    pool, static = runs["pool"], runs["static"]
    return {
        "load": {
            "claims_per_s": [load.base, load.burst],
            "burst_at_s": load.burst_at,
            "burst_s": load.burst_s,
            "duration_s": load.duration_s,
            "mean_hold_s": load.mean_hold_s,
        },
        "shape": {
            "devices_per_node": shape.devices,
            "boot_s": shape.boot_s,
            "price_per_hour": shape.price_per_hour,
            "max_nodes": shape.max_nodes,
            "consolidate_after_s": shape.consolidate_after_s,
        },
        "runs": runs,
        "ratios": {
            "cost_pool_over_static": _ratio(pool["cost_usd"], static["cost_usd"]),
            "wait_p99_pool_minus_static_s": round(
                (pool["wait_p99_s"] or 0.0) - (static["wait_p99_s"] or 0.0), 1
            ),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench autoscaling", description=__doc__.split("\n")[0])
    parser.add_argument("--base-rate", type=float, default=4.0)
    parser.add_argument("--burst-rate", type=float, default=24.0)
    parser.add_argument("--burst-at", type=float, default=120.0)
    parser.add_argument("--burst-s", type=float, default=180.0)
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--cold-start", type=float, default=15.0)
    parser.add_argument("--max-replicas", type=int, default=12)
    parser.add_argument("--pool-hours", type=float, default=4.0, help="simulated hours of claims")
    parser.add_argument("--boot", type=float, default=90.0, help="seconds a new node takes")
    parser.add_argument("--seed", type=int, default=1)
    args = parse_sized(
        parser, argv, {"burst_at": 60.0, "burst_s": 60.0, "duration": 200.0, "pool_hours": 1.0}
    )
    started = time.perf_counter()
    figures: dict[str, Any] = {
        "benchmark": "autoscaling",
        "quick": args.quick,
        "replicas": _replica_figures(args),
        "nodepools": _pool_figures(args),
    }
    figures["wall_s"] = round(time.perf_counter() - started, 2)
    print_summary(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
