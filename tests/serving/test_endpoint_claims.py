"""Every replica of an Endpoint with devices gets its claim: canaries, scaling, scale-to-zero.

A real SQLite store, the claim and allocation controllers, and a node agent running simulated
replicas on a simulated cluster's GPUs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.control._wait import wait_until

from modelplane.api import validate
from modelplane.drivers import file_publication, publish
from modelplane.gateway import DEMAND_ANNOTATION
from modelplane.scheduling import EndpointClaimController, ResourceClaimController
from modelplane.serving import SIMULATED_ANNOTATION, NodeAgent
from modelplane.sim import generate_cluster
from modelplane.store import Store, open_store

DIGEST = "sha256:" + "a" * 64


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    s = open_store(sqlite_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def platform(store: Store, tmp_path: Path) -> Iterator[NodeAgent]:
    # given a cluster of three nodes with one GPU each, the claim controllers and a node agent
    objs = generate_cluster(3, gpus_per_node=1, mix={"h100": 1.0}, mig=False)
    publish(store, file_publication(objs, "test-cluster"))
    controllers = [
        ResourceClaimController(store, retry=(0.05, 0.5)),
        EndpointClaimController(store),
    ]
    for c in controllers:
        c.start()
    agent = NodeAgent(store, "this-node", tmp_path / "agent-home")
    agent.start()
    try:
        yield agent
    finally:
        assert agent.stop(20)
        for c in controllers:
            assert c.stop(10)


def _apply(store: Store, replicas: dict[str, Any], traffic: list[dict[str, Any]] | None) -> None:
    store.create(
        validate(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Model",
                "metadata": {"name": "m", "namespace": "default"},
                "spec": {
                    "versions": [
                        {"name": v, "source": "x", "format": "safetensors", "digest": DIGEST}
                        for v in ("v1", "v2")
                    ]
                },
            }
        )
    )
    spec: dict[str, Any] = {
        "model": "m",
        "replicas": replicas,
        "devices": {
            "requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}]
        },
    }
    if traffic is not None:
        spec["traffic"] = traffic
    store.create(
        validate(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Endpoint",
                "metadata": {
                    "name": "chat",
                    "namespace": "default",
                    "annotations": {SIMULATED_ANNOTATION: "true"},
                },
                "spec": spec,
            }
        )
    )


def _ready_versions(store: Store) -> list[str] | None:
    replicas = (store.get("Endpoint", "default", "chat").get("status") or {}).get("replicas")
    ready = sorted(str(r["version"]) for r in replicas or [] if r.get("ready"))
    return ready or None


def _allocated_claims(store: Store) -> list[str]:
    return sorted(
        c["metadata"]["name"]
        for c in store.list("ResourceClaim", "default").items
        if (c.get("status") or {}).get("allocation")
    )


def test_a_canarys_second_version_gets_its_own_claim_and_both_versions_serve(
    store: Store, platform: NodeAgent
) -> None:
    # when an Endpoint with one replica per version splits traffic between two versions
    _apply(
        store,
        {"min": 1, "max": 1},
        [{"version": "v1", "weight": 50}, {"version": "v2", "weight": 50}],
    )
    # then each version's replica gets a claim of its own, allocated, and both serve
    wait_until(lambda: _ready_versions(store) == ["v1", "v2"], timeout=60, what="a ready v1 and v2")
    assert _allocated_claims(store) == ["chat-devices-0", "chat-devices-1"]
    assert store.get("Endpoint", "default", "chat")["status"]["desiredReplicas"] == 2


def test_scaling_from_one_to_three_replicas_claims_a_device_for_each(
    store: Store, platform: NodeAgent
) -> None:
    # given one ready replica
    _apply(store, {"min": 1, "max": 3}, None)
    wait_until(lambda: _ready_versions(store) == ["v2"], timeout=60, what="one ready replica")
    # when scaled to three
    store.patch("Endpoint", "default", "chat", {"spec": {"replicas": {"min": 3}}})
    # then three replicas serve, each on a claimed device
    wait_until(
        lambda: _ready_versions(store) == ["v2", "v2", "v2"], timeout=60, what="three replicas"
    )
    assert len(_allocated_claims(store)) == 3


def test_a_scaled_to_zero_endpoint_with_devices_claims_one_on_demand_and_none_before(
    store: Store, platform: NodeAgent
) -> None:
    # given a scale-to-zero Endpoint with devices: no replica, so no claim holds a GPU
    _apply(store, {"min": 0, "max": 1, "scaleToZero": True}, None)
    wait_until(
        lambda: (
            (store.get("Endpoint", "default", "chat").get("status") or {}).get("desiredReplicas")
            == 0
        ),
        what="the node agent to want no replica",
    )
    assert _allocated_claims(store) == []
    # when a request asks for it (the gateway's demand annotation)
    store.patch(
        "Endpoint",
        "default",
        "chat",
        {"metadata": {"annotations": {DEMAND_ANNOTATION: str(int(time.time()))}}},
    )
    # then a claim is made and allocated, and the replica starts
    wait_until(lambda: _ready_versions(store) == ["v2"], timeout=60, what="a replica on demand")
    assert _allocated_claims(store) == ["chat-devices-0"]
