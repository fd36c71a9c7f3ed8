"""NodePools on a real store: nodes added for unschedulable claims, removed once empty.

The real scheduling controller places the claims; the NodePool controller adds simulated nodes
(a Node and its ResourceSlice, published as the simulated driver does) and removes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.control._wait import wait_until

from modelplane.api import NODEPOOL_LABEL, validate
from modelplane.api.errors import Invalid
from modelplane.autoscaling import NodePoolController, PoolNode, nodes_to_add, nodes_to_remove
from modelplane.control import Controller, get_condition
from modelplane.scheduling import ResourceClaimController
from modelplane.store import Store

CLASS = {
    "apiVersion": "resource.k8s.io/v1",
    "kind": "DeviceClass",
    "metadata": {"name": "gpu.nvidia.com"},
    "spec": {
        "selectors": [
            {
                "cel": {
                    "expression": "device.driver == 'gpu.nvidia.com' &&"
                    " device.attributes['gpu.nvidia.com'].type == 'gpu'"
                }
            }
        ]
    },
}


def _pool(name: str = "h100", **spec: Any) -> dict[str, Any]:
    return validate(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "NodePool",
            "metadata": {"name": name},
            "spec": {
                "deviceClassName": "gpu.nvidia.com",
                "template": {"devices": 4, "attributes": {"type": "gpu", "productName": "H100"}},
                "limits": {"nodes": 3},
                "pricePerHour": 40.0,
                "consolidateAfter": "2s",
                **spec,
            },
        }
    )


def _claim(name: str, count: int) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "devices": {
                "requests": [
                    {
                        "name": "gpu",
                        "exactly": {"deviceClassName": CLASS["metadata"]["name"], "count": count},
                    }
                ]
            }
        },
    }


@pytest.fixture
def controllers(store: Store) -> Iterator[list[Controller]]:
    running: list[Controller] = [
        ResourceClaimController(store, retry=(0.05, 0.5), deadline_ms=10_000),
        NodePoolController(store),
    ]
    for c in running:
        c.start()
    yield running
    for c in running:
        assert c.stop(10)


def _pool_nodes(store: Store) -> list[dict[str, Any]]:
    return [
        n
        for n in store.list("Node").items
        if (n["metadata"].get("labels") or {}).get(NODEPOOL_LABEL) == "h100"
    ]


def _allocated(store: Store, name: str) -> dict[str, Any] | None:
    status = store.get("ResourceClaim", "default", name).get("status") or {}
    return status if status.get("allocation") else None


def test_pool_adds_a_node_for_an_unschedulable_claim_and_removes_it_once_empty(
    store: Store, controllers: list[Controller]
) -> None:
    # given a DeviceClass, no node offering it, and a NodePool of 4-GPU nodes for it
    store.create(CLASS)
    store.create(_pool())
    # when two claims for 3 GPUs each are created (unschedulable: no node has any)
    store.create(_claim("train", 3))
    store.create(_claim("tune", 3))
    # then the pool adds two nodes (a claim's devices come from one node: 3 + 3 do not share 4)
    # and the scheduler places both claims on them
    for name in ("train", "tune"):
        status = wait_until(lambda n=name: _allocated(store, n), timeout=60, what="allocation")
        assert len(status["allocation"]["devices"]["results"]) == 3
    nodes = _pool_nodes(store)
    assert len(nodes) == 2
    assert all(n["metadata"]["labels"]["modelplane.dev/simulated"] == "true" for n in nodes)
    slices = [
        s
        for s in store.list("ResourceSlice").items
        if s["spec"].get("nodeName") in {n["metadata"]["name"] for n in nodes}
    ]
    assert sum(len(s["spec"]["devices"]) for s in slices) == 4 * len(nodes)
    pool = wait_until(
        lambda: (p := store.get("NodePool", "", "h100")).get("status", {}).get("nodeCount") and p,
        what="pool status",
    )
    ready = get_condition(pool["status"], "Ready")
    assert ready is not None and ready["status"] == "True"
    assert pool["status"]["costPerHour"] == 40.0 * pool["status"]["nodeCount"]
    events = [e for e in store.list("Event").items if e["reason"] == "NodeAdded"]
    assert len(events) >= 1
    # when the claim goes away, the nodes are empty: after consolidateAfter they are removed
    store.delete("ResourceClaim", "default", "train")
    store.delete("ResourceClaim", "default", "tune")
    wait_until(lambda: _pool_nodes(store) == [], timeout=60, what="empty nodes removed")
    assert [
        s
        for s in store.list("ResourceSlice").items
        if s["spec"].get("nodeName") in {n["metadata"]["name"] for n in nodes}
    ] == []
    wait_until(
        lambda: store.get("NodePool", "", "h100")["status"]["nodeCount"] == 0, what="status 0"
    )


def test_pool_stops_at_its_limit_and_says_so(store: Store, controllers: list[Controller]) -> None:
    store.create(CLASS)
    store.create(_pool(limits={"nodes": 1}))
    store.create(_claim("a", 4))
    store.create(_claim("b", 4))
    wait_until(
        lambda: (
            (
                get_condition(store.get("NodePool", "", "h100").get("status") or {}, "Ready") or {}
            ).get("reason")
            == "LimitReached"
        ),
        timeout=60,
        what="LimitReached",
    )
    assert len(_pool_nodes(store)) == 1


def test_add_and_remove_decisions() -> None:
    empty = PoolNode("n1", 4, 0, 100.0)
    busy = PoolNode("n2", 4, 3, None)
    # claims of 3, 2 and 1: the 3 fills n1, the 1 fits n2's free device, the 2 needs a new node
    assert nodes_to_add([3, 2, 1], [empty, busy], 4, None, None) == (1, None)
    assert nodes_to_add([3, 2, 1], [empty, busy], 4, 2, None) == (0, "limits.nodes (2)")
    assert nodes_to_add([4] * 5, [], 4, None, 8) == (2, "limits.devices (8)")
    assert nodes_to_add([3], [empty], 4, None, None) == (0, None)
    # a claim larger than a node is left out: no node of the pool could hold it
    assert nodes_to_add([5], [], 4, None, None) == (0, None)
    assert nodes_to_remove([empty, busy], 0, 129.0, 30.0) == []
    assert nodes_to_remove([empty, busy], 0, 130.0, 30.0) == ["n1"]
    assert nodes_to_remove([empty, busy], 2, 130.0, 30.0) == []


def test_nodepool_rejects_bad_input_naming_the_field() -> None:
    with pytest.raises(Invalid) as exc:
        _pool(template={"devices": 0})
    assert "spec.template.devices" in str(exc.value)
    with pytest.raises(Invalid) as exc:
        _pool(consolidateAfter="soon")
    assert "spec.consolidateAfter" in str(exc.value)
