"""Power benchmark: tokens per joule and TPOT under a 25% power cut, against running uncapped.

Simulated (:func:`modelplane.sim.simulate_power`, the power model calibrated on Samsi et al.,
HPEC 2023: 250 W -> 175 W saved about 23% energy for 6-7% more time): a rack of H100-class GPUs
(700 W TDP, 90 W idle, 200 W lowest cap), one decode replica per GPU, half of them serving a
high-priority endpoint (``chat``, priority 10) and half a background one (``batch``, priority
-1), Poisson requests of geometric output lengths. The same arrivals are replayed three times:

* ``uncapped``: no cap (the baseline);
* ``uniform``: the budget cut 25% by capping every GPU at 75% of its TDP;
* ``budget``: the same budget split by :func:`modelplane.scheduling.plan_power_caps`, as the power
  controller does: the background endpoint's GPUs give up power first.

Figures: tokens per joule and TPOT p99 (per request: decode time over tokens after the first),
overall and per endpoint, and their ratios to ``uncapped``. Goals: under the cut, tokens per
joule up >= 15% and TPOT p99 up <= 10% (``budget``), and the sum of caps within the budget.

Progress on stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from modelplane.bench._figures import parse_sized, percentile, print_summary, progress
from modelplane.scheduling import PowerDevice, plan_power_caps
from modelplane.sim import PowerModel, ReplicaLoad, simulate_power

TDP_W = 700.0
IDLE_W = 90.0
MIN_CAP_W = 200.0
CUT = 0.25
ENDPOINTS = (("chat", 10), ("batch", -1))

_say = progress("power")


def _loads(replicas: int, rate: float) -> list[ReplicaLoad]:
    model = PowerModel.calibrated(TDP_W, IDLE_W)
    out = []
    for i in range(replicas):
        endpoint, priority = ENDPOINTS[i % len(ENDPOINTS)]
        out.append(ReplicaLoad(f"gpu-{i}", endpoint, priority, rate, model=model))
    return out


def _figures(result: dict[str, Any]) -> dict[str, Any]:
    eps = result["endpoints"]
    tokens = sum(e["tokens"] for e in eps.values())
    joules = sum(e["joules"] for e in eps.values())
    tpot = [x for e in eps.values() for x in e["tpot"]]
    out: dict[str, Any] = {
        "tokens": tokens,
        "joules": round(joules),
        "tokens_per_joule": round(tokens / joules, 4),
        "tpot_p50_ms": round(percentile(tpot, 0.5) * 1000, 2),
        "tpot_p99_ms": round(percentile(tpot, 0.99) * 1000, 2),
        "endpoints": {},
    }
    for name, e in eps.items():
        out["endpoints"][name] = {
            "tokens_per_joule": round(e["tokens_per_joule"], 4),
            "tpot_p99_ms": round(percentile(e["tpot"], 0.99) * 1000, 2),
        }
    return out


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench power", description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=600.0, help="simulated seconds")
    parser.add_argument("--rate", type=float, default=3.0, help="requests/s per replica")
    parser.add_argument("--seed", type=int, default=1)
    args = parse_sized(parser, argv, {"replicas": 8, "seconds": 120.0})
    started = time.perf_counter()
    loads = _loads(args.replicas, args.rate)
    budget = (1.0 - CUT) * TDP_W * len(loads)
    devices = [PowerDevice(ld.name, TDP_W, IDLE_W, MIN_CAP_W, ld.priority) for ld in loads]
    plan = plan_power_caps(budget, devices)
    caps: dict[str, dict[str, float | None]] = {
        "uncapped": {},
        "uniform": {ld.name: (1.0 - CUT) * TDP_W for ld in loads},
        "budget": dict(plan.caps),
    }
    runs: dict[str, Any] = {}
    for name, c in caps.items():
        t0 = time.perf_counter()
        runs[name] = _figures(simulate_power(loads, c, duration_s=args.seconds, seed=args.seed))
        runs[name]["caps_sum_watts"] = round(sum(c.get(ld.name) or TDP_W for ld in loads), 1)
        _say(
            f"{name}: {runs[name]['tokens_per_joule']} tokens/J, TPOT p99 "
            f"{runs[name]['tpot_p99_ms']} ms ({time.perf_counter() - t0:.1f}s)"
        )
    base = runs["uncapped"]
    ratios = {
        name: {
            "tokens_per_joule": _ratio(r["tokens_per_joule"], base["tokens_per_joule"]),
            "tpot_p99": _ratio(r["tpot_p99_ms"], base["tpot_p99_ms"]),
            "endpoints": {
                ep: {
                    "tokens_per_joule": _ratio(
                        v["tokens_per_joule"], base["endpoints"][ep]["tokens_per_joule"]
                    ),
                    "tpot_p99": _ratio(v["tpot_p99_ms"], base["endpoints"][ep]["tpot_p99_ms"]),
                }
                for ep, v in r["endpoints"].items()
            },
        }
        for name, r in runs.items()
        if name != "uncapped"
    }
    ours: dict[str, Any] = ratios["budget"]
    figures = {
        "benchmark": "power",
        "quick": args.quick,
        "replicas": args.replicas,
        "simulated_s": args.seconds,
        "budget_watts": budget,
        "caps_watts": {
            ep: sorted({plan.caps[ld.name] for ld in loads if ld.endpoint == ep})
            for ep, _ in ENDPOINTS
        },
        "runs": runs,
        "ratios": ratios,
        "goals": {
            "tokens_per_joule_up": {
                "target": ">= 1.15x uncapped under a 25% cut",
                "figure": ours["tokens_per_joule"],
                "met": ours["tokens_per_joule"] >= 1.15,
            },
            "tpot_p99_up": {
                "target": "<= 1.10x uncapped under a 25% cut",
                "figure": ours["tpot_p99"],
                "met": ours["tpot_p99"] <= 1.10,
            },
            "within_budget": {
                "target": f"sum of caps <= {budget:g} W",
                "figure": plan.total_watts,
                "met": plan.total_watts <= budget,
            },
        },
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print_summary(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
