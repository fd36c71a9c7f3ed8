"""Drivers publish ResourceSlices, DeviceClasses and Nodes into the real store (both backends)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from modelplane.api import validate
from modelplane.api.errors import Invalid
from modelplane.drivers import (
    CPU_DRIVER,
    PUBLISHER_LABEL,
    NvmlUnavailable,
    file_publication,
    load_inventory,
    local_publication,
    nvml_devices,
    publish,
)
from modelplane.scheduling import Inventory, allocate
from modelplane.sim import generate_cluster
from modelplane.store import Store


class FakeNvml:
    """Stands for NVIDIA's NVML (hardware outside the project): two H100s on one host."""

    def __init__(self, gpus: int = 2) -> None:
        self.gpus = gpus
        self.initialised = False

    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        return "570.124.06"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12080

    def nvmlDeviceGetCount(self) -> int:
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetMigMode(self, handle: int) -> tuple[int, int]:
        return (0, 0)

    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> tuple[int, int]:
        return (9, 0)

    def nvmlDeviceGetPciInfo(self, handle: int) -> Any:
        return SimpleNamespace(busId=f"00000000:{0x18 + 0x10 * handle:02X}:00.0".encode())

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(total=85520809984)

    def nvmlDeviceGetArchitecture(self, handle: int) -> int:
        return 9

    def nvmlDeviceGetBrand(self, handle: int) -> int:
        return 14

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-{handle:08d}-aaaa-bbbb-cccc-000000000000"

    def nvmlDeviceGetMinorNumber(self, handle: int) -> int:
        return handle

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"NVIDIA H100 80GB HBM3"


def _slices(store: Store) -> list[dict[str, Any]]:
    return list(store.list("ResourceSlice").items)


def test_nvml_driver_publishes_gpus_with_nvidia_attribute_names() -> None:
    # given NVML reporting two H100s
    nvml = FakeNvml()
    # when the driver reads them
    devices = nvml_devices(nvml)
    # then each is a device named as NVIDIA's driver names it, with its attribute names
    assert [d["name"] for d in devices] == ["gpu-0", "gpu-1"]
    attrs = devices[1]["attributes"]
    assert attrs["productName"] == {"string": "NVIDIA H100 80GB HBM3"}
    assert attrs["architecture"] == {"string": "Hopper"}
    assert attrs["brand"] == {"string": "Nvidia"}
    assert attrs["cudaComputeCapability"] == {"version": "9.0.0"}
    assert attrs["driverVersion"] == {"version": "570.124.6"}
    assert attrs["cudaDriverVersion"] == {"version": "12.8.0"}
    assert attrs["pcieBusID"] == {"string": "0000:28:00.0"}
    assert attrs["resource.kubernetes.io/pcieRoot"]["string"].startswith("pci0000:")
    assert attrs["index"] == {"int": 1} and attrs["minor"] == {"int": 1}
    assert attrs["uuid"] == {"string": "GPU-00000001-aaaa-bbbb-cccc-000000000000"}
    assert devices[1]["capacity"] == {"memory": {"value": "85520809984"}}
    assert nvml.initialised is False  # shut down again


def test_nvml_failure_says_which_call_failed() -> None:
    class Broken(FakeNvml):
        def nvmlInit(self) -> None:
            raise RuntimeError("Driver Not Loaded")

    with pytest.raises(NvmlUnavailable, match="NVML nvmlInit failed: Driver Not Loaded"):
        nvml_devices(Broken())


def test_local_publication_publishes_cpu_memory_and_gpus_that_validate_and_allocate(
    store: Store,
) -> None:
    # given this host with two (fake) GPUs
    # when its devices are published
    report = publish(store, local_publication("worker-1", FakeNvml()))
    # then a CPU/memory slice, a GPU slice, both classes and a Ready Node are in the store
    slices = {s["spec"]["driver"]: s for s in _slices(store)}
    assert set(slices) == {CPU_DRIVER, "gpu.nvidia.com"}
    for obj in [*_slices(store), *store.list("DeviceClass").items, *store.list("Node").items]:
        validate(obj)
    node = store.get("Node", "", "worker-1")
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "worker-1"
    assert node["status"]["conditions"][0]["type"] == "Ready"
    assert "ResourceSlice/worker-1-gpu.nvidia.com" in report.created
    host = slices[CPU_DRIVER]["spec"]["devices"][0]
    assert host["allowMultipleAllocations"] is True
    assert int(host["capacity"]["cpu"]["value"]) >= 1
    # and the scheduler can give a share of the host to an agent worker
    inv = Inventory.from_objects(_slices(store), store.list("DeviceClass").items)
    claim = {
        "metadata": {"name": "worker", "namespace": "default"},
        "spec": {
            "devices": {
                "requests": [
                    {
                        "name": "cpu",
                        "exactly": {
                            "deviceClassName": "cpu.modelplane.dev",
                            "capacity": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                        },
                    }
                ]
            }
        },
    }
    result = allocate(claim, inv)
    assert result, getattr(result, "reason", "")
    # keyed by the device's own capacity names, as Kubernetes writes consumedCapacity
    assert result.results[0]["consumedCapacity"] == {"cpu": "250m", "memory": "256Mi"}


def test_republishing_writes_only_changes_and_bumps_the_pool_generation(store: Store) -> None:
    # given a host published once
    publish(store, local_publication("worker-1", FakeNvml(gpus=2)))
    again = publish(store, local_publication("worker-1", FakeNvml(gpus=2)))
    assert not again.created and not again.updated  # nothing changed, nothing written
    # when a GPU disappears
    publish(store, local_publication("worker-1", FakeNvml(gpus=1)))
    # then the GPU pool's generation goes up and the slice lists one GPU
    gpu = store.get("ResourceSlice", "", "worker-1-gpu.nvidia.com")
    assert gpu["spec"]["pool"]["generation"] == 2
    assert [d["name"] for d in gpu["spec"]["devices"]] == ["gpu-0"]
    cpu = store.get("ResourceSlice", "", f"worker-1-{CPU_DRIVER}")
    assert cpu["spec"]["pool"]["generation"] == 1
    # and when no GPU is left, the GPU slice is withdrawn
    report = publish(store, local_publication("worker-1", FakeNvml(gpus=0)))
    assert report.deleted == ["ResourceSlice/worker-1-gpu.nvidia.com"]
    assert [s["spec"]["driver"] for s in _slices(store)] == [CPU_DRIVER]


def _write_cluster(path: Path, nodes: int) -> None:
    import yaml

    path.write_text(yaml.safe_dump_all(generate_cluster(nodes, gpus_per_node=2, mig=False)))


def test_file_inventory_is_applied_and_withdraws_what_the_file_no_longer_holds(
    store: Store, tmp_path: Path
) -> None:
    # given an inventory file of three nodes
    path = tmp_path / "cluster.yaml"
    _write_cluster(path, 3)
    # when it is published
    publish(store, file_publication(load_inventory([path]), "file.cluster"))
    # then Nodes carry their topology labels and every slice is labelled with its publisher
    nodes = store.list("Node").items
    assert len(nodes) == 3
    labels = nodes[0]["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "node-0000"
    assert labels["topology.modelplane.dev/rack"] == "rack-000"
    assert labels["topology.modelplane.dev/block"] == "block-00"
    assert all(s["metadata"]["labels"][PUBLISHER_LABEL] == "file.cluster" for s in _slices(store))
    # when the file shrinks to two nodes and is published again
    _write_cluster(path, 2)
    report = publish(store, file_publication(load_inventory([path]), "file.cluster"))
    # then the third node's slice is gone
    assert report.deleted == ["ResourceSlice/node-0002-gpu.nvidia.com"]
    assert len(_slices(store)) == 2


def test_bad_inventory_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "apiVersion: resource.k8s.io/v1\nkind: ResourceSlice\nmetadata: {name: s}\n"
        "spec:\n  driver: gpu.nvidia.com\n  pool: {name: p, generation: 1}\n  nodeName: n\n"
        "  devices:\n  - name: gpu-0\n    capacity: {memory: {value: lots}}\n"
        "---\napiVersion: modelplane.dev/v1alpha1\nkind: Model\nmetadata: {name: m}\n"
    )
    with pytest.raises(Invalid) as err:
        load_inventory([path])
    where = sorted(c.location or "" for c in err.value.causes)
    assert any(w.startswith(f"{path}:10:") for w in where), where
    assert any(w.startswith(f"{path}:13:") for w in where), where
