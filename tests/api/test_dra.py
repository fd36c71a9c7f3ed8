"""DRA objects dumped from a real cluster validate unchanged and keep every field."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path

import pytest

from modelplane import api
from modelplane.api import errors

from . import _objects

FIXTURES = sorted(_objects.FIXTURES.glob("*.yaml"))


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_cluster_dump_validates_and_round_trips_unchanged(path: Path) -> None:
    (manifest,) = api.load_paths([path])
    original = copy.deepcopy(manifest.obj)
    out = api.validate(manifest.obj, manifest=manifest)
    assert out == original
    assert api.validate(out) == original


def test_h100_slice_exposes_eight_hopper_gpus_with_80gi_each() -> None:
    (manifest,) = api.load_paths([_objects.FIXTURES / "resourceslice-h100x8.yaml"])
    slice_ = api.ResourceSlice.model_validate(api.validate(manifest.obj))
    devices = slice_.spec.devices or []
    assert [d.name for d in devices] == [f"gpu-{i}" for i in range(8)]
    for i, device in enumerate(devices):
        attributes = device.attributes or {}
        assert attributes["architecture"].string == "Hopper"
        assert attributes["cudaComputeCapability"].version == "9.0.0"
        assert attributes["index"].int_ == i
        assert attributes["resource.kubernetes.io/pcieRoot"].string is not None
        assert api.parse_quantity((device.capacity or {})["memory"].value) == Decimal(80 * 2**30)
    assert manifest.obj["metadata"]["managedFields"][0]["manager"] == "gpu-kubelet-plugin"


def test_mig_partitions_draw_from_the_shared_counter_set() -> None:
    (manifest,) = api.load_paths([_objects.FIXTURES / "resourceslice-h100-mig.yaml"])
    slice_ = api.ResourceSlice.model_validate(api.validate(manifest.obj))
    (counter_set,) = slice_.spec.shared_counters or []
    memory = api.parse_quantity(counter_set.counters["memory"].value)
    sevenths = [d for d in slice_.spec.devices or [] if d.name.startswith("gpu-0-mig-1g10gb")]
    assert len(sevenths) == 7
    used = sum(
        api.parse_quantity(c.counters["memory"].value)
        for d in sevenths
        for c in d.consumes_counters or []
    )
    assert used <= memory  # seven 1g.10gb partitions fit in one H100
    assert all(
        c.counter_set == counter_set.name for d in sevenths for c in d.consumes_counters or []
    )


def test_claim_with_first_available_and_match_attribute_is_typed() -> None:
    (manifest,) = api.load_paths([_objects.FIXTURES / "resourceclaim-first-available.yaml"])
    claim = api.ResourceClaim.model_validate(api.validate(manifest.obj))
    gpu, nic = claim.spec.devices.requests or []
    assert [s.name for s in gpu.first_available or []] == ["h100", "mig-3g"]
    assert nic.exactly is not None and nic.exactly.device_class_name == "rdma.mellanox.com"
    (constraint,) = claim.spec.devices.constraints or []
    assert constraint.match_attribute == "resource.kubernetes.io/pcieRoot"
    assert claim.status is not None and claim.status.allocation is not None
    results = claim.status.allocation.devices.results if claim.status.allocation.devices else []
    assert [r.request for r in results or []] == ["gpu/h100", "nic"]


def test_fields_newer_than_our_schema_are_kept_at_every_level() -> None:
    obj = _objects.resource_slice()
    obj["futureTopLevel"] = {"a": 1}
    obj["spec"]["partitionTypeAttribute"] = "type"
    obj["spec"]["devices"][0]["allowMultipleAllocations"] = True
    obj["spec"]["devices"][0]["capacity"]["memory"]["requestPolicy"] = {"default": "1Gi"}
    obj["spec"]["devices"][0]["attributes"]["numa"] = {"ints": [0, 1]}
    assert api.validate(obj) == obj


def test_unknown_fields_in_our_kinds_claim_templates_are_refused() -> None:
    obj = _objects.job()
    obj["spec"]["claim"]["requests"][0]["exactly"]["deviceClass"] = "gpu"
    with pytest.raises(errors.Invalid) as caught:
        api.validate(obj)
    (cause,) = caught.value.causes
    assert cause.field == "spec.claim.requests[0].exactly.deviceClass"
    assert "did you mean 'deviceClassName'?" in cause.message


def test_integer_quantities_are_accepted_and_kept_as_integers() -> None:
    obj = _objects.resource_slice()
    obj["spec"]["devices"][0]["capacity"]["cores"] = {"value": 128}
    assert api.validate(obj)["spec"]["devices"][0]["capacity"]["cores"] == {"value": 128}
