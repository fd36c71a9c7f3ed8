"""Builders of realistic ``resource.k8s.io/v1`` objects for the scheduling tests."""

from __future__ import annotations

from typing import Any

DRIVER = "gpu.nvidia.com"
PCIE = "resource.kubernetes.io/pcieRoot"


def device_class(name: str = "gpu.nvidia.com", expression: str | None = None) -> dict[str, Any]:
    expr = expression or f"device.driver == '{DRIVER}'"
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": name},
        "spec": {"selectors": [{"cel": {"expression": expr}}]},
    }


def gpu(
    name: str,
    root: str = "pci0",
    product: str = "NVIDIA H100 80GB HBM3",
    memory: str = "80Gi",
    **extra: Any,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "type": {"string": "gpu"},
        "productName": {"string": product},
        "driverVersion": {"version": "570.124.6"},
        PCIE: {"string": root},
    }
    for k, v in extra.items():
        attrs[k] = v
    return {"name": name, "attributes": attrs, "capacity": {"memory": {"value": memory}}}


def node_slice(
    node: str,
    devices: list[dict[str, Any]],
    counters: list[dict[str, Any]] | None = None,
    driver: str = DRIVER,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "driver": driver,
        "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
        "nodeName": node,
        "devices": devices,
    }
    if counters:
        spec["sharedCounters"] = counters
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{node}-{driver}"},
        "spec": spec,
    }


def claim(
    name: str, requests: list[dict[str, Any]], constraints: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    devices: dict[str, Any] = {"requests": requests}
    if constraints:
        devices["constraints"] = constraints
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"devices": devices},
    }


def exactly(
    name: str = "gpu",
    count: int = 1,
    cls: str = "gpu.nvidia.com",
    selectors: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"deviceClassName": cls, "count": count, **extra}
    if selectors:
        body["selectors"] = [{"cel": {"expression": s}} for s in selectors]
    return {"name": name, "exactly": body}


def eight_gpu_node(node: str) -> dict[str, Any]:
    """HGX-like: two PCIe roots of four GPUs."""
    return node_slice(node, [gpu(f"gpu-{i}", root=f"{node}-pci{i // 4}") for i in range(8)])
