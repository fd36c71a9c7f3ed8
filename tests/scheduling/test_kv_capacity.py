"""KV-cache blocks as DRA consumable capacity: claims share a GPU's pool, never beyond it.

Devices published by ``generate_cluster(kv_cache=True)`` (``allowMultipleAllocations`` with
``kvCacheBlocks`` and ``memory`` capacities and request policies) and claims built by
``kv_claim``; the allocator's own state is the ledger.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from modelplane.api import parse_quantity, validate
from modelplane.scheduling import AllocatedState, AllocationResult, Inventory, Unschedulable
from modelplane.scheduling import allocate as _allocate
from modelplane.sim import generate_cluster, kv_claim, split_objects

#: placement is checked here, not speed (a busy machine must not run out the 50 ms bound)
allocate = partial(_allocate, deadline_ms=10_000)

KV = "gpu.nvidia.com/kvCacheBlocks"


def _cluster(nodes: int = 1, gpus: int = 1) -> Inventory:
    # H100 only: 48Gi of KV pool = 24576 blocks of 2 MiB, and 32Gi of memory for weights
    objs = generate_cluster(nodes, gpus_per_node=gpus, kv_cache=True, mix={"h100": 1.0})
    for o in objs:
        validate(o)  # the shared devices and their request policies are valid API objects
    parts = split_objects(objs)
    return Inventory.from_objects(parts["ResourceSlice"], parts["DeviceClass"], parts["Node"])


def _consumed(result: AllocationResult | Unschedulable) -> dict[str, Any]:
    """What the result's one device gives, as numbers (blocks; memory in GiB)."""
    assert isinstance(result, AllocationResult), getattr(result, "reason", result)
    got = result.results[0]["consumedCapacity"]
    return {
        "kvCacheBlocks": int(parse_quantity(got["kvCacheBlocks"])),
        "memory": int(parse_quantity(got["memory"]) / 2**30),
    }


def test_claims_share_one_gpu_until_its_kv_pool_is_used_up() -> None:
    # given one GPU with 24576 KV-cache blocks
    inv = _cluster()
    state = AllocatedState(inv)
    # when three claims of 8192 blocks (and 8Gi each) are placed
    for i in range(3):
        result = allocate(kv_claim(f"c{i}", 8192), inv, allocated_state=state)
        # then each shares the GPU and consumes what it asked for
        assert _consumed(result) == {"kvCacheBlocks": 8192, "memory": 8}
        assert result.results[0]["device"] == "gpu-0"
        assert result.results[0]["shareID"]
        state.add(f"team-a/c{i}", result)
    # and a fourth finds no blocks left, and says which capacity ran out
    fourth = allocate(kv_claim("c3", 256), inv, allocated_state=state)
    assert isinstance(fourth, Unschedulable) and not fourth.invalid
    assert fourth.reason == (
        f"0/1 nodes are available: 1 had no device with 256 of {KV} free for request gpu."
    )
    # until one of the three is released
    state.release("team-a/c1")
    assert isinstance(allocate(kv_claim("c3", 256), inv, allocated_state=state), AllocationResult)


def test_a_request_is_rounded_up_to_the_pool_step() -> None:
    inv = _cluster()
    result = allocate(kv_claim("c", 1000, memory_gi=3), inv, allocated_state=AllocatedState(inv))
    assert _consumed(result) == {"kvCacheBlocks": 1024, "memory": 3}


def test_the_sum_of_claims_never_exceeds_a_pool() -> None:
    # given two GPUs and claims of varied sizes, more than both pools hold together
    inv = _cluster(gpus=2)
    state = AllocatedState(inv)
    placed: dict[str, int] = {}
    for i, blocks in enumerate([10000, 9000, 7000, 6000, 5000, 4096, 3000, 2048, 1024, 512]):
        result = allocate(kv_claim(f"c{i}", blocks, memory_gi=1), inv, allocated_state=state)
        if isinstance(result, AllocationResult):
            state.add(f"team-a/c{i}", result)
            dev = result.results[0]["device"]
            placed[dev] = placed.get(dev, 0) + _consumed(result)["kvCacheBlocks"]
    # then every pool holds at most its capacity, and both were used
    assert set(placed) == {"gpu-0", "gpu-1"}
    assert all(v <= 24576 for v in placed.values())
    assert sum(placed.values()) > 24576


def test_a_claim_without_capacity_requests_takes_the_whole_gpu() -> None:
    inv = _cluster()
    state = AllocatedState(inv)
    whole = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": "whole", "namespace": "team-a"},
        "spec": {
            "devices": {
                "requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}]
            }
        },
    }
    result = allocate(whole, inv, allocated_state=state)
    assert _consumed(result) == {"kvCacheBlocks": 24576, "memory": 32}
    state.add("team-a/whole", result)
    assert isinstance(allocate(kv_claim("c", 256), inv, allocated_state=state), Unschedulable)


@pytest.mark.parametrize(
    ("blocks", "memory_gi", "reason"),
    [
        (30000, 8, f"had no device with 30k of {KV} for request gpu"),
        (1024, 40, "had no device with 40Gi of gpu.nvidia.com/memory for request gpu"),
    ],
)
def test_a_reservation_above_capacity_is_unschedulable_and_says_so(
    blocks: int, memory_gi: int, reason: str
) -> None:
    # given two nodes, one with a claim already placed
    inv = _cluster(nodes=2)
    state = AllocatedState(inv)
    held = allocate(kv_claim("held", 4096), inv, allocated_state=state)
    assert isinstance(held, AllocationResult)
    state.add("team-a/held", held)
    before = dict(state.capacity_used)
    # when a claim asks for more than any device has in all
    result = allocate(kv_claim("big", blocks, memory_gi=memory_gi), inv, allocated_state=state)
    # then it is unschedulable (not invalid), every node says why, and nothing changed
    assert isinstance(result, Unschedulable) and not result.invalid and not result.timed_out
    assert result.reason == f"0/2 nodes are available: 2 {reason}."
    assert dict(state.capacity_used) == before
