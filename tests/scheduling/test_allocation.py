"""``allocate`` with resource.k8s.io/v1 semantics, explained failures and bounded decisions."""

from __future__ import annotations

from functools import partial
from typing import Any

from modelplane.scheduling import (
    AllocatedState,
    AllocationResult,
    Inventory,
    Unschedulable,
)
from modelplane.scheduling import allocate as _allocate

from ._dra import PCIE, claim, device_class, eight_gpu_node, exactly, gpu, node_slice

#: placement is what these tests check, not speed: a busy machine must not run out the 50 ms
#: default bound (the test of the bound passes its own ``deadline_ms``)
allocate = partial(_allocate, deadline_ms=10_000)


def _ok(result: AllocationResult | Unschedulable) -> AllocationResult:
    assert isinstance(result, AllocationResult), getattr(result, "reason", result)
    return result


def _devices(result: AllocationResult) -> list[str]:
    return [r["device"] for r in result.results]


def test_result_has_the_kubernetes_status_shape() -> None:
    slices = [node_slice("node-a", [gpu("gpu-0")])]
    result = _ok(allocate(claim("c", [exactly()]), slices, [device_class()]))
    assert result.to_status() == {
        "allocation": {
            "devices": {
                "results": [
                    {
                        "request": "gpu",
                        "driver": "gpu.nvidia.com",
                        "pool": "node-a",
                        "device": "gpu-0",
                    }
                ]
            },
            "nodeSelector": {
                "nodeSelectorTerms": [
                    {
                        "matchFields": [
                            {"key": "metadata.name", "operator": "In", "values": ["node-a"]}
                        ]
                    }
                ]
            },
        }
    }


def test_match_attribute_places_four_gpus_on_one_pcie_root() -> None:
    # Given a node whose first PCIe root has one GPU taken,
    inv = Inventory.from_objects([eight_gpu_node("node-a")], [device_class()])
    state = AllocatedState(inv)
    state.add(
        "team-a/first",
        _ok(allocate(claim("first", [exactly()]), inv, allocated_state=state, policy="first-fit")),
    )
    # when four GPUs on one PCIe root are asked for,
    c = claim("four", [exactly(count=4)], [{"requests": ["gpu"], "matchAttribute": PCIE}])
    result = _ok(allocate(c, inv, allocated_state=state))
    # then all four sit behind the other root.
    roots = {inv.device("gpu.nvidia.com", "node-a", d).attributes[PCIE] for d in _devices(result)}  # type: ignore[union-attr]
    assert roots == {"node-a-pci1"}


def test_distinct_attribute_spreads_devices() -> None:
    slices = [eight_gpu_node("node-a")]
    c = claim("two", [exactly(count=2)], [{"distinctAttribute": PCIE}])
    inv = Inventory.from_objects(slices, [device_class()])
    result = _ok(allocate(c, inv))
    roots = {inv.device("gpu.nvidia.com", "node-a", d).attributes[PCIE] for d in _devices(result)}  # type: ignore[union-attr]
    assert len(roots) == 2


def _mig_slice() -> dict[str, Any]:
    counters = {
        "memorySlice0": {"value": "1"},
        "memorySlice1": {"value": "1"},
        "memory": {"value": "80Gi"},
    }

    def part(name: str, slices: list[int], mem: str) -> dict[str, Any]:
        used = {f"memorySlice{i}": {"value": "1"} for i in slices} | {"memory": {"value": mem}}
        return {
            "name": name,
            "attributes": {"type": {"string": "mig"}, "profile": {"string": name}},
            "consumesCounters": [{"counterSet": "gpu-0-counter-set", "counters": used}],
        }

    return node_slice(
        "node-a",
        [part("big", [0, 1], "80Gi"), part("left", [0], "40Gi"), part("right", [1], "40Gi")],
        counters=[{"name": "gpu-0-counter-set", "counters": counters}],
    )


def test_mig_partitions_sharing_counters_are_never_both_allocated() -> None:
    inv = Inventory.from_objects([_mig_slice()], [device_class()])
    state = AllocatedState(inv)
    # Given the small "left" partition is allocated,
    left = _ok(
        allocate(
            claim(
                "l", [exactly(selectors=["device.attributes['gpu.nvidia.com'].profile == 'left'"])]
            ),
            inv,
            allocated_state=state,
        )
    )
    state.add("team-a/l", left)
    # then the whole-GPU partition that shares its counters cannot be allocated,
    big = allocate(
        claim("b", [exactly(selectors=["device.attributes['gpu.nvidia.com'].profile == 'big'"])]),
        inv,
        allocated_state=state,
    )
    assert isinstance(big, Unschedulable)
    assert "shared counters" in big.reason
    # but the disjoint "right" one can, and once both are released the big one fits again.
    right = _ok(
        allocate(
            claim(
                "r", [exactly(selectors=["device.attributes['gpu.nvidia.com'].profile == 'right'"])]
            ),
            inv,
            allocated_state=state,
        )
    )
    assert _devices(right) == ["right"]
    state.release("team-a/l")
    assert _devices(
        _ok(
            allocate(
                claim(
                    "b",
                    [exactly(selectors=["device.attributes['gpu.nvidia.com'].profile == 'big'"])],
                ),
                inv,
                allocated_state=state,
            )
        )
    ) == ["big"]


def test_two_partitions_in_one_claim_respect_counters() -> None:
    inv = Inventory.from_objects([_mig_slice()], [device_class()])
    result = _ok(allocate(claim("two", [exactly(count=2)]), inv))
    assert sorted(_devices(result)) == ["left", "right"]


def test_unschedulable_reason_aggregates_over_nodes() -> None:
    # Given 3 nodes with only L40S GPUs and 2 nodes whose PCIe roots each hold 2 free H100s,
    slices = [
        node_slice(f"l40s-{i}", [gpu(f"gpu-{j}", product="NVIDIA L40S") for j in range(8)])
        for i in range(3)
    ]
    slices += [
        node_slice(f"h100-{i}", [gpu(f"gpu-{j}", root=f"pci{j % 4}") for j in range(8)])
        for i in range(2)
    ]
    c = claim(
        "big",
        [
            exactly(
                count=4,
                selectors=[
                    "device.attributes['gpu.nvidia.com'].productName.startsWith('NVIDIA H100')"
                ],
            )
        ],
        [{"requests": ["gpu"], "matchAttribute": PCIE}],
    )
    # when four H100s on one PCIe root are asked for,
    result = allocate(c, slices, [device_class()])
    # then the message says, per reason, how many nodes failed and why.
    assert isinstance(result, Unschedulable)
    assert not result.timed_out
    assert result.reason == (
        "0/5 nodes are available: 3 had no device matching the selectors of request gpu, "
        f"2 had no 4 devices with the same {PCIE}."
    )


def test_exact_count_needs_enough_free_devices() -> None:
    inv = Inventory.from_objects([node_slice("n", [gpu("gpu-0"), gpu("gpu-1")])], [device_class()])
    result = allocate(claim("c", [exactly(count=3)]), inv)
    assert isinstance(result, Unschedulable)
    assert (
        result.reason
        == "0/1 nodes are available: 1 had fewer than 3 free devices matching request gpu."
    )


def test_allocation_mode_all_takes_every_matching_device_or_none() -> None:
    inv = Inventory.from_objects([eight_gpu_node("n")], [device_class()])
    state = AllocatedState(inv)
    everything = claim(
        "all",
        [
            {
                "name": "gpu",
                "exactly": {"deviceClassName": "gpu.nvidia.com", "allocationMode": "All"},
            }
        ],
    )
    assert len(_ok(allocate(everything, inv, allocated_state=state)).results) == 8
    state.add("team-a/one", _ok(allocate(claim("one", [exactly()]), inv, allocated_state=state)))
    assert isinstance(allocate(everything, inv, allocated_state=state), Unschedulable)


def test_first_available_falls_back_and_names_the_subrequest() -> None:
    slices = [
        node_slice(
            "n",
            [
                gpu("gpu-0", product="NVIDIA A100-SXM4-80GB"),
                gpu("gpu-1", product="NVIDIA A100-SXM4-80GB"),
            ],
        )
    ]
    c = claim(
        "fa",
        [
            {
                "name": "gpu",
                "firstAvailable": [
                    {
                        "name": "h100",
                        "deviceClassName": "gpu.nvidia.com",
                        "selectors": [
                            {
                                "cel": {
                                    "expression": "device.attributes['gpu.nvidia.com'].productName.contains('H100')"
                                }
                            }
                        ],
                    },
                    {"name": "a100x2", "deviceClassName": "gpu.nvidia.com", "count": 2},
                ],
            }
        ],
    )
    result = _ok(allocate(c, slices, [device_class()]))
    assert {r["request"] for r in result.results} == {"gpu/a100x2"}
    assert len(result.results) == 2


def test_first_available_prefers_nodes_that_satisfy_the_first_choice() -> None:
    slices = [
        node_slice(
            "a100-node",
            [
                gpu("gpu-0", product="NVIDIA A100-SXM4-80GB"),
                gpu("gpu-1", product="NVIDIA A100-SXM4-80GB"),
            ],
        ),
        node_slice("h100-node", [gpu("gpu-0")]),
    ]
    c = claim(
        "fa",
        [
            {
                "name": "gpu",
                "firstAvailable": [
                    {
                        "name": "h100",
                        "deviceClassName": "gpu.nvidia.com",
                        "selectors": [
                            {
                                "cel": {
                                    "expression": "device.attributes['gpu.nvidia.com'].productName.contains('H100')"
                                }
                            }
                        ],
                    },
                    {"name": "any", "deviceClassName": "gpu.nvidia.com"},
                ],
            }
        ],
    )
    result = _ok(allocate(c, slices, [device_class()], policy="first-fit"))
    assert result.node == "h100-node"
    assert result.results[0]["request"] == "gpu/h100"


def _shared_nic() -> dict[str, Any]:
    return node_slice(
        "n",
        [
            {
                "name": "nic-0",
                "allowMultipleAllocations": True,
                "attributes": {"type": {"string": "nic"}},
                "capacity": {
                    "bandwidth": {
                        "value": "10G",
                        "requestPolicy": {
                            "default": "1G",
                            "validRange": {"min": "1G", "step": "1G"},
                        },
                    }
                },
            }
        ],
        driver="nic.example.com",
    )


def test_consumable_capacity_shares_a_device_until_it_runs_out() -> None:
    inv = Inventory.from_objects(
        [_shared_nic()], [device_class("nic", "device.driver == 'nic.example.com'")]
    )
    state = AllocatedState(inv)
    req = exactly("net", cls="nic", capacity={"requests": {"bandwidth": "3500M"}})
    for i in range(2):
        result = _ok(allocate(claim(f"c{i}", [req]), inv, allocated_state=state))
        # 3.5G rounds up to the policy's 1G steps.
        # Keyed by the capacity name as the device publishes it, as Kubernetes writes it.
        assert result.results[0]["consumedCapacity"] == {"bandwidth": "4G"}
        state.add(f"team-a/c{i}", result)
    third = allocate(claim("c2", [req]), inv, allocated_state=state)
    assert isinstance(third, Unschedulable)
    # the message names the capacity that ran out and what was asked
    assert third.reason == (
        "0/1 nodes are available: 1 had no device with 3500M of nic.example.com/bandwidth free"
        " for request net."
    )


def test_untolerated_taints_block_and_tolerations_admit() -> None:
    tainted = gpu("gpu-0")
    tainted["taints"] = [{"key": "gpu.nvidia.com/xid", "value": "79", "effect": "NoSchedule"}]
    slices = [node_slice("n", [tainted])]
    blocked = allocate(claim("c", [exactly()]), slices, [device_class()])
    assert isinstance(blocked, Unschedulable)
    assert "untolerated taints" in blocked.reason
    tolerant = exactly(tolerations=[{"key": "gpu.nvidia.com/xid", "operator": "Exists"}])
    assert _devices(_ok(allocate(claim("c", [tolerant]), slices, [device_class()]))) == ["gpu-0"]


def test_admin_access_sees_devices_in_use() -> None:
    inv = Inventory.from_objects([node_slice("n", [gpu("gpu-0")])], [device_class()])
    state = AllocatedState(inv)
    state.add("team-a/user", _ok(allocate(claim("user", [exactly()]), inv, allocated_state=state)))
    assert isinstance(
        allocate(claim("other", [exactly()]), inv, allocated_state=state), Unschedulable
    )
    monitor = _ok(allocate(claim("mon", [exactly(adminAccess=True)]), inv, allocated_state=state))
    assert monitor.results[0]["adminAccess"] is True


def test_existing_allocations_in_claim_status_are_respected() -> None:
    slices = [node_slice("n", [gpu("gpu-0"), gpu("gpu-1")])]
    held = claim("held", [exactly()])
    held["status"] = {
        "allocation": {
            "devices": {
                "results": [
                    {"request": "gpu", "driver": "gpu.nvidia.com", "pool": "n", "device": "gpu-0"}
                ]
            }
        }
    }
    result = _ok(allocate(claim("new", [exactly()]), slices, [device_class()], [held]))
    assert _devices(result) == ["gpu-1"]


def test_selector_errors_name_the_claim_and_the_expression() -> None:
    slices = [node_slice("n", [gpu("gpu-0")])]
    broken = allocate(
        claim("c", [exactly(selectors=["device.attributes['gpu.nvidia.com'].nosuch == 1"])]),
        slices,
        [device_class()],
    )
    assert isinstance(broken, Unschedulable) and broken.invalid
    assert "claim team-a/c, request gpu: selector #0" in broken.reason
    assert "nosuch" in broken.reason and "CEL runtime error" in broken.reason
    bad_class = allocate(
        claim("c", [exactly()]), slices, [device_class(expression="device.driver ==")]
    )
    assert isinstance(bad_class, Unschedulable) and bad_class.invalid
    assert (
        "class gpu.nvidia.com: selector #0: CEL compile error in 'device.driver =='"
        in bad_class.reason
    )


def test_unknown_device_class_is_explained() -> None:
    result = allocate(
        claim("c", [exactly(cls="tpu.google.com")]), [eight_gpu_node("n")], [device_class()]
    )
    assert isinstance(result, Unschedulable) and result.invalid
    assert "device class 'tpu.google.com' does not exist" in result.reason


def test_giving_up_is_reported_apart_from_impossible() -> None:
    inv = Inventory.from_objects([eight_gpu_node(f"n{i}") for i in range(50)], [device_class()])
    result = allocate(
        claim("c", [exactly(count=4)], [{"matchAttribute": PCIE}]), inv, deadline_ms=0
    )
    assert isinstance(result, Unschedulable)
    assert result.timed_out
    assert "gave up after" in result.reason


def test_power_cap_is_never_exceeded() -> None:
    node = {
        "kind": "Node",
        "metadata": {"name": "n", "annotations": {"modelplane.dev/power-cap-watts": "1000"}},
    }
    watts: dict[str, Any] = {"modelplane.dev/powerWatts": {"int": 700}}
    devices = [gpu(f"gpu-{i}", **watts) for i in range(2)]
    inv = Inventory.from_objects([node_slice("n", devices)], [device_class()], [node])
    state = AllocatedState(inv)
    state.add("team-a/a", _ok(allocate(claim("a", [exactly()]), inv, allocated_state=state)))
    result = allocate(claim("b", [exactly()]), inv, allocated_state=state)
    assert isinstance(result, Unschedulable)
    assert "power cap" in result.reason


def test_nodes_by_free_units_follow_every_add_and_release() -> None:
    # Given three 8-GPU nodes and an index of nodes by free units,
    inv = Inventory.from_objects([eight_gpu_node(f"n{i}") for i in range(3)], [device_class()])
    state = AllocatedState(inv)
    assert list(state.iter_nodes_by_free()) == ["n0", "n1", "n2"]
    # when six GPUs are taken on n1 and two on n2,
    for name, count, node in [("six", 6, "n1"), ("two", 2, "n2")]:
        result = _ok(allocate(claim(name, [exactly(count=count)]), inv, node=node))
        state.add(f"team-a/{name}", result)
    # then the fullest nodes come first, and those without room for 4 are left out;
    assert list(state.iter_nodes_by_free()) == ["n1", "n2", "n0"]
    assert list(state.iter_nodes_by_free(4)) == ["n2", "n0"]
    # and a claim of 4 GPUs under most-allocated order goes to the fullest node that fits.
    four = allocate(claim("four", [exactly(count=4)]), inv, allocated_state=state)
    assert _ok(four).node == "n2"
    # After a release, the index is as if the claim had never been placed.
    state.release("team-a/six")
    assert list(state.iter_nodes_by_free()) == ["n2", "n0", "n1"]
    assert state.nodes_by_free()[1] == sorted((state.free_units(n), n) for n in inv.nodes)
