"""The cluster generator and the discrete-event simulator on top of the scorers."""

from __future__ import annotations

from modelplane.scheduling import AllocatedState, AllocationResult, Inventory, allocate
from modelplane.sim import generate_cluster, generate_workload, simulate, split_objects
from scheduling._dra import PCIE


def _inventory(objs: list[dict]) -> Inventory:  # type: ignore[type-arg]
    g = split_objects(objs)
    return Inventory.from_objects(g["ResourceSlice"], g["DeviceClass"], g.get("Node", []))


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
