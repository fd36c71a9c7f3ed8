"""GPU time-slicing: a DeviceClass annotated ``modelplane.dev/time-slicing-replicas: "N"`` lets up
to N claims share each of its devices; claims of other classes still get a device whole."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.api import TIME_SLICES_CAPACITY, TIME_SLICING_ANNOTATION, validate
from modelplane.api.errors import Invalid
from modelplane.scheduling import AllocatedState, Inventory, allocate
from modelplane.sim import generate_cluster

SHARED = "gpu-shared.nvidia.com"


def _shared_class(replicas: str = "3") -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": SHARED, "annotations": {TIME_SLICING_ANNOTATION: replicas}},
        "spec": {
            "selectors": [
                {
                    "cel": {
                        "expression": "device.driver == 'gpu.nvidia.com'"
                        " && device.attributes['gpu.nvidia.com'].type == 'gpu'"
                    }
                }
            ],
            # what NVIDIA's DRA driver reads on a cluster: time-slice the GPU it hands out
            "config": [
                {
                    "opaque": {
                        "driver": "gpu.nvidia.com",
                        "parameters": {
                            "apiVersion": "resource.nvidia.com/v1beta1",
                            "kind": "GpuConfig",
                            "sharing": {
                                "strategy": "TimeSlicing",
                                "timeSlicingConfig": {"interval": "Default"},
                            },
                        },
                    }
                }
            ],
        },
    }


def _inventory(gpus: int = 1) -> Inventory:
    objs = generate_cluster(1, gpus_per_node=gpus, mix={"h100": 1.0}, mig=False)
    slices = [o for o in objs if o["kind"] == "ResourceSlice"]
    classes = [o for o in objs if o["kind"] == "DeviceClass"]
    return Inventory.from_objects(slices, [*classes, validate(_shared_class())])


def _claim(name: str, device_class: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": device_class}}]}
        },
    }


def _place(state: AllocatedState, name: str, device_class: str) -> Any:
    result = allocate(_claim(name, device_class), state.inventory, allocated_state=state)
    if result:
        state.add(f"default/{name}", result)  # type: ignore[arg-type]
    return result


def test_a_time_sliced_class_shares_one_gpu_between_up_to_its_replicas() -> None:
    # given one GPU and a class that time-slices it three ways
    state = AllocatedState(_inventory(gpus=1))
    # when four claims of the class arrive
    results = [_place(state, f"c{i}", SHARED) for i in range(4)]
    # then the first three share gpu-0, each holding one slice under its own share ID
    placed = results[:3]
    assert all(placed), [getattr(r, "reason", "") for r in placed]
    assert {r.results[0]["device"] for r in placed} == {"gpu-0"}
    assert {r.results[0]["consumedCapacity"][TIME_SLICES_CAPACITY] for r in placed} == {"1"}
    assert len({r.results[0]["shareID"] for r in placed}) == 3
    # and the fourth does not fit: the oversubscription stated on the class is the limit
    assert not results[3]


def test_a_claim_of_another_class_gets_a_device_whole_and_only_when_no_one_shares_it() -> None:
    state = AllocatedState(_inventory(gpus=2))
    # given one share on one of the two GPUs
    shared = _place(state, "shared", SHARED)
    assert shared
    taken = shared.results[0]["device"]
    # when a claim of the plain class asks for a GPU
    whole = _place(state, "whole", "gpu.nvidia.com")
    # then it gets the other GPU, all of it
    assert whole, getattr(whole, "reason", "")
    other = whole.results[0]["device"]
    assert other != taken
    # and no share fits on that GPU any more, while the first still takes two more shares
    more = [_place(state, f"more{i}", SHARED) for i in range(3)]
    assert [bool(r) for r in more] == [True, True, False]
    assert {r.results[0]["device"] for r in more[:2]} == {taken}


def test_shares_recorded_in_claims_are_counted_again_from_their_status() -> None:
    inv = _inventory(gpus=1)
    state = AllocatedState(inv)
    held = []
    for i in range(3):
        result = _place(state, f"c{i}", SHARED)
        held.append({**_claim(f"c{i}", SHARED), "status": result.to_status()})
    # when the scheduler restarts and rebuilds its state from the claims' status
    rebuilt = AllocatedState.from_claims(inv, held)
    # then the GPU is full: a fourth share does not fit, nor does a whole-GPU claim
    assert not allocate(_claim("late", SHARED), inv, allocated_state=rebuilt)
    assert not allocate(_claim("whole", "gpu.nvidia.com"), inv, allocated_state=rebuilt)


@pytest.mark.parametrize("bad", ["1", "lots", "65"])
def test_a_bad_oversubscription_is_refused_naming_the_annotation(bad: str) -> None:
    with pytest.raises(Invalid) as err:
        validate(_shared_class(bad))
    causes = err.value.causes
    assert any(TIME_SLICING_ANNOTATION in c.field for c in causes), causes
    assert any("an integer from 2 to 64" in c.message for c in causes)
