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

from modelplane.api import ARRIVAL_ANNOTATION as ARRIVAL
from modelplane.api import BLOCK_LABEL, HOSTNAME_LABEL, RACK_LABEL
from modelplane.api import DURATION_ANNOTATION as DURATION
from modelplane.api import NODE_POWER_CAP_ANNOTATION as NODE_POWER_CAP
from modelplane.api import RACK_POWER_CAP_ANNOTATION as RACK_POWER_CAP

__all__ = [
    "DEFAULT_MIX",
    "GPU_MODELS",
    "HardInput",
    "generate_alibaba_workload",
    "generate_cluster",
    "generate_workload",
    "hard_inputs",
    "mean_units",
]

DRIVER = "gpu.nvidia.com"


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
                "apiVersion": "modelplane.dev/v1alpha1",
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
            "cudaDriverVersion": {"version": "12.8.0"},
            "resource.kubernetes.io/pcieRoot": _attr(f"pci{n:04x}:{root:02x}"),
            "modelplane.dev/numaNode": _attr(root),
            "modelplane.dev/nvlinkDomain": _attr(rack if nvl72 else node),
        }
        full = _gpu(n, g, model, common)
        devices.append(full)
        if mig and model.sms > 0:  # partitionable: the GPU's counters, then its MIG devices
            cs = f"gpu-{g}-counter-set"
            totals: dict[str, Any] = {
                "multiprocessors": {"value": str(model.sms)},
                "memory": {"value": f"{model.memory_gi}Gi"},
            }
            totals.update({f"memorySlice{i}": {"value": "1"} for i in range(8)})
            counters.append({"name": cs, "counters": totals})
            full["consumesCounters"] = [{"counterSet": cs, "counters": totals}]
            devices.extend(_mig_devices(g, model, common))
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


def _gpu(n: int, g: int, model: GpuModel, common: dict[str, Any]) -> dict[str, Any]:
    """GPU ``g`` of node number ``n``, whole."""
    return {
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


def _mig_devices(g: int, model: GpuModel, common: dict[str, Any]) -> list[dict[str, Any]]:
    """Every MIG placement of GPU ``g``, each consuming its slices of the GPU's counters."""
    devices: list[dict[str, Any]] = []
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
                        "modelplane.dev/pricePerHour": _attr(f"{model.price_per_hour * share:.2f}"),
                    },
                    "capacity": {"memory": {"value": f"{mem}Gi"}},
                    "consumesCounters": [{"counterSet": f"gpu-{g}-counter-set", "counters": used}],
                }
            )
    return devices


# --------------------------------------------------------------------------------------------
# workloads


def _claim(
    name: str,
    requests: list[dict[str, Any]],
    constraints: list[dict[str, Any]],
    t: float,
    d: float,
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


def _gpus(count: int, *selectors: str, name: str = "gpu") -> dict[str, Any]:
    exactly: dict[str, Any] = {"deviceClassName": "gpu.nvidia.com", "count": count}
    if selectors:
        exactly["selectors"] = [{"cel": {"expression": e}} for e in selectors]
    return {"name": name, "exactly": exactly}


def _mig(profile: str, *selectors: str, name: str = "mig", count: int = 1) -> dict[str, Any]:
    exprs = (f"device.attributes['{DRIVER}'].profile == '{profile}'", *selectors)
    exactly: dict[str, Any] = {
        "deviceClassName": "mig.nvidia.com",
        "selectors": [{"cel": {"expression": e}} for e in exprs],
    }
    if count != 1:
        exactly["count"] = count
    return {"name": name, "exactly": exactly}


#: Claim shapes of the default mix: (name, weight). ``-any`` shapes carry no topology
#: constraint: they *prefer* one PCIe root (the topology scorer's job) but do not require it.
DEFAULT_MIX = {
    "gpu-1": 0.25,
    "mig-1g": 0.08,
    "mig-3g": 0.04,
    "agent": 0.08,
    "gpu-2": 0.10,
    "gpu-2-any": 0.08,
    "gpu-4": 0.10,
    "gpu-4-any": 0.07,
    "gpu-8": 0.10,
    "firstavailable": 0.05,
    "infeasible": 0.0,
}

#: Accelerator units one claim of each shape takes (``firstavailable``: an H100; ``agent``: a
#: 1g.10gb slice, one-seventh of a GPU's compute).
SHAPE_UNITS = {
    "gpu-1": 1.0,
    "mig-1g": 1 / 8,
    "mig-3g": 4 / 8,
    "agent": 1 / 8,
    "gpu-2": 2.0,
    "gpu-2-any": 2.0,
    "gpu-4": 4.0,
    "gpu-4-any": 4.0,
    "gpu-8": 8.0,
    "firstavailable": 1.0,
    "infeasible": 16.0,
}


def mean_units(mix: dict[str, float] | None = None) -> float:
    """Mean accelerator units per claim of ``mix`` (to turn a rate into an offered load)."""
    mix = mix or DEFAULT_MIX
    total = sum(mix.values()) or 1.0
    return sum(SHAPE_UNITS[k] * w for k, w in mix.items()) / total


def generate_workload(
    claims: int,
    *,
    rate_per_second: float = 10.0,
    mean_duration_seconds: float = 600.0,
    mix: dict[str, float] | None = None,
    infeasible: int = 0,
    gangs: int = 0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """ResourceClaims (and gang Jobs) with Poisson arrivals and exponential durations.

    Shapes (:data:`DEFAULT_MIX`): single-GPU endpoints (``gpu-1``), MIG slices (``mig-1g``
    1g.10gb, ``mig-3g`` 3g.40gb), fractional agent workers (``agent``: a 1g.10gb slice, else a
    whole L40S), 2/4-GPU claims with ``matchAttribute`` on the PCIe root (``gpu-2``, ``gpu-4``)
    and without any (``gpu-2-any``, ``gpu-4-any``: they prefer one root but do not require it),
    8-GPU claims on one NVLink domain, and ``firstAvailable`` claims (an H100, else two A100s on
    one PCIe root). ``infeasible`` adds claims no node can ever satisfy (16 GPUs on one PCIe
    root). ``gangs`` adds multi-node ``Job`` s (2-4 replicas of 8 GPUs each, all in one rack,
    all or none) among the claims; a simulator that does not place Jobs ignores them.
    Annotations ``modelplane.dev/arrival-seconds`` and ``modelplane.dev/duration-seconds``.
    """
    rng = random.Random(seed)
    mix = mix or DEFAULT_MIX
    kinds = [k for k, w in mix.items() if w > 0]
    weights = [mix[k] for k in kinds]
    out: list[dict[str, Any]] = []
    t = 0.0
    extra = ["infeasible"] * infeasible + ["gang"] * gangs
    slots = [""] * claims + extra
    if extra:
        # Spread the special ones over the run instead of appending them at its end.
        rng.shuffle(slots)
    for i, special in enumerate(slots):
        t += rng.expovariate(rate_per_second)
        d = rng.expovariate(1.0 / mean_duration_seconds)
        kind = special or rng.choices(kinds, weights)[0]
        if kind == "gang":
            out.append(gang_job(f"job-{i:06d}", rng.choice((2, 2, 3, 4)), t, d))
        else:
            out.append(_shape(f"claim-{i:06d}-{kind}", kind, t, d))
    return out


def gang_job(name: str, replicas: int, t: float, d: float, level: str = "rack") -> dict[str, Any]:
    """A ``Job`` of ``replicas`` x 8 GPUs (one NVLink domain each), all in one ``level``."""
    claim = {
        "requests": [_gpus(8)],
        "constraints": [{"requests": ["gpu"], "matchAttribute": "modelplane.dev/nvlinkDomain"}],
    }
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {ARRIVAL: f"{t:.3f}", DURATION: f"{d:.3f}"},
        },
        "spec": {
            "replicas": replicas,
            "gang": True,
            "topology": {"required": level},
            "claim": claim,
        },
    }


def _shape(name: str, kind: str, t: float, d: float) -> dict[str, Any]:
    root = "resource.kubernetes.io/pcieRoot"
    if kind.startswith("gpu-") or kind == "infeasible":
        count = 16 if kind == "infeasible" else int(kind.split("-")[1])
        cons: list[dict[str, Any]] = []
        if kind.endswith("-any"):
            pass
        elif 1 < count <= 4 or count > 8:
            cons = [{"requests": ["gpu"], "matchAttribute": root}]
        elif count > 4:
            cons = [{"requests": ["gpu"], "matchAttribute": "modelplane.dev/nvlinkDomain"}]
        return _claim(name, [_gpus(count)], cons, t, d)
    if kind in ("mig-1g", "mig-3g"):
        return _claim(name, [_mig({"mig-1g": "1g.10gb", "mig-3g": "3g.40gb"}[kind])], [], t, d)
    if kind == "agent":
        l40s = f"device.attributes['{DRIVER}'].productName == '{GPU_MODELS['l40s'].product}'"
        slice_ = _mig("1g.10gb")["exactly"]
        req = {
            "name": "worker",
            "firstAvailable": [
                {"name": "slice", **slice_},
                {
                    "name": "l40s",
                    "deviceClassName": "gpu.nvidia.com",
                    "selectors": [{"cel": {"expression": l40s}}],
                },
            ],
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
    raise ValueError(f"unknown claim shape {kind!r}: use one of {', '.join(SHAPE_UNITS)}")


# --------------------------------------------------------------------------------------------
# a workload shaped like Alibaba's GPU trace

#: Shares of tasks by whole GPUs requested, and of GPU tasks that share one GPU, approximating
#: the published shape of Alibaba's cluster-trace-gpu-v2023 (see :func:`generate_alibaba_workload`).
ALIBABA_NUM_GPU = {0: 0.13, 1: 0.83, 2: 0.02, 4: 0.013, 8: 0.007}
ALIBABA_SHARING = 0.33
ALIBABA_GPU_SPEC = 0.07
#: gpu_milli of a sharing task -> the smallest MIG profile that holds it (7 compute slices).
_MILLI_TO_PROFILE = ((143, "1g.10gb"), (286, "2g.20gb"), (429, "3g.40gb"), (571, "4g.40gb"))


def generate_alibaba_workload(
    tasks: int,
    *,
    rate_per_second: float = 10.0,
    mean_duration_seconds: float = 600.0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """ResourceClaims shaped like Alibaba's GPU cluster trace (cluster-trace-gpu-v2023).

    That trace, published with "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with
    Fragmentation Gradient Descent" (Weng et al., USENIX ATC'23), lists 8,152 tasks of a
    production cluster of about 1,200 nodes and 6,200 GPUs with, per task, ``num_gpu`` (0-8
    whole GPUs), ``gpu_milli`` (a share of one GPU in thousandths, below 1000 for tasks that
    share a GPU) and ``gpu_spec`` (GPU models the task may run on). Its shape, which this
    generator follows without copying any data: about one task in eight asks for no GPU, most
    ask for exactly one, about a third of the GPU tasks share one GPU (skewed to small shares),
    multi-GPU tasks (2, 4, 8) are a few percent, and a small share names a GPU type.

    Mapping to DRA: a task with ``num_gpu`` 0 asks for no device and yields no claim; a sharing
    task gets the smallest MIG profile that holds its ``gpu_milli`` (MIG partitions are what a
    DRA driver publishes for fractions of a GPU); a multi-GPU task gets ``count`` GPUs with
    ``matchAttribute`` on the PCIe root (2, 4) or the NVLink domain (8); a ``gpu_spec`` becomes a
    CEL selector on ``productName``. Use a MIG-capable cluster (``mix`` of ``h100``/``a100``).
    """
    rng = random.Random(seed)
    counts = list(ALIBABA_NUM_GPU)
    weights = [ALIBABA_NUM_GPU[k] for k in counts]
    products = [GPU_MODELS["h100"].product, GPU_MODELS["a100"].product]
    out: list[dict[str, Any]] = []
    t = 0.0
    for i in range(tasks):
        t += rng.expovariate(rate_per_second)
        d = rng.expovariate(1.0 / mean_duration_seconds)
        num_gpu = rng.choices(counts, weights)[0]
        if num_gpu == 0:
            continue  # a CPU-only task: nothing for the device scheduler
        spec: list[str] = []
        if rng.random() < ALIBABA_GPU_SPEC:
            product = rng.choice(products)
            spec = [f"device.attributes['{DRIVER}'].productName == '{product}'"]
        name = f"task-{i:06d}"
        if num_gpu == 1 and rng.random() < ALIBABA_SHARING:
            # Shares are skewed to small ones: most tasks take a quarter of a GPU or less.
            milli = min(999, int(rng.paretovariate(1.2) * 100))
            profile = next((p for m, p in _MILLI_TO_PROFILE if milli <= m), "7g.80gb")
            claim = _claim(f"{name}-milli{milli}", [_mig(profile, *spec)], [], t, d)
        else:
            cons: list[dict[str, Any]] = []
            if 1 < num_gpu <= 4:
                cons = [{"requests": ["gpu"], "matchAttribute": "resource.kubernetes.io/pcieRoot"}]
            elif num_gpu > 4:
                cons = [{"requests": ["gpu"], "matchAttribute": "modelplane.dev/nvlinkDomain"}]
            claim = _claim(f"{name}-gpu{num_gpu}", [_gpus(num_gpu, *spec)], cons, t, d)
        out.append(claim)
    return out


# --------------------------------------------------------------------------------------------
# hard inputs


@dataclass(frozen=True)
class HardInput:
    """One known-hard decision: a cluster, what is already allocated, the claim, the answer.

    ``allocated`` are ResourceClaims carrying ``status.allocation`` (build the state with
    ``AllocatedState.from_claims``); ``feasible`` is the right answer, when known.
    """

    name: str
    description: str
    cluster: list[dict[str, Any]]
    allocated: list[dict[str, Any]]
    claim: dict[str, Any]
    feasible: bool | None  # None: not known in advance (ask the exact optimum)


def _held(name: str, node: str, devices: list[str]) -> dict[str, Any]:
    results = [{"request": "held", "driver": DRIVER, "pool": node, "device": d} for d in devices]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "hard"},
        "spec": {"devices": {"requests": [_gpus(len(devices), name="held")]}},
        "status": {"allocation": {"devices": {"results": results}}},
    }


def _same(requests: list[str], attribute: str) -> dict[str, Any]:
    return {"requests": requests, "matchAttribute": attribute}


def hard_inputs(nodes: int = 64, seed: int = 0) -> list[HardInput]:
    """The known hard inputs of DRA allocation, on an H100 cluster of ``nodes`` nodes.

    - counter backtracking: MIG layouts where the first partition the search picks blocks a
      later one, so it must undo it (feasible on one node only, or on none);
    - infeasible claims, which must be answered quickly as impossible: more GPUs than a node
      has, more GPUs on one PCIe root than a root has, more MIG slices of one GPU than it can
      be cut into, a GPU model nobody has;
    - list-attribute stress: devices with 64 extra attributes, a claim of eight requests with
      eight selectors each (long ``in`` lists) and constraints over several attributes.
    """
    cluster = generate_cluster(nodes, mix={"h100": 1.0}, seed=seed)
    return [
        *_counter_backtracking(cluster, nodes),
        *_infeasible(cluster),
        _list_attribute_stress(nodes, seed),
    ]


def _counter_backtracking(cluster: list[dict[str, Any]], nodes: int) -> list[HardInput]:
    """MIG layouts where the first partition tried blocks a later one (one node fits, or none)."""
    names = [f"node-{n:04d}" for n in range(nodes)]
    parent = f"{DRIVER}/parentIndex"

    def slices_used(blocked: tuple[int, ...], last: tuple[int, ...]) -> list[dict[str, Any]]:
        held = []
        for n, node in enumerate(names):
            starts = last if n == nodes - 1 else blocked
            devices = [f"gpu-{g}-mig-1g10gb-{s}" for g in range(8) for s in starts]
            held.append(_held(f"held-{n:04d}", node, devices))
        return held

    # Each partition alone fits every GPU; all three fit only where one slice is taken, not two.
    layout = _claim(
        "mig-layout",
        [_mig("1g.10gb", name="a"), _mig("2g.20gb", name="b"), _mig("3g.40gb", name="c")],
        [_same(["a", "b", "c"], parent)],
        0.0,
        60.0,
    )
    return [
        HardInput(
            "counter-backtracking",
            "1g.10gb + 2g.20gb + 3g.40gb on one GPU while slices 5 and 6 of every GPU are "
            "taken, except on the last node where only slice 0 is: there 1g@1, 2g@2, 3g@4 fits",
            cluster,
            slices_used((5, 6), (0,)),
            layout,
            True,
        ),
        HardInput(
            "counter-backtracking-impossible",
            "the same layout while slices 5 and 6 of every GPU are taken: no GPU can hold it",
            cluster,
            slices_used((5, 6), (5, 6)),
            layout,
            False,
        ),
    ]


def _infeasible(cluster: list[dict[str, Any]]) -> list[HardInput]:
    """Claims no node can hold, which must be answered quickly as impossible."""
    parent = f"{DRIVER}/parentIndex"
    root = "resource.kubernetes.io/pcieRoot"
    unknown = f"device.attributes['{DRIVER}'].productName == 'NVIDIA B200'"
    return [
        HardInput(
            "infeasible-more-slices-than-a-gpu",
            "eight 1g.10gb slices of one GPU (a GPU has seven)",
            cluster,
            [],
            _claim("eight-slices", [_mig("1g.10gb", count=8)], [_same(["mig"], parent)], 0.0, 60.0),
            False,
        ),
        HardInput(
            "infeasible-five-gpus-one-root",
            "five GPUs behind one PCIe root (a root has four)",
            cluster,
            [],
            _claim("five-one-root", [_gpus(5)], [_same(["gpu"], root)], 0.0, 60.0),
            False,
        ),
        HardInput(
            "infeasible-sixteen-gpus",
            "sixteen GPUs on one node (a node has eight)",
            cluster,
            [],
            _claim("sixteen", [_gpus(16)], [], 0.0, 60.0),
            False,
        ),
        HardInput(
            "infeasible-unknown-model",
            "a GPU model no node has",
            cluster,
            [],
            _claim("unknown-model", [_gpus(1, unknown)], [], 0.0, 60.0),
            False,
        ),
    ]


STRESS_DOMAIN = "stress.example.com"


def _list_attribute_stress(nodes: int, seed: int) -> HardInput:
    rng = random.Random(seed)
    cluster = generate_cluster(nodes, mix={"h100": 1.0}, mig=False, seed=seed)
    zones = [f"zone-{i:02d}" for i in range(64)]
    for obj in cluster:
        if obj["kind"] != "ResourceSlice":
            continue
        for dev in obj["spec"]["devices"]:
            attrs = dev["attributes"]
            for a in range(32):
                attrs[f"{STRESS_DOMAIN}/int{a:02d}"] = {"int": rng.randrange(64)}
                attrs[f"{STRESS_DOMAIN}/str{a:02d}"] = {"string": rng.choice(zones)}
    # Each selector fails on about one device in sixty: most nodes pass the cheap checks, and
    # the search has to find eight distinct GPUs, one per request, four of them on one root.
    allowed = ", ".join(f"'{z}'" for z in zones[:63])
    requests = []
    for r in range(8):
        selectors = [
            f"device.attributes['{STRESS_DOMAIN}'].str{(r * 4 + k) % 32:02d} in [{allowed}]"
            for k in range(4)
        ] + [
            f"device.attributes['{STRESS_DOMAIN}'].int{(r * 4 + k) % 32:02d} < 63" for k in range(4)
        ]
        requests.append(_gpus(1, *selectors, name=f"r{r}"))
    names = [r["name"] for r in requests]
    claim = _claim(
        "list-attribute-stress",
        requests,
        [
            _same(names, "modelplane.dev/nvlinkDomain"),
            {"requests": names, "distinctAttribute": f"{DRIVER}/index"},
            _same(names[:4], "resource.kubernetes.io/pcieRoot"),
        ],
        0.0,
        60.0,
    )
    return HardInput(
        "list-attribute-stress",
        "64 extra attributes per GPU; eight requests with eight selectors each (63-value `in` "
        "lists) and match/distinct constraints over several attributes",
        cluster,
        [],
        claim,
        None,  # random attributes: the exact optimum tells whether some node qualifies
    )
