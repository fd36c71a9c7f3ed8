"""NIC alignment benchmark: multi-GPU claims that need RDMA NICs on their GPUs' PCIe root.

A simulated cluster (:func:`modelplane.sim.generate_cluster` with ``nics=True``: H100 nodes with
a NIC per GPU, A100 nodes with one per two GPUs, L40S nodes with one NIC on the first root only)
takes a Poisson stream of claims (:data:`modelplane.sim.NIC_MIX`: single GPUs and MIG slices
beside 2-, 4- and 8-GPU claims that ask for NICs with ``matchAttribute`` on the PCIe root) with
exponential lifetimes, at about 85% offered load. Three placements see the same stream:

* ``modelplane``: the claim as written (GPU and NIC requests decided together), our policy with
  its 50 ms decision bound;
* ``first-fit-joint``: the same claim, upstream DRA's first-fit policy;
* ``first-fit-then-nics`` (the baseline): GPUs placed first-fit as a GPU-only claim (each GPU
  group still on one root), then NICs looked for on the roots it chose, as a separate NIC claim
  does once the GPUs are placed.

Before each NIC claim is decided, an exhaustive search (no time bound to speak of) on the same
state says whether the cluster *has* aligned GPUs and NICs for it. The figure is
``aligned / feasible``: how often a claim got aligned NICs when the cluster had them. Goal: 1.0
for ``modelplane``; the baseline's figure is reported beside it.

Progress on stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import heapq
import time
from collections import Counter
from typing import Any

from modelplane.bench._figures import parse_sized, percentile, print_summary, progress
from modelplane.scheduling import AllocatedState, AllocationResult, Inventory, allocate
from modelplane.sim import (
    NIC_DRIVER,
    NIC_MIX,
    generate_cluster,
    generate_workload,
    mean_units,
    split_objects,
)

PCIE = "resource.kubernetes.io/pcieRoot"
ARRIVAL = "modelplane.dev/arrival-seconds"
DURATION = "modelplane.dev/duration-seconds"
MEAN_DURATION_S = 600.0
ORACLE_MS = 10_000.0
PLACEMENTS = ("modelplane", "first-fit-joint", "first-fit-then-nics")

_say = progress("nics")


def _wants_nics(claim: dict[str, Any]) -> bool:
    return any(
        (r.get("exactly") or {}).get("deviceClassName") == NIC_DRIVER
        for r in claim["spec"]["devices"]["requests"]
    )


def _gpus_only(claim: dict[str, Any]) -> dict[str, Any]:
    """The claim without its NIC requests; each GPU group keeps its own PCIe-root constraint."""
    out = copy.deepcopy(claim)
    devices = out["spec"]["devices"]
    devices["requests"] = [
        r
        for r in devices["requests"]
        if (r.get("exactly") or {}).get("deviceClassName") != NIC_DRIVER
    ]
    gpus = {r["name"] for r in devices["requests"]}
    devices["constraints"] = [
        {**c, "requests": [n for n in c["requests"] if n in gpus]}
        for c in devices.get("constraints") or ()
    ]
    return out


def _nics_on(claim: dict[str, Any], result: AllocationResult) -> list[dict[str, Any]]:
    """Per NIC request of ``claim``, a NIC-only claim restricted to the root its GPUs got."""
    roots: dict[str, str] = {}
    for r in result.devices:
        roots[r.request] = str(r.device.attributes[PCIE])
    out = []
    for r in claim["spec"]["devices"]["requests"]:
        body = r.get("exactly") or {}
        if body.get("deviceClassName") != NIC_DRIVER:
            continue
        root = roots[r["name"].replace("nic", "gpu")]
        expr = f"device.attributes['resource.kubernetes.io'].pcieRoot == '{root}'"
        nic_claim = copy.deepcopy(claim)
        nic_claim["metadata"]["name"] += f"-{r['name']}"
        nic_claim["spec"]["devices"] = {
            "requests": [
                {
                    "name": r["name"],
                    "exactly": {**body, "selectors": [{"cel": {"expression": expr}}]},
                }
            ]
        }
        out.append(nic_claim)
    return out


def _place(
    placement: str, claim: dict[str, Any], inv: Inventory, state: AllocatedState
) -> tuple[list[tuple[str, AllocationResult]], bool]:
    """Place ``claim``: the results to hold, and whether it got NICs aligned with its GPUs."""
    key = f"{claim['metadata']['namespace']}/{claim['metadata']['name']}"
    if placement != "first-fit-then-nics":
        policy, bound = ("modelplane", 50) if placement == "modelplane" else ("first-fit", 1000)
        result = allocate(claim, inv, allocated_state=state, policy=policy, deadline_ms=bound)
        if isinstance(result, AllocationResult):
            return [(key, result)], _wants_nics(claim)
        return [], False
    gpu_claim = _gpus_only(claim)
    result = allocate(gpu_claim, inv, allocated_state=state, policy="first-fit", deadline_ms=1000)
    if not isinstance(result, AllocationResult):
        return [], False
    held = [(key, result)]
    state.add(key, result)
    aligned = _wants_nics(claim)
    for nic_claim in _nics_on(claim, result):
        nic_key = f"{key}-{nic_claim['metadata']['name']}"
        got = allocate(nic_claim, inv, allocated_state=state, policy="first-fit", deadline_ms=1000)
        if isinstance(got, AllocationResult):
            state.add(nic_key, got)
            held.append((nic_key, got))
        else:
            aligned = False
    for k, _ in held:
        state.release(k)
    return held, aligned


def _run(placement: str, inv: Inventory, claims: list[dict[str, Any]]) -> dict[str, Any]:
    state = AllocatedState(inv)
    ends: list[tuple[float, int, list[str]]] = []
    counts: Counter[str] = Counter()
    by_shape: dict[str, Counter[str]] = {}
    decision_ms: list[float] = []
    for i, claim in enumerate(claims):
        t = float(claim["metadata"]["annotations"][ARRIVAL])
        while ends and ends[0][0] <= t:
            for k in heapq.heappop(ends)[2]:
                state.release(k)
        shape = claim["metadata"]["name"].split("-", 2)[-1]
        wants = _wants_nics(claim)
        feasible = False
        if wants:
            oracle = allocate(claim, inv, allocated_state=state, deadline_ms=ORACLE_MS)
            feasible = bool(oracle)
        start = time.perf_counter()
        held, aligned = _place(placement, claim, inv, state)
        decision_ms.append((time.perf_counter() - start) * 1000.0)
        for k, result in held:
            state.add(k, result)
        if held:
            d = float(claim["metadata"]["annotations"][DURATION])
            heapq.heappush(ends, (t + d, i, [k for k, _ in held]))
        counts["placed"] += bool(held)
        if wants:
            row = by_shape.setdefault(shape, Counter())
            for name, hit in (("claims", True), ("feasible", feasible), ("aligned", aligned)):
                row[name] += hit
                counts[name] += hit
            row["aligned_when_feasible"] += aligned and feasible
            counts["aligned_when_feasible"] += aligned and feasible
    return {
        "claims": len(claims),
        "placed": counts["placed"],
        "nic_claims": counts["claims"],
        "nic_claims_feasible": counts["feasible"],
        "nic_claims_aligned": counts["aligned"],
        "aligned_when_feasible": _rate(counts["aligned_when_feasible"], counts["feasible"]),
        "aligned_of_all": _rate(counts["aligned"], counts["claims"]),
        "by_shape": {
            s: {**dict(c), "rate": _rate(c["aligned_when_feasible"], c["feasible"])}
            for s, c in sorted(by_shape.items())
        },
        "decision_ms_p50": round(percentile(decision_ms, 0.5), 3),
        "decision_ms_p99": round(percentile(decision_ms, 0.99), 3),
    }


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench nics", description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--load", type=float, default=0.85, help="offered load (GPU share)")
    parser.add_argument("--seed", type=int, default=1)
    args = parse_sized(parser, argv, {"nodes": 16, "claims": 300})
    started = time.perf_counter()
    objs = generate_cluster(args.nodes, nics=True, seed=args.seed)
    parts = split_objects(objs)
    inv = Inventory.from_objects(parts["ResourceSlice"], parts["DeviceClass"], parts["Node"])
    gpus = args.nodes * 8
    rate = args.load * gpus / (MEAN_DURATION_S * mean_units(NIC_MIX))
    claims = generate_workload(
        args.claims,
        rate_per_second=rate,
        mean_duration_seconds=MEAN_DURATION_S,
        mix=NIC_MIX,
        seed=args.seed,
    )
    runs: dict[str, Any] = {}
    for placement in PLACEMENTS:
        t0 = time.perf_counter()
        runs[placement] = _run(placement, inv, claims)
        row = runs[placement]
        _say(
            f"{placement}: {row['nic_claims_aligned']}/{row['nic_claims_feasible']} NIC claims"
            f" aligned when feasible ({time.perf_counter() - t0:.1f}s)"
        )
    ours = runs["modelplane"]["aligned_when_feasible"]
    base = runs["first-fit-then-nics"]["aligned_when_feasible"]
    figures = {
        "benchmark": "nics",
        "quick": args.quick,
        "nodes": args.nodes,
        "gpus": gpus,
        "offered_load": args.load,
        "runs": runs,
        "first_fit_would_have": {
            "then_nics": base,
            "joint": runs["first-fit-joint"]["aligned_when_feasible"],
        },
        "ratios": {
            "aligned_when_feasible_modelplane_vs_first_fit_then_nics": _ratio(ours, base),
            "aligned_of_all_modelplane_vs_first_fit_then_nics": _ratio(
                runs["modelplane"]["aligned_of_all"], runs["first-fit-then-nics"]["aligned_of_all"]
            ),
        },
        "goals": {
            "aligned_when_feasible": {
                "target": "== 1.0 for modelplane",
                "figure": ours,
                "met": ours == 1.0,
            }
        },
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print_summary(figures)
    return 0


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


if __name__ == "__main__":
    raise SystemExit(main())
