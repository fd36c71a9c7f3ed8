"""Accelerator telemetry: NVML readings and the simulated model, exported under OpenTelemetry
``hw.*`` and dcgm-exporter names, parsed back with prometheus_client's own parser."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tests.drivers.test_drivers import FakeNvml

from modelplane.drivers import (
    Accelerators,
    accelerator_registry,
    file_publication,
    load_inventory,
    publish,
)
from modelplane.sim import generate_cluster
from modelplane.store import Store

Samples = dict[str, list[tuple[dict[str, str], float]]]


class BusyNvml(FakeNvml):
    """Two H100s (hardware outside the project) reporting load: GPU 0 busy, GPU 1 idle."""

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        used = 60 * 1024**3 if handle == 0 else 0
        return SimpleNamespace(total=80 * 1024**3, used=used, free=80 * 1024**3 - used)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return SimpleNamespace(gpu=87 if handle == 0 else 0, memory=40)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return 71 if handle == 0 else 33

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return 612_500 if handle == 0 else 70_000  # milliwatts

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        return 5_000_000  # millijoules

    def nvmlDeviceGetPcieThroughput(self, handle: int, counter: int) -> int:
        if handle == 1:
            raise RuntimeError("Not Supported")  # as NVML answers where it has no counter
        return 2000 if counter == 0 else 1000  # KB/s


def _scrape(acc: Accelerators) -> Samples:
    text = generate_latest(accelerator_registry(acc)).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def _of(samples: Samples, name: str, **labels: str) -> float:
    found = [v for lab, v in samples[name] if all(lab.get(k) == x for k, x in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


def test_nvml_gpus_are_exported_under_otel_and_dcgm_names() -> None:
    # given a host whose NVML reports a busy and an idle GPU
    clock = [100.0]
    acc = Accelerators("worker-1", nvml=BusyNvml(), clock=lambda: clock[0])
    # when /metrics is scraped twice, 10 s apart
    _scrape(acc)
    clock[0] += 10.0
    samples = _scrape(acc)
    busy = "GPU-00000000-aaaa-bbbb-cccc-000000000000"
    # then OpenTelemetry's hw.gpu.* names carry the readings in base units
    assert _of(samples, "hw_gpu_utilization_ratio", hw_id=busy, hw_type="gpu") == 0.87
    assert _of(samples, "hw_gpu_memory_usage_bytes", hw_id=busy) == 60 * 1024**3
    assert _of(samples, "hw_gpu_memory_limit_bytes", hw_id=busy) == 80 * 1024**3
    assert _of(samples, "hw_gpu_memory_utilization_ratio", hw_id=busy) == 0.75
    assert _of(samples, "hw_power_watts", hw_id=busy, hw_type="gpu") == 612.5
    assert _of(samples, "hw_energy_joules_total", hw_id=busy) == 5000.0
    assert _of(samples, "hw_temperature_celsius", hw_parent=busy, hw_type="temperature") == 71
    labels = next(lab for lab, _ in samples["hw_gpu_memory_usage_bytes"] if lab["hw_id"] == busy)
    assert labels["hw_model"] == "NVIDIA H100 80GB HBM3"
    assert labels["hw_driver_version"] == "570.124.6"
    assert labels["host_name"] == "worker-1"
    # PCIe bytes: the sampled rate (2000 KB/s out, 1000 in) integrated over the 10 s between scrapes
    sent = _of(samples, "hw_gpu_io_bytes_total", hw_id=busy, network_io_direction="transmit")
    assert sent == 2000 * 1024 * 10
    assert _of(samples, "hw_gpu_io_bytes_total", network_io_direction="receive", hw_id=busy) == (
        1000 * 1024 * 10
    )
    # a GPU without a PCIe counter has no io series rather than a made-up zero
    idle = "GPU-00000001-aaaa-bbbb-cccc-000000000000"
    assert all(lab["hw_id"] != idle for lab, _ in samples["hw_gpu_io_bytes_total"])
    # and dcgm-exporter's names, units and labels carry the same readings
    dcgm = {"gpu": "0", "UUID": busy, "device": "nvidia0", "Hostname": "worker-1"}
    assert _of(samples, "DCGM_FI_DEV_GPU_UTIL", **dcgm) == 87
    assert _of(samples, "DCGM_FI_DEV_FB_USED", **dcgm) == 60 * 1024
    assert _of(samples, "DCGM_FI_DEV_FB_FREE", **dcgm) == 20 * 1024
    assert _of(samples, "DCGM_FI_DEV_GPU_TEMP", **dcgm) == 71
    assert _of(samples, "DCGM_FI_DEV_POWER_USAGE", **dcgm) == 612.5
    assert _of(samples, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", **dcgm) == 5_000_000
    assert _of(samples, "DCGM_FI_PROF_PCIE_TX_BYTES", **dcgm) == 2000 * 1024
    labels = next(lab for lab, _ in samples["DCGM_FI_DEV_GPU_UTIL"] if lab["gpu"] == "1")
    assert labels["modelName"] == "NVIDIA H100 80GB HBM3"
    assert labels["DCGM_FI_DRIVER_VERSION"] == "570.124.6"
    assert _of(samples, "DCGM_FI_DEV_GPU_UTIL", gpu="1") == 0


def _claim(name: str, node: str, device: str) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "devices": {
                "requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}]
            }
        },
        "status": {
            "allocation": {
                "devices": {
                    "results": [
                        {
                            "request": "gpu",
                            "driver": "gpu.nvidia.com",
                            "pool": node,
                            "device": device,
                        }
                    ]
                }
            }
        },
    }


def test_simulated_gpus_follow_their_allocations(store: Store, tmp_path: Path) -> None:
    # given a simulated inventory of one node with two L40S GPUs (350 W), published as up does
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(generate_cluster(1, gpus_per_node=2, mig=False)))
    publish(store, file_publication(load_inventory([path]), "inventory"))
    clock = [0.0]
    acc = Accelerators("up-host", store=store, clock=lambda: clock[0])
    before = _scrape(acc)
    assert _of(before, "DCGM_FI_DEV_GPU_UTIL", gpu="0", Hostname="node-0000") == 0
    idle_watts = _of(before, "DCGM_FI_DEV_POWER_USAGE", gpu="0", Hostname="node-0000")
    assert idle_watts == 350 * 0.15
    # when a claim is allocated GPU 0 and 100 s pass
    created = store.create(_claim("serve", "node-0000", "gpu-0"))
    store.update_status({**created, "status": _claim("serve", "node-0000", "gpu-0")["status"]})
    clock[0] += 100.0
    after = _scrape(acc)
    # then GPU 0 is fully used, draws its full power, runs hotter, and holds 90% of its memory
    gpu0 = {"gpu": "0", "Hostname": "node-0000"}
    assert _of(after, "DCGM_FI_DEV_GPU_UTIL", **gpu0) == 100
    assert _of(after, "DCGM_FI_DEV_POWER_USAGE", **gpu0) == 350
    assert _of(after, "DCGM_FI_DEV_GPU_TEMP", **gpu0) == 75
    assert _of(after, "DCGM_FI_DEV_FB_USED", **gpu0) == int(48 * 1024 * 0.9)
    # and GPU 1 stays idle
    assert _of(after, "DCGM_FI_DEV_GPU_UTIL", gpu="1", Hostname="node-0000") == 0
    # energy: the power between the two scrapes integrated over 100 s (mean of 52.5 W and 350 W)
    joules = _of(after, "hw_energy_joules_total", hw_name="gpu-0", host_name="node-0000")
    assert joules == (52.5 + 350) / 2 * 100


def test_a_node_s_metrics_route_serves_its_accelerators_beside_its_gauges() -> None:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from modelplane.cli._probes import probe_routes

    # given the probe routes of a node agent on a host with two GPUs
    acc = Accelerators("worker-1", nvml=BusyNvml())
    app = Starlette(
        routes=probe_routes(
            lambda: None, lambda: {"modelplane_ready": 1.0}, [accelerator_registry(acc)]
        )
    )
    # when /metrics is scraped
    text = TestClient(app).get("/metrics").text
    # then the gauges and both vocabularies of GPU series parse as one exposition
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"modelplane_ready", "hw_gpu_utilization_ratio", "DCGM_FI_DEV_GPU_UTIL"} <= names
