"""Routing benchmark: the gateway's policies on simulated vLLM-like replicas (issue 4, benchmark 3).

Every policy of :mod:`modelplane.gateway` (the real ``Router``) replays four workloads on ten
simulated replicas (:func:`modelplane.sim.simulate_routing`), each offered more
than round-robin can serve (saturation):

* ``shared-prefix`` — 100 tenants with 2,000-4,000-token system prompts, 300 requests/s;
* ``multi-round`` — chat sessions whose prefix grows each round, 100 requests/s;
* ``low-reuse`` — nothing shared, 100 requests/s;
* ``hot-prefix`` — 90 % of requests share one prompt, 150 requests/s: where prefix-only routing
  piles everything onto one replica.

``prefix-load`` runs twice: with the gateway's default ``Router()`` and with
``Router(prefix_weight=64)`` (a full prefix match worth 64 requests in flight instead of 4).

Goals (ratios within the run): prefix-load >= 2x round-robin's output tokens/s and >= 10x lower
TTFT p90 on shared-prefix; on hot-prefix prefix-load serves >= 99 % of requests with the busiest
replica at <= 1.5x the mean while prefix-cache collapses; one simulated hour of 10 replicas in
<= 10 s of wall time (the simulator's own speed, with round-robin whose decisions cost nothing;
the same hour with prefix-load, whose decisions dominate, is reported beside it).

Progress on stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from modelplane.bench._figures import print_summary, progress
from modelplane.gateway import POLICIES, Router
from modelplane.sim import generate_trace, simulate_routing

TUNED_PREFIX_WEIGHT = 64.0
_KEYS = (
    "ttft_p50_s",
    "ttft_p90_s",
    "ttft_p99_s",
    "throughput_tokens_s",
    "success_rate",
    "cache_hit_rate",
    "load_spread",
    "max_queue",
    "wall_s",
)
#: (workload, requests/s, seconds of arrivals in a full run, in a quick run)
WORKLOADS = (
    ("shared-prefix", 300.0, 120.0, 40.0),
    ("multi-round", 100.0, 300.0, 120.0),
    ("low-reuse", 100.0, 120.0, 40.0),
    ("hot-prefix", 150.0, 120.0, 40.0),
)
HOUR_RATE = 50.0


_say = progress("routing")


def _row(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in _KEYS}


def _workloads(replicas: int, quick: bool, seed: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, rate, full_s, quick_s in WORKLOADS:
        duration = quick_s if quick else full_s
        trace = generate_trace(name, rate=rate, duration_s=duration, seed=seed)
        rows: dict[str, Any] = {"rate_per_s": rate, "duration_s": duration, "requests": len(trace)}
        for policy in POLICIES:
            rows[policy] = _row(
                simulate_routing(trace, replicas=replicas, policy=policy, seed=seed)
            )
        tuned = Router(seed=seed, prefix_weight=TUNED_PREFIX_WEIGHT)
        rows["prefix-load-w64"] = _row(
            simulate_routing(trace, replicas=replicas, policy="prefix-load", router=tuned)
        )
        _say(
            f"{name}: {len(trace)} requests; p90 TTFT "
            + ", ".join(f"{p} {rows[p]['ttft_p90_s']}s" for p in (*POLICIES, "prefix-load-w64"))
        )
        out[name] = rows
    return out


def _hour(replicas: int, quick: bool, seed: int) -> dict[str, Any]:
    duration = 600.0 if quick else 3600.0
    trace = generate_trace("shared-prefix", rate=HOUR_RATE, duration_s=duration, seed=seed)
    out: dict[str, Any] = {"simulated_s": duration, "rate_per_s": HOUR_RATE, "requests": len(trace)}
    for policy in ("round-robin", "prefix-load"):
        # prefix-load's decisions cost ~100x the simulator's own work: its first 10 minutes,
        # scaled to an hour, say enough
        part = trace if policy == "round-robin" else [r for r in trace if r.arrival < 600.0]
        span = duration if policy == "round-robin" else min(duration, 600.0)
        start = time.perf_counter()
        result = simulate_routing(part, replicas=replicas, policy=policy, seed=seed)
        wall = time.perf_counter() - start
        out[policy] = {
            "simulated_s": span,
            "wall_s": round(wall, 3),
            "wall_s_per_simulated_hour": round(wall * 3600.0 / span, 3),
            "events": result["events"],
            "events_per_s": round(result["events"] / wall),
            "success_rate": result["success_rate"],
        }
        _say(f"hour: {policy} {wall:.2f}s wall for {span:.0f}s simulated")
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


def _goals(work: dict[str, dict[str, Any]], hour: dict[str, Any]) -> dict[str, Any]:
    shared = work["shared-prefix"]
    rr = shared["round-robin"]
    goals: dict[str, Any] = {}
    for label, key in (("default", "prefix-load"), ("w64", "prefix-load-w64")):
        pl = shared[key]
        tput = _ratio(pl["throughput_tokens_s"], rr["throughput_tokens_s"])
        ttft = _ratio(rr["ttft_p90_s"], pl["ttft_p90_s"])
        goals[f"throughput_vs_round_robin_{label}"] = {
            "goal": ">= 2x",
            "value": tput,
            "met": tput is not None and tput >= 2.0,
        }
        goals[f"ttft_p90_vs_round_robin_{label}"] = {
            "goal": ">= 10x lower",
            "value": ttft,
            "met": ttft is not None and ttft >= 10.0,
        }
    hot = work["hot-prefix"]
    pl, pc = hot["prefix-load"], hot["prefix-cache"]
    goals["hot_spot"] = {
        "goal": "prefix-load success >= 0.99 and spread <= 1.5 where prefix-cache collapses",
        "prefix_load": {"success_rate": pl["success_rate"], "load_spread": pl["load_spread"]},
        "prefix_cache": {"success_rate": pc["success_rate"], "load_spread": pc["load_spread"]},
        "met": pl["success_rate"] >= 0.99 and pl["load_spread"] <= 1.5,
    }
    per_hour = hour["round-robin"]["wall_s_per_simulated_hour"]
    goals["simulated_hour_wall_s"] = {
        "goal": "<= 10 s for 10 replicas (simulator alone: round-robin)",
        "value": per_hour,
        "with_prefix_load": hour["prefix-load"]["wall_s_per_simulated_hour"],
        "met": per_hour <= 10.0,
    }
    return goals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench routing", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter traces: a smoke test")
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    work = _workloads(args.replicas, args.quick, args.seed)
    hour = _hour(args.replicas, args.quick, args.seed)
    figures = {
        "benchmark": "routing",
        "replicas": args.replicas,
        "quick": args.quick,
        "workloads": work,
        "simulated_hour": hour,
        "goals": _goals(work, hour),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print_summary(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
