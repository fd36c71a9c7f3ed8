"""The Kubernetes DRA CEL environment: attributes by domain, quantities, versions, errors."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from modelplane.scheduling import (
    CelCompileError,
    CelRuntimeError,
    Inventory,
    compile_selector,
    parse_quantity,
    parse_semver,
)

from ._dra import gpu, node_slice


def _device(**extra: Any) -> object:
    inv = Inventory.from_objects([node_slice("n1", [gpu("gpu-0", **extra)])])
    return inv.devices[0].cel


def _matches(expression: str, **extra: Any) -> bool:
    return compile_selector(expression).matches(_device(**extra))  # type: ignore[arg-type]


def test_unqualified_attributes_belong_to_the_driver_domain() -> None:
    assert _matches("device.attributes['gpu.nvidia.com'].productName == 'NVIDIA H100 80GB HBM3'")
    assert _matches("device.attributes['resource.kubernetes.io'].pcieRoot == 'pci0'")
    assert _matches("device.driver == 'gpu.nvidia.com'")


def test_capacity_compares_as_quantities_across_units() -> None:
    assert _matches("device.capacity['gpu.nvidia.com'].memory.compareTo(quantity('40Gi')) >= 0")
    assert _matches("device.capacity['gpu.nvidia.com'].memory.isGreaterThan(quantity('79Gi'))")
    assert not _matches("device.capacity['gpu.nvidia.com'].memory.isLessThan(quantity('81920Mi'))")
    assert _matches("device.capacity['gpu.nvidia.com'].memory == quantity('81920Mi')")
    assert _matches(
        "device.capacity['gpu.nvidia.com'].memory.sub(quantity('40Gi')).isGreaterThan(quantity('39Gi'))"
    )


def test_version_attributes_compare_as_semver() -> None:
    assert _matches(
        "device.attributes['gpu.nvidia.com'].driverVersion.isGreaterThan(semver('550.0.0'))"
    )
    assert _matches("device.attributes['gpu.nvidia.com'].driverVersion.major() == 570")
    assert not _matches(
        "device.attributes['gpu.nvidia.com'].driverVersion.compareTo(semver('570.200.0')) >= 0"
    )
    assert parse_semver("1.2.3-rc.1").compare(parse_semver("1.2.3")) < 0
    assert parse_semver("v1.2", normalize=True).compare(parse_semver("1.2.0")) == 0


def test_unknown_domain_is_an_empty_map_like_kubernetes() -> None:
    assert not _matches("'foo' in device.attributes['other.example.com']")
    with pytest.raises(CelRuntimeError, match="no such key: foo"):
        _matches("device.attributes['other.example.com'].foo == 1")


def test_syntax_errors_are_reported_at_compile_time() -> None:
    with pytest.raises(CelCompileError, match="Syntax error"):
        compile_selector("device.driver == ")


def test_non_boolean_result_is_a_runtime_error() -> None:
    with pytest.raises(CelRuntimeError, match="must evaluate to bool"):
        _matches("device.driver")


def test_expressions_are_compiled_once() -> None:
    assert compile_selector("device.driver == 'x'") is compile_selector("device.driver == 'x'")


def test_identical_projections_share_one_evaluation() -> None:
    # Given 64 GPUs that differ only in attributes the expression never names,
    inv = Inventory.from_objects(
        [
            node_slice(
                f"n{i}", [gpu(f"gpu-{j}", uuid={"string": f"GPU-{i}-{j}"}) for j in range(8)]
            )
            for i in range(8)
        ]
    )
    prog = compile_selector(
        "device.attributes['gpu.nvidia.com'].productName.startsWith('NVIDIA H100') && true"
    )
    # when all of them are matched, then one CEL evaluation serves them all.
    assert all(prog.matches(d.cel) for d in inv.devices)
    assert len(prog._cache) == 1


def test_whole_map_expressions_see_every_attribute() -> None:
    assert _matches(
        "device.attributes['gpu.nvidia.com'].exists(k, k == 'uuid')", uuid={"string": "GPU-1"}
    )
    assert not _matches("device.attributes['gpu.nvidia.com'].exists(k, k == 'uuid')")


def test_quantities_parse_exactly() -> None:
    assert parse_quantity("40Gi") == 40 * 2**30
    assert parse_quantity("500m") == Fraction(1, 2)
    assert parse_quantity("1.5k") == 1500
    assert parse_quantity("1e3") == 1000
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity("forty")


def test_a_selector_over_one_of_many_attributes_sees_the_device_as_published() -> None:
    # Given a device with 80 attributes in two domains (only the ones named are handed to CEL),
    extra: dict[str, Any] = {f"stress.example.com/a{i:02d}": {"int": i} for i in range(40)}
    extra |= {f"s{i:02d}": {"string": f"v{i}"} for i in range(36)}
    # then a named attribute, the driver's domain and an unknown domain read as in Kubernetes.
    assert _matches("device.attributes['stress.example.com'].a07 == 7", **extra)
    assert _matches("device.attributes['gpu.nvidia.com'].s35 in ['v34', 'v35']", **extra)
    assert not _matches("device.attributes['stress.example.com'].a07 in [1, 2]", **extra)
    assert _matches("!has(device.attributes['nowhere.example.com'].a07)", **extra)
    assert _matches("!has(device.attributes['stress.example.com'].missing)", **extra)
    assert _matches("device.attributes['stress.example.com'].size() == 40", **extra)


def test_devices_that_differ_only_by_bool_or_int_are_never_confused() -> None:
    # Given two devices whose attribute is true and 1, and one selector,
    expression = "device.attributes['gpu.nvidia.com'].flag == true"
    inv = Inventory.from_objects(
        [node_slice("n1", [gpu("as-bool", flag={"bool": True}), gpu("as-int", flag={"int": 1})])]
    )
    # when the selector is matched against the inventory (one evaluation per signature),
    matched = inv.matching((expression,))
    # then only the boolean one matches, though True == 1 in Python.
    assert [d.name for d in matched["n1"]] == ["as-bool"]
    assert inv.devices[0].sig != inv.devices[1].sig
