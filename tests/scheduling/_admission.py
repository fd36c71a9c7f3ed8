"""Builders for the queue, gang and preemption tests: racks of GPU nodes, Queues, Jobs."""

from __future__ import annotations

from typing import Any

from modelplane.scheduling import Admission, Inventory, Workload, workloads_from

from ._dra import claim, device_class, exactly, gpu, node_slice

RACK = "topology.modelplane.dev/rack"
BLOCK = "topology.modelplane.dev/block"


def rack_cluster(racks: dict[str, int], gpus: int = 8) -> list[dict[str, Any]]:
    """Nodes named ``<rack>-n<i>`` with ``gpus`` GPUs each, racks in one block."""
    objs: list[dict[str, Any]] = [device_class()]
    for rack, nodes in racks.items():
        for i in range(nodes):
            name = f"{rack}-n{i}"
            objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": {"kubernetes.io/hostname": name, RACK: rack, BLOCK: "b0"},
                    },
                }
            )
            devices = [gpu(f"gpu-{g}", root=f"{name}-pci{g // 4}") for g in range(gpus)]
            objs.append(node_slice(name, devices))
    return objs


def inventory(objs: list[dict[str, Any]]) -> Inventory:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for o in objs:
        kinds.setdefault(o["kind"], []).append(o)
    return Inventory.from_objects(
        kinds["ResourceSlice"], kinds["DeviceClass"], kinds.get("Node", [])
    )


def queue(
    name: str,
    quotas: list[dict[str, Any]],
    cohort: str | None = None,
    weight: int = 1,
    within_queue: str = "Never",
    reclaim: str = "Never",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "quotas": quotas,
        "weight": weight,
        "preemption": {"withinQueue": within_queue, "reclaimWithinCohort": reclaim},
    }
    if cohort:
        spec["cohort"] = cohort
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Queue",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": spec,
    }


def gpu_quota(
    nominal: int, borrowing: int | None = None, lending: int | None = None
) -> dict[str, Any]:
    q: dict[str, Any] = {"deviceClass": "gpu.nvidia.com", "nominal": nominal}
    if borrowing is not None:
        q["borrowingLimit"] = borrowing
    if lending is not None:
        q["lendingLimit"] = lending
    return q


def queued_claim(name: str, gpus: int, queue_name: str | None, priority: int = 0) -> Workload:
    c = claim(name, [exactly(count=gpus)])
    annotations: dict[str, str] = {"modelplane.dev/priority": str(priority)}
    if queue_name:
        annotations["modelplane.dev/queue"] = queue_name
    c["metadata"]["annotations"] = annotations
    return workloads_from(c)[0]


def job(
    name: str,
    replicas: int,
    gpus: int,
    *,
    queue_name: str | None = None,
    gang: bool = True,
    required: str | None = None,
    preferred: str | None = None,
    priority: int = 0,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "gang": gang,
        "priority": priority,
        "claim": {"requests": [exactly(count=gpus)]},
    }
    if queue_name:
        spec["queue"] = queue_name
    if required or preferred:
        spec["topology"] = {"required": required} if required else {"preferred": preferred}
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": spec,
    }


def gang(obj: dict[str, Any]) -> Workload:
    (w,) = workloads_from(obj)
    return w


def racks_of(admission: Admission, key: str) -> set[str]:
    running = admission.running[key]
    return {admission.inventory.nodes[r.node].rack for r in running.placement.results}
