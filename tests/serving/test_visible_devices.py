"""A replica sees only the devices allocated to it: ``CUDA_VISIBLE_DEVICES`` and
``NVIDIA_VISIBLE_DEVICES`` from its claim's allocation, and no GPU at all without a claim, whatever
the node agent's own environment says. Real replica processes on a simulated cluster's GPUs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.control._wait import wait_until

from modelplane.api import validate
from modelplane.drivers import file_publication, publish
from modelplane.scheduling import EndpointClaimController, ResourceClaimController
from modelplane.serving import SIMULATED_ANNOTATION, NodeAgent, visible_devices
from modelplane.sim import generate_cluster
from modelplane.store import Store, open_store

DIGEST = "sha256:" + "a" * 64
GPU = {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}]}


def test_visible_devices_lists_indices_and_uuids_and_nothing_without_a_gpu() -> None:
    gpus = [
        {"index": {"int": 3}, "uuid": {"string": "GPU-a"}},
        {"index": {"int": 5}, "uuid": {"string": "GPU-b"}},
    ]
    assert dict(visible_devices(gpus)) == {
        "CUDA_VISIBLE_DEVICES": "3,5",
        "NVIDIA_VISIBLE_DEVICES": "GPU-a,GPU-b",
    }
    cpu_share = [{"type": {"string": "cpu"}}]
    for none in ([], cpu_share):
        assert dict(visible_devices(none)) == {
            "CUDA_VISIBLE_DEVICES": "",
            "NVIDIA_VISIBLE_DEVICES": "void",
        }


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    s = open_store(sqlite_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def agent(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NodeAgent]:
    # given a node of two simulated GPUs, the claim controllers, and a node agent whose own
    # environment would show every GPU
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "all")
    objs = generate_cluster(1, gpus_per_node=2, mix={"h100": 1.0}, mig=False)
    publish(store, file_publication(objs, "test-cluster"))
    controllers = [
        ResourceClaimController(store, retry=(0.05, 0.5)),
        EndpointClaimController(store),
    ]
    for c in controllers:
        c.start()
    node_agent = NodeAgent(store, "this-node", tmp_path / "agent-home")
    node_agent.start()
    try:
        yield node_agent
    finally:
        assert node_agent.stop(20)
        for c in controllers:
            assert c.stop(10)


def _endpoint(store: Store, name: str, devices: dict[str, Any] | None) -> None:
    spec: dict[str, Any] = {"model": "m", "replicas": {"min": 1, "max": 1}}
    if devices is not None:
        spec["devices"] = devices
    meta = {"name": name, "namespace": "default", "annotations": {SIMULATED_ANNOTATION: "true"}}
    store.create(
        validate(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Endpoint",
                "metadata": meta,
                "spec": spec,
            }
        )
    )


def _environment_of_replica(store: Store, endpoint: str) -> dict[str, str] | None:
    """The environment of the process serving ``endpoint``'s ready replica (found by its port)."""
    replicas = (store.get("Endpoint", "default", endpoint).get("status") or {}).get("replicas")
    ready = [r for r in replicas or [] if r.get("ready")]
    if not ready:
        return None
    port = int(str(ready[0]["url"]).rsplit(":", 1)[1].split("/", 1)[0])
    for child in psutil.Process().children(recursive=True):
        try:
            if any(c.laddr and c.laddr.port == port for c in child.net_connections("tcp")):
                return dict(child.environ())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def test_a_replica_sees_its_allocated_gpu_and_one_without_a_claim_sees_none(
    store: Store, agent: NodeAgent
) -> None:
    store.create(
        validate(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Model",
                "metadata": {"name": "m", "namespace": "default"},
                "spec": {
                    "versions": [
                        {"name": "v1", "source": "x", "format": "safetensors", "digest": DIGEST}
                    ]
                },
            }
        )
    )
    # when one Endpoint claims a GPU and another claims none
    _endpoint(store, "with-gpu", GPU)
    _endpoint(store, "cpu-only", None)
    with_gpu = wait_until(
        lambda: _environment_of_replica(store, "with-gpu"), timeout=60, what="the GPU replica"
    )
    cpu_only = wait_until(
        lambda: _environment_of_replica(store, "cpu-only"), timeout=60, what="the CPU replica"
    )
    # then the first sees exactly the GPU its claim was allocated, by index and by UUID
    claim = store.list("ResourceClaim", "default").items[0]
    device = claim["status"]["allocation"]["devices"]["results"][0]["device"]
    index = device.removeprefix("gpu-")
    assert with_gpu["CUDA_VISIBLE_DEVICES"] == index
    assert with_gpu["NVIDIA_VISIBLE_DEVICES"].startswith("GPU-")
    # and the second sees none, although the node agent's environment showed them all
    assert cpu_only["CUDA_VISIBLE_DEVICES"] == ""
    assert cpu_only["NVIDIA_VISIBLE_DEVICES"] == "void"
