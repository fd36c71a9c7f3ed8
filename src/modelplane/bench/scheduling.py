"""Scheduling benchmark: ours against first-fit (upstream DRA), binpack (Volcano) and the optimum.

    modelplane bench scheduling            # the whole benchmark, a few minutes on 2 cores
    modelplane bench scheduling --quick    # smaller sizes, a smoke test (under a minute)

One run, every policy on the same inputs:

1. **churn at 500 nodes x 8 GPUs** (MIG partitions as counter sets): the mixed workload (single
   GPUs, MIG slices, agent workers, 2/4/8-GPU claims with and without topology constraints,
   firstAvailable, infeasible claims) arrives and leaves; claims/s, decision p50/p99/max,
   allocation rate at first rejection and under churn, stranded GPUs, topology hit rate, cost,
   power. The same for a workload shaped like Alibaba's GPU trace;
2. **5,000 nodes** (without MIG partitions, to bound the time to build the inventory): claims/s
   and decision latency with fewer claims;
3. **hard inputs**: counter backtracking, infeasible claims, list-attribute stress; the decision
   time of each, whether it was decided (not "gave up") and right;
4. **exact optimum** (HiGHS ILP) on small clusters: demand served by each policy for one batch,
   in arrival order and largest first, against the most any valid allocation could serve (see
   ``OPTIMUM_DEFINITION``; the optimum is replayed through the allocator to prove it valid);
5. **allocation rate against offered load**: batches of growing size, per policy, plotted to
   ``docs/img/scheduling-allocation.png`` (needs matplotlib).

Progress goes to stderr; the last stdout line is one JSON object with the figures, the ratios
against first-fit, and each goal of the issue with its figure and whether it was met.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelplane.bench._figures import print_summary, progress
from modelplane.scheduling import (
    AllocatedState,
    AllocationResult,
    Inventory,
    Unschedulable,
    allocate,
    policy_named,
)
from modelplane.sim import (
    DEFAULT_MIX,
    generate_alibaba_workload,
    generate_cluster,
    generate_workload,
    hard_inputs,
    mean_units,
    simulate,
    split_objects,
)

POLICIES = ("modelplane", "first-fit", "binpack")
ROOT = "resource.kubernetes.io/pcieRoot"
DEFAULT_PLOT = Path("docs/img/scheduling-allocation.png")


_log = progress("scheduling")


@dataclass(frozen=True)
class Sizes:
    nodes: int = 500
    claims: int = 2000
    alibaba_nodes: int = 128
    alibaba_tasks: int = 1500
    big_nodes: int = 5000
    big_claims: int = 300
    hard_nodes: int = 64
    optimum_nodes: int = 6
    optimum_loads: tuple[float, ...] = (0.9, 1.1, 1.3)
    sweep_nodes: int = 64
    sweep_loads: tuple[float, ...] = (0.5, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5)


QUICK = Sizes(
    nodes=64,
    claims=400,
    alibaba_nodes=32,
    alibaba_tasks=400,
    big_nodes=1000,
    big_claims=100,
    hard_nodes=16,
    optimum_nodes=4,
    optimum_loads=(1.2,),
    sweep_nodes=16,
    sweep_loads=(0.6, 1.0, 1.4),
)


def _inventory(objs: list[dict[str, Any]]) -> Inventory:
    g = split_objects(objs)
    return Inventory.from_objects(g["ResourceSlice"], g["DeviceClass"], g.get("Node", []))


def _deadline(policy: str) -> float:
    # Upstream has no per-decision bound this tight; give the baselines room to finish.
    return 50.0 if policy == "modelplane" else 1000.0


def _simulate_all(
    objs: list[dict[str, Any]], inv: Inventory, workload: list[dict[str, Any]], label: str
) -> dict[str, Any]:
    # Selector matching is cached in the inventory; warm it so no policy pays for it.
    for c in workload[:200]:
        allocate(c, inv)
    figures: dict[str, Any] = {}
    for name in POLICIES:
        t = time.perf_counter()
        out = simulate(objs, workload, name, deadline_ms=_deadline(name), inventory=inv)
        metrics = out["metrics"]
        metrics["preferred_topology_hit_rate"] = _preferred_hits(out["allocations"], inv)
        figures[name] = metrics
        _log(
            f"{label} {name}: {metrics['claims_per_second']} claims/s, p99 "
            f"{metrics['decision_ms']['p99']} ms, allocation at first rejection "
            f"{metrics['allocation_rate_at_first_rejection']}, under churn "
            f"{metrics['mean_allocation_rate']} ({time.perf_counter() - t:.1f}s)"
        )
    return figures


def _preferred_hits(allocations: list[dict[str, Any]], inv: Inventory) -> float | None:
    """Share of claims that only *prefer* one PCIe root (``-any`` shapes) and got one."""
    hits = total = 0
    for a in allocations:
        if not a["claim"].endswith("-any"):
            continue
        roots = set()
        for r in a["results"]:
            dev = inv.device(r["driver"], r["pool"], r["device"])
            roots.add(dev.attributes.get(ROOT) if dev else None)
        total += 1
        hits += len(roots) == 1
    return round(hits / total, 4) if total else None


def _hard(sizes: Sizes) -> dict[str, Any]:
    """Decide each hard input twice per policy: cold (selectors not yet matched) and warm."""
    out: dict[str, Any] = {}
    invs: dict[int, Inventory] = {}
    for h in hard_inputs(sizes.hard_nodes):
        inv = invs.get(id(h.cluster)) or invs.setdefault(id(h.cluster), _inventory(h.cluster))
        per: dict[str, Any] = {"description": h.description}
        for policy in POLICIES:
            state = AllocatedState.from_claims(inv, h.allocated)
            cold = allocate(h.claim, inv, allocated_state=state, policy=policy, deadline_ms=50)
            cold_tries = 1
            # a cold decision may give up while matching selectors; a retry resumes the matching
            while (
                isinstance(cold, Unschedulable)
                and cold.timed_out
                and "matching selectors" in cold.reason
                and cold_tries < 1000
            ):
                cold = allocate(h.claim, inv, allocated_state=state, policy=policy, deadline_ms=50)
                cold_tries += 1
            warm = allocate(h.claim, inv, allocated_state=state, policy=policy, deadline_ms=50)
            timed_out = bool(getattr(warm, "timed_out", False))
            per[policy] = {
                "ms": round(warm.elapsed_ms, 2),
                "cold_ms": round(cold.elapsed_ms, 2),
                "cold_tries": cold_tries,
                "allocated": isinstance(warm, AllocationResult),
                "timed_out": timed_out,
                "right": None
                if h.feasible is None or timed_out
                else isinstance(warm, AllocationResult) == h.feasible,
            }
        out[h.name] = per
        ours = per["modelplane"]
        _log(f"hard input {h.name}: ours {ours['ms']} ms (cold {ours['cold_ms']}), {ours}")
    return out


def _place_batch(
    claims: Sequence[Mapping[str, Any]], inv: Inventory, policy: str
) -> tuple[AllocatedState, list[Mapping[str, Any]]]:
    """Place ``claims`` one by one in the given order on an empty cluster; the placed ones."""
    state = AllocatedState(inv)
    pol = policy_named(policy)
    placed = []
    for c in claims:
        r = allocate(c, inv, allocated_state=state, policy=pol, deadline_ms=_deadline(policy))
        if isinstance(r, AllocationResult):
            state.add(r.claim, r)
            placed.append(c)
    return state, placed


def _batch_units(claims: Sequence[Mapping[str, Any]], inv: Inventory, policy: str) -> float:
    state, _ = _place_batch(claims, inv, policy)
    return sum(state.node_units.values())


def _size(claim: Mapping[str, Any]) -> int:
    requests = claim["spec"]["devices"]["requests"]
    return sum(int((r.get("exactly") or {}).get("count") or 1) for r in requests)


def _largest_first(claims: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(claims, key=lambda c: -_size(c))


def _batch(nodes_total: float, load: float, seed: int) -> list[dict[str, Any]]:
    count = max(1, round(nodes_total * load / mean_units(DEFAULT_MIX)))
    return generate_workload(count, seed=seed)


OPTIMUM_DEFINITION = (
    "demand served: each placed claim counts the accelerator units its preferred shape asks for "
    "(per request, the first alternative's count x the smallest GPU share of a matching device; "
    "a MIG slice is its share of a GPU), whichever devices it gets. optimum: the most demand any "
    "valid allocation of the batch serves (HiGHS ILP, proven optimal unless optimum_proven is "
    "false, and replayed through the allocator pinned to its devices). arrival_order: the batch "
    "placed one claim at a time in arrival order; largest_first: the same batch sorted by "
    "devices asked, largest first (a batch placement mode). gap = 1 - served / optimum; "
    "gpus_consumed is the GPU share of the devices held, which may exceed demand when a claim "
    "falls back to a larger firstAvailable alternative."
)


def _served(
    claims: Sequence[Mapping[str, Any]], inv: Inventory, policy: str, best: float
) -> dict[str, Any]:
    from modelplane.sim import demand

    state, placed = _place_batch(claims, inv, policy)
    served = sum(demand(c, inv) for c in placed)
    return {
        "demand": round(served, 3),
        "claims": len(placed),
        "gpus_consumed": round(sum(state.node_units.values()), 3),
        "gap": round(1 - served / best, 4) if best else 0.0,
    }


def _optimum_gaps(sizes: Sizes, seed: int) -> dict[str, Any]:
    from modelplane.sim import demand, optimum, replay

    instances = []
    for i, load in enumerate(sizes.optimum_loads):
        objs = generate_cluster(sizes.optimum_nodes, seed=seed + i)
        inv = _inventory(objs)
        total = sum(n.units for n in inv.nodes.values())
        batch = _batch(total, load, seed + i)
        best = optimum(batch, inv, time_limit_s=60)
        held = replay(best, batch, inv)  # raises if the allocator refuses the optimum's devices
        row: dict[str, Any] = {
            "nodes": sizes.optimum_nodes,
            "gpus": total,
            "offered_load": load,
            "claims": len(batch),
            "demand_offered": round(sum(demand(c, inv) for c in batch), 3),
            "optimum_demand": round(best.units, 3),
            "optimum_claims": best.claims,
            "optimum_gpus_consumed": round(sum(held.node_units.values()), 3),
            "optimum_proven": best.optimal,
            "optimum_replayed": True,
            "optimum_seconds": round(best.seconds, 2),
        }
        for policy in POLICIES:
            row[policy] = {
                "arrival_order": _served(batch, inv, policy, best.units),
                "largest_first": _served(_largest_first(batch), inv, policy, best.units),
            }
        instances.append(row)
        _log(
            f"optimum, offered load {load} ({len(batch)} claims, {total:g} GPUs): optimum "
            f"{best.units:.3f} ({best.claims} claims, proven {best.optimal}); gap arrival order / "
            "largest first: "
            + ", ".join(
                f"{p} {row[p]['arrival_order']['gap']} / {row[p]['largest_first']['gap']}"
                for p in POLICIES
            )
        )
    return {
        "definition": OPTIMUM_DEFINITION,
        "instances": instances,
        "worst_gap": {
            p: {
                order: max(r[p][order]["gap"] for r in instances)
                for order in ("arrival_order", "largest_first")
            }
            for p in POLICIES
        },
    }


def _sweep(sizes: Sizes, seed: int) -> dict[str, Any]:
    """Allocation rate (GPUs allocated / GPUs) of one batch per offered load, per policy."""
    inv = _inventory(generate_cluster(sizes.sweep_nodes, seed=seed))
    total = sum(n.units for n in inv.nodes.values())
    rates: dict[str, list[float]] = {p: [] for p in POLICIES}
    for load in sizes.sweep_loads:
        batch = _batch(total, load, seed)
        for policy in POLICIES:
            rates[policy].append(round(_batch_units(batch, inv, policy) / total, 4))
        _log(f"offered load {load}: " + ", ".join(f"{p} {rates[p][-1]}" for p in POLICIES))
    return {"nodes": sizes.sweep_nodes, "offered_load": list(sizes.sweep_loads), "rates": rates}


def _plot(sweep: Mapping[str, Any], optimum_gaps: Mapping[str, Any] | None, path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is missing (pip install 'modelplane[bench]')"
    panels = 2 if optimum_gaps else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    ax = axes[0][0]
    loads = sweep["offered_load"]
    for policy in POLICIES:
        ax.plot(loads, sweep["rates"][policy], marker="o", label=policy)
    ax.plot(loads, [min(1.0, x) for x in loads], ls=":", color="grey", label="offered (cap 1)")
    ax.set_title(f"{sweep['nodes']} nodes x 8 GPUs, one batch, arrival order")
    ax.set_xlabel("offered load (GPUs requested / GPUs)")
    ax.set_ylabel("allocation rate (GPUs allocated / GPUs)")
    ax.grid(alpha=0.3)
    ax.legend()
    if optimum_gaps:
        ax = axes[0][1]
        rows = optimum_gaps["instances"]
        x = [r["offered_load"] for r in rows]
        per_gpu = rows[0]["gpus"]
        ax.plot(
            x, [r["optimum_demand"] / per_gpu for r in rows], marker="*", ms=12, label="optimum"
        )
        for policy in POLICIES:
            for order, style in (("arrival_order", "-"), ("largest_first", "--")):
                ys = [r[policy][order]["demand"] / per_gpu for r in rows]
                label = f"{policy} ({order.replace('_', ' ')})"
                ax.plot(x, ys, marker="o", ls=style, label=label)
        ax.set_title(f"{rows[0]['nodes']} nodes: against the exact optimum (HiGHS)")
        ax.set_xlabel("offered load")
        ax.set_ylabel("demand served / GPUs")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _goal(met: bool, figure: Any, target: str) -> dict[str, Any]:
    return {"met": bool(met), "figure": figure, "target": target}


def run(
    sizes: Sizes = Sizes(), *, seed: int = 1, plot: Path | None = DEFAULT_PLOT
) -> dict[str, Any]:
    """Every part of the benchmark; returns figures, ratios and goals as one dict."""
    started = time.perf_counter()
    churn = _churn(sizes, seed)
    alibaba = _alibaba(sizes, seed)
    scale = _scale(sizes, seed)
    hard = _hard(sizes)
    try:
        gaps: dict[str, Any] | None = _optimum_gaps(sizes, seed)
    except ImportError as exc:
        gaps = None
        _log(f"no exact optimum: {exc} (pip install 'modelplane[bench]')")
    sweep = _sweep(sizes, seed)
    plotted = _plot(sweep, gaps, plot) if plot is not None else "not asked for"
    _log(f"plot: {plotted}")

    ours, ff = churn["policies"]["modelplane"], churn["policies"]["first-fit"]
    stranded_ff = ff["stranded_gpus_at_first_rejection"] or 0.0
    stranded_ours = ours["stranded_gpus_at_first_rejection"] or 0.0
    fewer_stranded = 1 - stranded_ours / stranded_ff if stranded_ff else 0.0
    return {
        "benchmark": "scheduling",
        "seed": seed,
        "churn": churn,
        "alibaba": alibaba,
        "scale": scale,
        "hard_inputs": hard,
        "optimum": gaps,
        "offered_load_sweep": sweep,
        "plot": plotted,
        "ratios": {
            "claims_per_second_vs_first_fit": round(
                ours["claims_per_second"] / ff["claims_per_second"], 2
            )
            if ff["claims_per_second"]
            else None,
            "fewer_stranded_gpus_vs_first_fit": round(fewer_stranded, 3),
            "allocation_rate_under_churn_vs_first_fit": round(
                ours["mean_allocation_rate"] / (ff["mean_allocation_rate"] or 1), 3
            ),
        },
        "goals": _goals(sizes, ours, scale["policies"]["modelplane"], hard, gaps, fewer_stranded),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _churn(sizes: Sizes, seed: int) -> dict[str, Any]:
    """Claims arriving faster than they leave, on the mixed cluster with MIG."""
    t = time.perf_counter()
    objs = generate_cluster(sizes.nodes, seed=seed)
    inv = _inventory(objs)
    _log(
        f"cluster: {sizes.nodes} nodes, {len(inv.devices)} devices ({time.perf_counter() - t:.1f}s)"
    )
    # Claims arrive at 10/s for a mean 40 min: offered load well above the cluster.
    workload = generate_workload(
        sizes.claims, rate_per_second=10.0, mean_duration_seconds=2400.0, infeasible=5, seed=seed
    )
    return {
        "nodes": sizes.nodes,
        "gpus": sizes.nodes * 8,
        "devices": len(inv.devices),
        "claims": len(workload),
        "policies": _simulate_all(objs, inv, workload, f"{sizes.nodes} nodes"),
    }


def _alibaba(sizes: Sizes, seed: int) -> dict[str, Any]:
    """The Alibaba GPU trace's shapes on an H100/A100 cluster."""
    objs = generate_cluster(sizes.alibaba_nodes, mix={"h100": 0.6, "a100": 0.4}, seed=seed)
    inv = _inventory(objs)
    work = generate_alibaba_workload(
        sizes.alibaba_tasks,
        rate_per_second=sizes.alibaba_nodes * 8 / 900.0,
        mean_duration_seconds=2400.0,
        seed=seed,
    )
    policies = _simulate_all(objs, inv, work, f"alibaba {sizes.alibaba_nodes} nodes")
    return {"nodes": sizes.alibaba_nodes, "claims": len(work), "policies": policies}


def _scale(sizes: Sizes, seed: int) -> dict[str, Any]:
    """Whole GPUs on the large cluster: how decisions scale with nodes."""
    t = time.perf_counter()
    objs = generate_cluster(sizes.big_nodes, mig=False, seed=seed)
    inv = _inventory(objs)
    _log(
        f"cluster: {sizes.big_nodes} nodes, {len(inv.devices)} devices ({time.perf_counter() - t:.1f}s)"
    )
    mix = {k: w for k, w in DEFAULT_MIX.items() if not k.startswith("mig")}
    work = generate_workload(
        sizes.big_claims, rate_per_second=5.0, mean_duration_seconds=3600.0, mix=mix, seed=seed
    )
    policies = _simulate_all(objs, inv, work, f"{sizes.big_nodes} nodes")
    return {"nodes": sizes.big_nodes, "claims": len(work), "policies": policies}


def _goals(
    sizes: Sizes,
    ours: Mapping[str, Any],
    big: Mapping[str, Any],
    hard: Mapping[str, Any],
    gaps: Mapping[str, Any] | None,
    fewer_stranded: float,
) -> dict[str, Any]:
    hard_ms = max(h["modelplane"]["ms"] for h in hard.values())
    hard_ok = all(
        not h["modelplane"]["timed_out"] and h["modelplane"]["right"] is not False
        for h in hard.values()
    )
    goals = {
        f"claims_per_second>=800 at {sizes.nodes} nodes": _goal(
            ours["claims_per_second"] >= 800, ours["claims_per_second"], ">= 800"
        ),
        f"p99_decision_ms<10 at {sizes.nodes} nodes": _goal(
            ours["decision_ms"]["p99"] < 10, ours["decision_ms"]["p99"], "< 10 ms"
        ),
        f"claims_per_second>=200 at {sizes.big_nodes} nodes": _goal(
            big["claims_per_second"] >= 200, big["claims_per_second"], ">= 200"
        ),
        "hard_inputs_max_ms<50": _goal(
            hard_ms < 50 and hard_ok,
            {"max_ms": hard_ms, "all_decided_and_right": hard_ok},
            "< 50 ms, decided, right",
        ),
        "stranded_30pct_fewer_than_first_fit": _goal(
            fewer_stranded >= 0.30, round(fewer_stranded, 3), ">= 0.30"
        ),
        "topology_hit>=0.95": _goal(
            (ours["topology_hit_rate"] or 0) >= 0.95
            and (ours["preferred_topology_hit_rate"] or 0) >= 0.95,
            {
                "all_multi_gpu": ours["topology_hit_rate"],
                "preferred_only": ours["preferred_topology_hit_rate"],
            },
            ">= 0.95",
        ),
    }
    if gaps is not None:
        worst = gaps["worst_gap"]["modelplane"]
        goals["within_3pct_of_optimum"] = _goal(
            worst["largest_first"] <= 0.03,
            worst["largest_first"],
            "<= 0.03 (demand served, batch placed largest first; arrival order in optimum)",
        )
    return goals


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry: progress on stderr, one JSON object as the last stdout line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke test")
    parser.add_argument("--nodes", type=int, help="nodes of the churn run (default 500)")
    parser.add_argument("--claims", type=int, help="claims of the churn run (default 2000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--plot",
        default=str(DEFAULT_PLOT),
        help=f"where to write the plot (default {DEFAULT_PLOT}); 'none' for no plot",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.nodes or args.claims:
        sizes = Sizes(
            **{
                **sizes.__dict__,
                "nodes": args.nodes or sizes.nodes,
                "claims": args.claims or sizes.claims,
            }
        )
    plot = None if args.plot == "none" else Path(args.plot)
    result = run(sizes, seed=args.seed, plot=plot)
    print_summary(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
