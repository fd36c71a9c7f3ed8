"""Synthetic HGX-like clusters and workloads, as plain ``resource.k8s.io/v1`` dicts.

Clusters: N nodes x 8 GPUs, two PCIe roots of four GPUs (one per NUMA node), one NVLink domain per
node (or per rack for NVL72-like racks), racks of 16 nodes, blocks of 8 racks. MIG-capable GPUs
are published the way NVIDIA's DRA driver publishes partitionable devices: one counter set per
GPU (multiprocessors, memory and one ``memorySliceN`` counter per memory slice) consumed by the
full GPU and by every MIG placement, so partitions that overlap can never be allocated together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ._inventory import BLOCK_LABEL, HOSTNAME_LABEL, NODE_POWER_CAP, RACK_LABEL, RACK_POWER_CAP

__all__ = ["GPU_MODELS", "generate_cluster", "generate_workload"]

DRIVER = "gpu.nvidia.com"
ARRIVAL = "modelplane.dev/arrival-seconds"
DURATION = "modelplane.dev/duration-seconds"


@dataclass(frozen=True)
class GpuModel:
    product: str
    architecture: str
    compute_capability: str
    memory_gi: int
    watts: int
    price_per_hour: float
    sms: int  # multiprocessors; 0 = no MIG
    mig_sms: tuple[tuple[str, int, int, tuple[int, ...]], ...] = ()  # profile, SMs, slices, starts


_MIG_80GB = (
    ("1g.10gb", 16, 1, (0, 1, 2, 3, 4, 5, 6)),
    ("1g.20gb", 16, 2, (0, 2, 4, 6)),
    ("2g.20gb", 32, 2, (0, 2, 4)),
    ("3g.40gb", 60, 4, (0, 4)),
    ("4g.40gb", 64, 4, (0,)),
    ("7g.80gb", 132, 8, (0,)),
)

GPU_MODELS: dict[str, GpuModel] = {
    "h100": GpuModel("NVIDIA H100 80GB HBM3", "Hopper", "9.0.0", 80, 700, 2.49, 132, _MIG_80GB),
    "a100": GpuModel(
        "NVIDIA A100-SXM4-80GB",
        "Ampere",
        "8.0.0",
        80,
        400,
        1.29,
        108,
        tuple((p, sm * 108 // 132, s, st) for p, sm, s, st in _MIG_80GB),
    ),
    "l40s": GpuModel("NVIDIA L40S", "Ada Lovelace", "8.9.0", 48, 350, 0.99, 0),
}


def _attr(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    return {"string": str(value)}


def generate_cluster(
    nodes: int,
    *,
    gpus_per_node: int = 8,
    rack_size: int = 16,
    racks_per_block: int = 8,
    mix: dict[str, float] | None = None,
    mig: bool = True,
    nvl72: bool = False,
    node_power_cap_watts: float | None = None,
    rack_power_cap_watts: float | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """DeviceClasses, Nodes and one ResourceSlice per node (pool = node name).

    ``mix`` weights GPU generations by key of :data:`GPU_MODELS` (default 50% H100, 30% A100,
    20% L40S; a node has one generation). ``mig`` publishes MIG partitions of MIG-capable GPUs
    with counter sets. ``nvl72`` makes a rack one NVLink domain. Power caps become Node
    annotations the power filter honours.
    """
    rng = random.Random(seed)
    mix = mix or {"h100": 0.5, "a100": 0.3, "l40s": 0.2}
    kinds = list(mix)
    weights = [mix[k] for k in kinds]
    objs: list[dict[str, Any]] = [
        _device_class("gpu.nvidia.com", "gpu"),
        _device_class("mig.nvidia.com", "mig"),
    ]
    slices: list[dict[str, Any]] = []
    for n in range(nodes):
        name = f"node-{n:04d}"
        rack = f"rack-{n // rack_size:03d}"
        block = f"block-{n // (rack_size * racks_per_block):02d}"
        model = GPU_MODELS[rng.choices(kinds, weights)[0]]
        annotations: dict[str, str] = {}
        if node_power_cap_watts is not None:
            annotations[NODE_POWER_CAP] = str(node_power_cap_watts)
        if rack_power_cap_watts is not None:
            annotations[RACK_POWER_CAP] = str(rack_power_cap_watts)
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {
                        HOSTNAME_LABEL: name,
                        RACK_LABEL: rack,
                        BLOCK_LABEL: block,
                        "nvidia.com/gpu.product": model.product.replace(" ", "-"),
                    },
                    "annotations": annotations,
                },
            }
        )
        slices.append(_node_slice(name, rack, n, model, gpus_per_node, mig, nvl72))
    return objs + slices


def _device_class(name: str, kind: str) -> dict[str, Any]:
    expr = f"device.driver == '{DRIVER}' && device.attributes['{DRIVER}'].type == '{kind}'"
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": name},
        "spec": {"selectors": [{"cel": {"expression": expr}}]},
    }


def _node_slice(
    node: str, rack: str, n: int, model: GpuModel, gpus: int, mig: bool, nvl72: bool
) -> dict[str, Any]:
    devices: list[dict[str, Any]] = []
    counters: list[dict[str, Any]] = []
    per_root = max(1, gpus // 2)
    for g in range(gpus):
        root = g // per_root
        common = {
            "productName": _attr(model.product),
            "architecture": _attr(model.architecture),
            "cudaComputeCapability": {"version": model.compute_capability},
            "driverVersion": {"version": "570.124.6"},
            "resource.kubernetes.io/pcieRoot": _attr(f"pci{n:04x}:{root:02x}"),
            "modelplane.dev/numaNode": _attr(root),
            "modelplane.dev/nvlinkDomain": _attr(rack if nvl72 else node),
        }
        partitionable = mig and model.sms > 0
        full: dict[str, Any] = {
            "name": f"gpu-{g}",
            "attributes": {
                "type": _attr("gpu"),
                "index": _attr(g),
                "uuid": _attr(f"GPU-{n:04x}{g:02x}-0000-4000-8000-{n:06x}{g:06x}"),
                "pcieBusID": _attr(f"0000:{0x18 + 0x10 * g:02x}:00.0"),
                **common,
                "modelplane.dev/powerWatts": _attr(model.watts),
                "modelplane.dev/pricePerHour": _attr(f"{model.price_per_hour:.2f}"),
            },
            "capacity": {"memory": {"value": f"{model.memory_gi}Gi"}},
        }
        if partitionable:
            cs = f"gpu-{g}-counter-set"
            totals: dict[str, Any] = {
                "multiprocessors": {"value": str(model.sms)},
                "memory": {"value": f"{model.memory_gi}Gi"},
            }
            totals.update({f"memorySlice{i}": {"value": "1"} for i in range(8)})
            counters.append({"name": cs, "counters": totals})
            full["consumesCounters"] = [{"counterSet": cs, "counters": totals}]
        devices.append(full)
        if not partitionable:
            continue
        for profile, sms, slices, starts in model.mig_sms:
            mem = int(profile.split(".")[1].removesuffix("gb"))
            share = slices / 8
            for start in starts:
                used = {"multiprocessors": {"value": str(sms)}, "memory": {"value": f"{mem}Gi"}}
                used.update({f"memorySlice{start + i}": {"value": "1"} for i in range(slices)})
                devices.append(
                    {
                        "name": f"gpu-{g}-mig-{profile.replace('.', '')}-{start}",
                        "attributes": {
                            "type": _attr("mig"),
                            "profile": _attr(profile),
                            "parentIndex": _attr(g),
                            **common,
                            "modelplane.dev/powerWatts": _attr(int(model.watts * share)),
                            "modelplane.dev/pricePerHour": _attr(
                                f"{model.price_per_hour * share:.2f}"
                            ),
                        },
                        "capacity": {"memory": {"value": f"{mem}Gi"}},
                        "consumesCounters": [
                            {"counterSet": f"gpu-{g}-counter-set", "counters": used}
                        ],
                    }
                )
    spec: dict[str, Any] = {
        "driver": DRIVER,
        "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
        "nodeName": node,
        "devices": devices,
    }
    if counters:
        spec["sharedCounters"] = counters
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{node}-{DRIVER}"},
        "spec": spec,
    }


def _claim(
    name: str, requests: list[dict[str, Any]], constraints: list[dict[str, Any]], t: float, d: float
) -> dict[str, Any]:
    devices: dict[str, Any] = {"requests": requests}
    if constraints:
        devices["constraints"] = constraints
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {ARRIVAL: f"{t:.3f}", DURATION: f"{d:.3f}"},
        },
        "spec": {"devices": devices},
    }


#: Claim shapes of the default mix: (name, weight).
DEFAULT_MIX = {
    "gpu-1": 0.35,
    "mig-1g": 0.15,
    "mig-3g": 0.05,
    "gpu-2": 0.15,
    "gpu-4": 0.15,
    "gpu-8": 0.1,
    "firstavailable": 0.05,
}


def generate_workload(
    claims: int,
    *,
    rate_per_second: float = 10.0,
    mean_duration_seconds: float = 600.0,
    mix: dict[str, float] | None = None,
    infeasible: int = 0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """ResourceClaims with Poisson arrivals and exponential durations in annotations.

    Shapes: single-GPU endpoints, MIG slices (1g.10gb, 3g.40gb), 2/4-GPU claims with
    ``matchAttribute`` on the PCIe root, 8-GPU claims on one NVLink domain, and ``firstAvailable``
    claims (an H100, else two A100s on one PCIe root). ``infeasible`` adds claims that no node can
    ever satisfy (16 GPUs with one pcieRoot).
    """
    rng = random.Random(seed)
    mix = mix or DEFAULT_MIX
    kinds = list(mix)
    weights = [mix[k] for k in kinds]
    out: list[dict[str, Any]] = []
    t = 0.0
    for i in range(claims + infeasible):
        t += rng.expovariate(rate_per_second)
        d = rng.expovariate(1.0 / mean_duration_seconds)
        kind = "infeasible" if i >= claims else rng.choices(kinds, weights)[0]
        out.append(_shape(f"claim-{i:06d}-{kind}", kind, t, d))
    if infeasible:
        rng.shuffle(out)
    return out


def _shape(name: str, kind: str, t: float, d: float) -> dict[str, Any]:
    root = "resource.kubernetes.io/pcieRoot"
    if kind.startswith("gpu-") or kind == "infeasible":
        count = 16 if kind == "infeasible" else int(kind.split("-")[1])
        req: dict[str, Any] = {
            "name": "gpu",
            "exactly": {"deviceClassName": "gpu.nvidia.com", "count": count},
        }
        cons: list[dict[str, Any]] = []
        if 1 < count <= 4 or count > 8:
            cons = [{"requests": ["gpu"], "matchAttribute": root}]
        elif count > 4:
            cons = [{"requests": ["gpu"], "matchAttribute": "modelplane.dev/nvlinkDomain"}]
        return _claim(name, [req], cons, t, d)
    if kind.startswith("mig-"):
        profile = {"mig-1g": "1g.10gb", "mig-3g": "3g.40gb"}[kind]
        sel = f"device.attributes['{DRIVER}'].profile == '{profile}'"
        req = {
            "name": "mig",
            "exactly": {
                "deviceClassName": "mig.nvidia.com",
                "selectors": [{"cel": {"expression": sel}}],
            },
        }
        return _claim(name, [req], [], t, d)
    if kind == "firstavailable":
        h100 = f"device.attributes['{DRIVER}'].productName.startsWith('NVIDIA H100')"
        a100 = f"device.attributes['{DRIVER}'].architecture == 'Ampere'"
        req = {
            "name": "gpu",
            "firstAvailable": [
                {
                    "name": "h100",
                    "deviceClassName": "gpu.nvidia.com",
                    "selectors": [{"cel": {"expression": h100}}],
                },
                {
                    "name": "a100x2",
                    "deviceClassName": "gpu.nvidia.com",
                    "count": 2,
                    "selectors": [{"cel": {"expression": a100}}],
                },
            ],
        }
        return _claim(name, [req], [{"requests": ["gpu/a100x2"], "matchAttribute": root}], t, d)
    raise ValueError(f"unknown claim shape {kind!r}")
