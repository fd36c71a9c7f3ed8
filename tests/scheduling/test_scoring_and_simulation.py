"""Scorers, baselines, the cluster generator and the simulator."""

from __future__ import annotations

from modelplane.scheduling import AllocatedState, AllocationResult, Inventory, allocate
from modelplane.sim import generate_cluster, generate_workload, simulate, split_objects

from ._dra import PCIE, claim, device_class, eight_gpu_node, exactly, gpu, node_slice


def _inventory(objs: list[dict]) -> Inventory:  # type: ignore[type-arg]
    g = split_objects(objs)
    return Inventory.from_objects(g["ResourceSlice"], g["DeviceClass"], g.get("Node", []))


def test_topology_scorer_keeps_two_gpus_behind_one_pcie_root() -> None:
    inv = Inventory.from_objects([eight_gpu_node("n")], [device_class()])
    state = AllocatedState(inv)
    # Given one GPU of the first root taken (first-fit would then straddle roots),
    state.add("x/a", allocate(claim("a", [exactly()]), inv, allocated_state=state))  # type: ignore[arg-type]
    result = allocate(claim("b", [exactly(count=4)]), inv, allocated_state=state)
    assert isinstance(result, AllocationResult)
    roots = {r.device.attributes[PCIE] for r in result.devices}
    assert len(roots) == 1


def test_first_fit_spreads_over_nodes_and_binpack_fills_one() -> None:
    inv = Inventory.from_objects([eight_gpu_node("a"), eight_gpu_node("b")], [device_class()])
    for policy, expect_same in (("first-fit", False), ("binpack", True), ("modelplane", True)):
        state = AllocatedState(inv)
        nodes = []
        for i in range(2):
            r = allocate(claim(f"c{i}", [exactly()]), inv, allocated_state=state, policy=policy)
            assert isinstance(r, AllocationResult)
            state.add(f"x/c{i}", r)
            nodes.append(r.node)
        assert (nodes[0] == nodes[1]) is expect_same, policy


def test_cost_scorer_prefers_the_cheaper_device() -> None:
    price = "modelplane.dev/pricePerHour"
    slices = [
        node_slice("dear", [gpu("gpu-0", **{price: {"string": "2.49"}})]),
        node_slice("cheap", [gpu("gpu-0", **{price: {"string": "0.99"}})]),
    ]
    result = allocate(claim("c", [exactly()]), slices, [device_class()])
    assert isinstance(result, AllocationResult)
    assert result.node == "cheap"


def test_fragmentation_packs_mig_slices_onto_a_used_gpu() -> None:
    inv = _inventory(generate_cluster(1, mix={"h100": 1.0}))
    state = AllocatedState(inv)
    mig = exactly(
        "mig",
        cls="mig.nvidia.com",
        selectors=["device.attributes['gpu.nvidia.com'].profile == '1g.10gb'"],
    )
    parents = set()
    for i in range(3):
        r = allocate(claim(f"m{i}", [mig]), inv, allocated_state=state)
        assert isinstance(r, AllocationResult)
        state.add(f"x/m{i}", r)
        parents.add(r.devices[0].device.physical)
    # then all three 1g slices share one GPU and seven GPUs stay whole.
    assert len(parents) == 1


def test_generated_cluster_is_hgx_like_with_mig_counters() -> None:
    objs = generate_cluster(32, mix={"h100": 1.0})
    g = split_objects(objs)
    assert {c["metadata"]["name"] for c in g["DeviceClass"]} == {"gpu.nvidia.com", "mig.nvidia.com"}
    nodes = g["Node"]
    assert len(nodes) == 32
    assert {n["metadata"]["labels"]["topology.modelplane.dev/rack"] for n in nodes} == {
        "rack-000",
        "rack-001",
    }
    inv = _inventory(objs)
    gpus = [d for d in inv.by_node["node-0000"] if d.attributes["gpu.nvidia.com/type"] == "gpu"]
    assert len(gpus) == 8
    assert len({d.attributes[PCIE] for d in gpus}) == 2
    assert len({d.attributes["modelplane.dev/numaNode"] for d in gpus}) == 2
    # The whole GPU and its 7g partition consume the same counters: never both.
    assert {k[3] for k, _ in gpus[0].consumes} >= {"multiprocessors", "memory", "memorySlice0"}


def test_simulation_output_names_devices_exactly_as_in_the_slices() -> None:
    objs = generate_cluster(8)
    workload = generate_workload(60, rate_per_second=1.0, mean_duration_seconds=30, infeasible=1)
    out = simulate(objs, workload, "modelplane")
    names = {
        (s["spec"]["driver"], s["spec"]["pool"]["name"], d["name"])
        for s in split_objects(objs)["ResourceSlice"]
        for d in s["spec"]["devices"]
    }
    assert out["allocations"], out["unschedulable"]
    for a in out["allocations"]:
        assert set(a) == {"claim", "time", "node", "results"}
        for r in a["results"]:
            assert (r["driver"], r["pool"], r["device"]) in names
            assert r["pool"] == a["node"]
    infeasible = [u for u in out["unschedulable"] if "infeasible" in u["claim"]]
    assert len(infeasible) == 1
    assert infeasible[0]["reason"].startswith(
        "0/8 nodes are available: 8 had fewer than 16 free devices"
    )
    m = out["metrics"]
    assert m["allocated"] + m["unschedulable"] == 61
    assert m["decision_ms"]["p99"] >= m["decision_ms"]["p50"] > 0


def test_no_two_live_claims_share_an_exclusive_device_or_counter() -> None:
    objs = generate_cluster(4)
    inv = _inventory(objs)
    state = AllocatedState(inv)
    for c in generate_workload(200, seed=3):
        r = allocate(c, inv, allocated_state=state)
        if isinstance(r, AllocationResult):
            state.add(r.claim, r)
    assert all(used <= inv.counters[k] for k, used in state.counters_used.items())
    held = [
        dev.index for h in state.claims.values() for dev, exclusive, _ in h.devices if exclusive
    ]
    assert len(held) == len(set(held))
