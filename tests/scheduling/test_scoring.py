"""Scorers and baselines: which feasible node and devices a claim gets."""

from __future__ import annotations

from functools import partial

from modelplane.scheduling import AllocatedState, AllocationResult, Inventory
from modelplane.scheduling import allocate as _allocate
from modelplane.sim import generate_cluster, split_objects

from ._dra import PCIE, claim, device_class, eight_gpu_node, exactly, gpu, node_slice

#: placement is checked here, not speed (a busy machine must not run out the 50 ms bound)
allocate = partial(_allocate, deadline_ms=10_000)


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
