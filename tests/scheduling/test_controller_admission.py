"""Queues, gangs, preemption and cordoned nodes in the running scheduling controller (real store)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess

from modelplane.api import validate
from modelplane.api.errors import NotFound
from modelplane.control import Controller, get_condition
from modelplane.drivers import NODE_API_VERSION, file_publication, publish
from modelplane.scheduling import JobClaimController, ResourceClaimController
from modelplane.sim import generate_cluster
from modelplane.store import Store

from . import _dra
from ._admission import RACK, gpu_quota, job, queue, rack_cluster

NS = "team-a"


def _publish(store: Store, objs: list[dict[str, Any]]) -> None:
    for o in objs:
        if o["kind"] == "Node":
            o["apiVersion"] = NODE_API_VERSION
    publish(store, file_publication(objs, "test-cluster"))


def _claim(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
        "spec": {
            "devices": {
                "requests": [
                    {"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 1}}
                ]
            }
        },
    }


def _status(store: Store, kind: str, name: str) -> dict[str, Any]:
    return dict(store.get(kind, NS, name).get("status") or {})


def _allocation(store: Store, name: str) -> dict[str, Any] | None:
    try:
        alloc = _status(store, "ResourceClaim", name).get("allocation")
    except NotFound:
        return None
    return dict(alloc) if alloc else None


def _condition(store: Store, kind: str, name: str, type_: str) -> dict[str, Any] | None:
    return get_condition(_status(store, kind, name), type_)


def _false(store: Store, kind: str, name: str, type_: str) -> dict[str, Any] | None:
    cond = _condition(store, kind, name, type_)
    return cond if cond is not None and cond["status"] == "False" else None


def _node(alloc: dict[str, Any]) -> str:
    return str(alloc["devices"]["results"][0]["pool"])


@pytest.fixture
def controllers(store: Store) -> Iterator[list[Controller]]:
    running: list[Controller] = [
        ResourceClaimController(store, retry=(0.05, 0.5)),
        JobClaimController(store),
    ]
    for c in running:
        c.start()
    yield running
    for c in running:
        assert c.stop(10)


def test_gang_job_with_required_rack_lands_in_one_rack_or_not_at_all(
    store: Store, controllers: list[Controller]
) -> None:
    # given two racks of two nodes with four GPUs each
    _publish(store, rack_cluster({"r1": 2, "r2": 2}, gpus=4))
    racks = {n["metadata"]["name"]: n["metadata"]["labels"][RACK] for n in store.list("Node").items}
    # when a gang Job of two replicas x four GPUs, required in one rack, is created
    store.create(validate(job("pair", 2, 4, required="rack")))
    # then both replicas are allocated in the same rack, and the Job says where
    allocs = [
        wait_until(partial(_allocation, store, f"pair-claim-{i}"), what=f"replica {i}")
        for i in range(2)
    ]
    assert len({racks[_node(a)] for a in allocs}) == 1
    rack = racks[_node(allocs[0])]
    cond = wait_until(
        lambda: (c := _condition(store, "Job", "pair", "Admitted")) and c["status"] == "True" and c,
        what="the Job admitted",
    )
    assert cond["message"] == f"all 2 replicas in rack {rack}"
    job_status = _status(store, "Job", "pair")
    assert (
        job_status["observedGeneration"] == store.get("Job", NS, "pair")["metadata"]["generation"]
    )
    # when a gang of three replicas x four GPUs needs one rack (each rack has two nodes)
    store.create(validate(job("trio", 3, 4, required="rack")))
    # then no replica gets devices, and the Job says why
    why = wait_until(lambda: _false(store, "Job", "trio", "Admitted"), what="trio refused")
    assert why["reason"] == "Unschedulable"
    assert why["message"].startswith("gang of 3 replicas: no rack has room for 3 replicas")
    assert all(_allocation(store, f"trio-claim-{i}") is None for i in range(3))


def test_queue_at_its_quota_leaves_a_claim_pending_naming_queue_and_quota(
    store: Store, controllers: list[Controller]
) -> None:
    # given four free GPUs and a queue with a nominal quota of one GPU
    _publish(store, rack_cluster({"r1": 1}, gpus=4))
    store.create(validate(queue("small", [gpu_quota(1)])))
    store.create(_claim("first", {"modelplane.dev/queue": "small"}))
    wait_until(lambda: _allocation(store, "first"), what="the first claim")
    # when a second claim waits in the same queue
    store.create(_claim("second", {"modelplane.dev/queue": "small"}))
    # then it stays pending, and the reason names the queue and its quota
    cond = wait_until(lambda: _false(store, "ResourceClaim", "second", "Allocated"), what="pending")
    assert cond["reason"] == "QuotaExceeded"
    assert cond["message"] == (
        "queue team-a/small: gpu.nvidia.com: 1 in use + 1 requested exceeds nominal quota 1"
    )
    assert _allocation(store, "second") is None


def test_higher_priority_claim_preempts_a_lower_one_in_its_queue(
    store: Store, controllers: list[Controller]
) -> None:
    # given a queue of one GPU that preempts lower priority work, and a low priority claim in it
    _publish(store, rack_cluster({"r1": 1}, gpus=2))
    store.create(validate(queue("q", [gpu_quota(1)], within_queue="LowerPriority")))
    store.create(_claim("low", {"modelplane.dev/queue": "q", "modelplane.dev/priority": "0"}))
    wait_until(lambda: _allocation(store, "low"), what="the low priority claim")
    # when a higher priority claim arrives in the same queue
    store.create(_claim("high", {"modelplane.dev/queue": "q", "modelplane.dev/priority": "5"}))
    # then it is allocated, and the victim lost its devices and says who took them
    wait_until(lambda: _allocation(store, "high"), what="the high priority claim")
    cond = wait_until(lambda: _false(store, "ResourceClaim", "low", "Admitted"), what="preempted")
    assert cond["reason"] == "Preempted"
    assert cond["message"].startswith("preempted by team-a/high (priority 5) in queue team-a/q")
    assert _allocation(store, "low") is None
    events = wait_until(
        lambda: [
            e
            for e in store.list("Event", NS).items
            if e["involvedObject"]["name"] == "low" and e["reason"] == "Preempted"
        ],
        what="the Preempted event",
    )
    assert events[0]["type"] == "Warning" and "team-a/high" in events[0]["message"]


def test_cordoned_node_keeps_its_claims_and_gets_nothing_new(
    store: Store, controllers: list[Controller]
) -> None:
    # given two nodes with one GPU each and a claim on one of them
    objs = generate_cluster(2, gpus_per_node=1, mix={"h100": 1.0}, mig=False)
    publish(store, file_publication(objs, "test-cluster"))
    store.create(_claim("running"))
    busy = _node(wait_until(lambda: _allocation(store, "running"), what="the first claim"))
    # when its node is cordoned
    node = store.get("Node", "", busy)
    node["spec"] = {**(node.get("spec") or {}), "unschedulable": True}
    store.update(node)
    # and two more claims arrive after the cordon
    store.create(_claim("next"))
    nxt = _node(wait_until(lambda: _allocation(store, "next"), what="the next claim"))
    store.create(_claim("last"))
    # then the new claim went to the other node, the last one waits, and the first stays put
    assert nxt != busy
    cond = wait_until(lambda: _false(store, "ResourceClaim", "last", "Allocated"), what="pending")
    assert "1 node is cordoned (spec.unschedulable)" in cond["message"]
    alloc = _allocation(store, "running")
    assert alloc is not None and _node(alloc) == busy


def test_up_with_inventory_publishes_nodes_and_slices(tmp_path: Path) -> None:
    # given a simulated cluster file of three nodes
    from click.testing import CliRunner

    from modelplane.cli import cli

    out = CliRunner().invoke(cli, ["sim", "cluster", "--nodes", "3"])
    assert out.exit_code == 0, out.output
    path = tmp_path / "cluster.yaml"
    path.write_text(out.stdout)
    # when modelplane up starts with --inventory
    up = UpProcess(tmp_path / "home", extra=["--inventory", str(path)]).start()
    try:
        # then the API lists the three Nodes and their ResourceSlices
        nodes = httpx.get(f"{up.url}/apis/modelplane.dev/v1alpha1/nodes").json()["items"]
        slices = httpx.get(f"{up.url}/apis/resource.k8s.io/v1/resourceslices").json()["items"]
    finally:
        up.stop()
    racked = {n["metadata"]["name"] for n in nodes if RACK in n["metadata"].get("labels", {})}
    assert len(racked) == 3
    assert racked <= {s["spec"]["nodeName"] for s in slices}


def test_a_queued_consumers_claims_are_admitted_together_on_the_node_where_both_fit(
    store: Store, controllers: list[Controller]
) -> None:
    # Given node-a with one GPU, node-b with four, and a queue with room for all five,
    store.create(_dra.device_class())
    store.create(_dra.node_slice("node-a", [_dra.gpu("gpu-0")]))
    store.create(_dra.node_slice("node-b", [_dra.gpu(f"gpu-{i}") for i in range(4)]))
    store.create(validate(queue("q", [gpu_quota(5)])))
    together = {
        "modelplane.dev/queue": "q",
        "modelplane.dev/consumer": "worker-0",
        "modelplane.dev/consumer-claims": "2",
    }
    # when one consumer's claims for one GPU and for three GPUs wait in the queue,
    small = _claim("worker-0-small", together)
    store.create(small)
    large = _claim("worker-0-large", together)
    large["spec"]["devices"]["requests"][0]["exactly"]["count"] = 3
    store.create(large)
    # then both are admitted on node-b, the one node that holds them together.
    got = [
        wait_until(partial(_allocation, store, n), what=n)
        for n in ("worker-0-small", "worker-0-large")
    ]
    assert {_node(a) for a in got} == {"node-b"}
    cond = _condition(store, "ResourceClaim", "worker-0-large", "Admitted")
    assert cond is not None and cond["status"] == "True"
