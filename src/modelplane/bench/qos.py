"""QoS benchmark: the gateway's flow control (priority classes, tenants' weights) against
first-come-first-served with no classes, on simulated vLLM-like replicas (issue 19).

The gateway's own :class:`~modelplane.gateway.FlowQueue` and :class:`~modelplane.gateway.Router`
run in front of simulated replicas (:func:`modelplane.sim.simulate_routing` with ``qos=``); the
baseline is the same replicas and trace with no flow control (every request goes straight to a
replica's own first-come-first-served queue). Clients give up after ``patience`` seconds
without a first token (both runs); flow control sheds a request held ``ttl`` seconds. First the replicas' capacity ``C`` (requests/s) is measured by overloading them;
then, side by side in one run:

* **priority** — a high class (priority 10) at 0.3 C alone (idle), then with a low class
  (priority -5) flooding at 2.7 C (3x overload): the high class's TTFT p99 against its idle p99
  (goal <= 1.2x), high-priority rejections (goal 0) and who was shed or queued;
* **fairness** — two tenants of one class, weights 3:1, each offering 1.5 C: their output tokens
  finished while requests arrive (saturation), as a ratio (goal within 10 % of 3.0).

TTFT counts from the request's arrival at the gateway (time held in flow control included). The
first ``warmup_s`` of arrivals are left out of percentiles: every run starts with empty replicas.

With ``--real``, also the real case (:mod:`modelplane.bench.qos_real`): SmolLM2 behind
`modelplane up`, a low-priority flood and a high-priority client, the high client's TTFT without
and with flow control.

Progress on stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from modelplane.bench._figures import parse_sized, percentile, print_summary, progress
from modelplane.gateway import QosPolicy, TenantRule
from modelplane.sim import ReplicaModel, TraceRequest, simulate_routing

HIGH, LOW = 10, -5
_say = progress("qos")


def _trace(rates: dict[tuple[int, str], float], duration_s: float, seed: int) -> list[TraceRequest]:
    """Poisson arrivals per (priority, tenant); prompts of 256-768 tokens, answers of 64-192."""
    rnd = random.Random(seed)
    out: list[TraceRequest] = []
    for (priority, tenant), rate in sorted(rates.items()):
        t = rnd.expovariate(rate)
        while t < duration_s:
            prompt, answer = rnd.randint(256, 768), rnd.randint(64, 192)
            out.append(TraceRequest(t, "", 0, prompt, answer, priority=priority, tenant=tenant))
            t += rnd.expovariate(rate)
    out.sort(key=lambda r: r.arrival)
    return out


def _policy(args: argparse.Namespace, tenants: dict[str, float] | None = None) -> QosPolicy:
    return QosPolicy(
        classes={"interactive": HIGH, "batch": LOW},
        tenants={t: TenantRule(None, w) for t, w in (tenants or {}).items()},
        max_size=args.queue,
        ttl=args.ttl,
        queue_depth=8.0,
        kv_cache=0.95,
        max_in_flight=args.max_in_flight,
        background_share=args.background_share,
    )


def _run(
    trace: list[TraceRequest], args: argparse.Namespace, qos: QosPolicy | None
) -> dict[str, Any]:
    return simulate_routing(
        trace,
        replicas=args.replicas,
        policy="least-request",
        model=ReplicaModel(),
        seed=args.seed,
        queue_timeout_s=args.patience,
        qos=qos,
        per_request=True,
    )


def _class(
    trace: list[TraceRequest], result: dict[str, Any], priority: int, warmup: float
) -> dict[str, Any]:
    mine = [d for d in result["requests_detail"] if trace[d["index"]].priority == priority]
    ttfts = [d["ttft_s"] for d in mine if d["ok"] and trace[d["index"]].arrival >= warmup]
    return {
        "requests": len(mine),
        "rejected": sum(1 for d in mine if not d["ok"]),
        "ttft_p50_s": round(percentile(ttfts, 0.50), 4),
        "ttft_p99_s": round(percentile(ttfts, 0.99), 4),
    }


def _capacity(args: argparse.Namespace) -> float:
    flood = _trace({(0, ""): 400.0 * args.replicas}, args.duration / 3, args.seed)
    result = _run(flood, args, None)
    return float(result["completed"]) / float(result["simulated_s"])


def _priority(args: argparse.Namespace, capacity: float) -> dict[str, Any]:
    high, low = 0.3 * capacity, 2.7 * capacity
    idle = _trace({(HIGH, ""): high}, args.duration, args.seed)
    loaded = _trace({(HIGH, ""): high, (LOW, ""): low}, args.duration, args.seed)
    out: dict[str, Any] = {"offered": {"high_rps": round(high, 2), "low_rps": round(low, 2)}}
    for name, qos in (("flow_control", _policy(args)), ("fcfs", None)):
        quiet = _run(idle, args, qos)
        busy = _run(loaded, args, qos)
        row = {
            "idle_high": _class(idle, quiet, HIGH, args.warmup),
            "overload_high": _class(loaded, busy, HIGH, args.warmup),
            "overload_low": _class(loaded, busy, LOW, args.warmup),
            "shed": busy.get("shed", 0),
            "throughput_tokens_s": busy["throughput_tokens_s"],
            "wall_s": busy["wall_s"],
        }
        idle_p99 = row["idle_high"]["ttft_p99_s"]
        row["high_ttft_p99_vs_idle"] = round(row["overload_high"]["ttft_p99_s"] / idle_p99, 3)
        out[name] = row
        _say(f"priority {name}: high p99 x{row['high_ttft_p99_vs_idle']} of idle")
    return out


def _fairness(args: argparse.Namespace, capacity: float) -> dict[str, Any]:
    each = 1.5 * capacity
    trace = _trace({(0, "a"): each, (0, "b"): each}, args.duration, args.seed)
    out: dict[str, Any] = {"weights": {"a": 3.0, "b": 1.0}, "offered_rps_each": round(each, 2)}
    for name, qos in (("flow_control", _policy(args, {"a": 3.0, "b": 1.0})), ("fcfs", None)):
        result = _run(trace, args, qos)
        tokens = result["tenant_output_tokens"]
        ratio = tokens.get("a", 0) / max(tokens.get("b", 0), 1)
        out[name] = {"output_tokens": tokens, "ratio_a_to_b": round(ratio, 3)}
        _say(f"fairness {name}: a/b = {ratio:.2f}")
    return out


def _goals(priority: dict[str, Any], fairness: dict[str, Any]) -> dict[str, Any]:
    flow = priority["flow_control"]
    ratio = fairness["flow_control"]["ratio_a_to_b"]
    return {
        "high_ttft_p99_vs_idle": {
            "goal": "<= 1.2x at 3x overload",
            "value": flow["high_ttft_p99_vs_idle"],
            "fcfs": priority["fcfs"]["high_ttft_p99_vs_idle"],
            "met": flow["high_ttft_p99_vs_idle"] <= 1.2,
        },
        "high_rejections": {
            "goal": "0",
            "value": flow["overload_high"]["rejected"],
            "fcfs": priority["fcfs"]["overload_high"]["rejected"],
            "met": flow["overload_high"]["rejected"] == 0,
        },
        "only_low_shed": {
            "goal": "every shed request is low priority",
            "low_rejected": flow["overload_low"]["rejected"],
            "met": flow["overload_high"]["rejected"] == 0
            and flow["shed"] <= flow["overload_low"]["rejected"],
        },
        "tenant_ratio_3_to_1": {
            "goal": "within 10% of 3.0",
            "value": ratio,
            "fcfs": fairness["fcfs"]["ratio_a_to_b"],
            "met": abs(ratio - 3.0) <= 0.3,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench qos", description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of arrivals")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out of TTFTs")
    parser.add_argument("--max-in-flight", type=int, default=32, help="per replica")
    parser.add_argument("--background-share", type=float, default=0.5)
    parser.add_argument("--queue", type=int, default=512, help="flow control's queue size")
    parser.add_argument("--ttl", type=float, default=10.0, help="seconds a request may wait")
    parser.add_argument(
        "--patience", type=float, default=30.0, help="seconds a client waits for its first token"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--real",
        action="store_true",
        help="also the real case: SmolLM2 behind modelplane up (modelplane.bench.qos_real)",
    )
    parser.add_argument("--model-dir", default=None, help="real case: SmolLM2 safetensors")
    parser.add_argument("--flood", type=int, default=8, help="real case: low-priority clients")
    parser.add_argument("--flood-tokens", type=int, default=64, help="real case: low answers")
    parser.add_argument("--high-requests", type=int, default=12, help="real case: high requests")
    parser.add_argument("--high-tokens", type=int, default=8, help="real case: high answers")
    args = parse_sized(
        parser, argv, {"duration": 20.0, "flood": 4, "flood_tokens": 32, "high_requests": 4}
    )
    started = time.perf_counter()
    capacity = _capacity(args)
    _say(f"capacity: {capacity:.1f} requests/s on {args.replicas} replicas")
    priority = _priority(args, capacity)
    fairness = _fairness(args, capacity)
    real: dict[str, Any] | None = None
    if args.real:
        from modelplane.bench.qos_real import run_real

        real = run_real(args)
    print_summary(
        {
            "benchmark": "qos",
            "quick": args.quick,
            "replicas": args.replicas,
            "capacity_rps": round(capacity, 2),
            "flow_control": {
                "max_in_flight": args.max_in_flight,
                "background_share": args.background_share,
                "queue": args.queue,
                "ttl_s": args.ttl,
            },
            "priority": priority,
            "fairness": fairness,
            "goals": _goals(priority, fairness),
            **({"real": real} if real is not None else {}),
            "wall_s": round(time.perf_counter() - started, 1),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
