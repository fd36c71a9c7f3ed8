"""The scheduling controller end to end on a real store: allocate, explain, release, re-place."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from tests.control._wait import wait_until as _wait_until

from modelplane.api import validate
from modelplane.control import Controller, get_condition
from modelplane.drivers import (
    Publication,
    cpu_device_class,
    cpu_pool,
    file_publication,
    publish,
)
from modelplane.scheduling import (
    AgentClaimController,
    EndpointClaimController,
    JobClaimController,
    ResourceClaimController,
)
from modelplane.sim import generate_cluster
from modelplane.store import Store

from . import _dra

GROUP = "modelplane.dev/v1alpha1"

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None], *, timeout: float = 60.0, what: str = "condition"
) -> T:
    """A generous deadline: the controllers run in threads on a machine that may be busy."""
    return _wait_until(check, timeout=timeout, what=what)


def _cluster(store: Store, nodes: int, gpus: int = 1) -> None:
    objs = generate_cluster(nodes, gpus_per_node=gpus, mix={"h100": 1.0}, mig=False)
    publish(store, file_publication(objs, "test-cluster"))


def _claim(name: str, count: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "default", **extra},
        "spec": {
            "devices": {
                "requests": [
                    {
                        "name": "gpu",
                        "exactly": {"deviceClassName": "gpu.nvidia.com", "count": count},
                    }
                ]
            }
        },
    }


def _status(store: Store, name: str) -> dict[str, Any]:
    return dict(store.get("ResourceClaim", "default", name).get("status") or {})


def _allocated(store: Store, name: str) -> dict[str, Any] | None:
    status = _status(store, name)
    return status if status.get("allocation") else None


def _results(status: dict[str, Any]) -> list[dict[str, Any]]:
    return list(status["allocation"]["devices"]["results"])


def _events(store: Store, name: str, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in store.list("Event", "default").items
        if e["involvedObject"]["name"] == name and e["reason"] == reason
    ]


@pytest.fixture
def controllers(store: Store) -> Iterator[list[Controller]]:
    running: list[Controller] = [
        # placement and explanations are checked here, not the decision bound: a busy machine
        # must not run a decision out of the 50 ms default (tests/scheduling/test_allocator_bounds.py)
        ResourceClaimController(store, retry=(0.05, 0.5), deadline_ms=10_000),
        EndpointClaimController(store),
        JobClaimController(store),
        AgentClaimController(store),
    ]
    for c in running:
        c.start()
    yield running
    for c in running:
        assert c.stop(10)


def test_pending_claim_gets_devices_named_exactly_as_in_the_slices(
    store: Store, controllers: list[Controller]
) -> None:
    # given a published cluster of two nodes with two GPUs each
    _cluster(store, 2, gpus=2)
    # when a claim for two GPUs is created
    store.create(_claim("pair", count=2))
    # then its status carries the Kubernetes allocation, naming published devices
    status = wait_until(lambda: _allocated(store, "pair"), what="allocation")
    results = _results(status)
    assert [r["request"] for r in results] == ["gpu", "gpu"]
    node = results[0]["pool"]
    published = {
        (s["spec"]["driver"], s["spec"]["pool"]["name"], d["name"])
        for s in store.list("ResourceSlice").items
        for d in s["spec"]["devices"]
    }
    assert {(r["driver"], r["pool"], r["device"]) for r in results} <= published
    terms = status["allocation"]["nodeSelector"]["nodeSelectorTerms"]
    assert terms[0]["matchFields"][0]["values"] == [node]
    cond = get_condition(status, "Allocated")
    assert cond is not None and cond["status"] == "True"
    wait_until(lambda: _events(store, "pair", "Allocated"), what="the event")
    validate(store.get("ResourceClaim", "default", "pair"))


def test_unschedulable_claim_explains_itself_aggregated_over_nodes(
    store: Store, controllers: list[Controller]
) -> None:
    # given three nodes with one GPU each
    _cluster(store, 3)
    # when a claim asks for four GPUs
    store.create(_claim("too-big", count=4))

    # then it is not allocated and says why, over all nodes
    def reason() -> str | None:
        cond = get_condition(_status(store, "too-big"), "Allocated")
        return cond["message"] if cond and cond["status"] == "False" else None

    # (the scheduler's views of slices and claims are separate watches: a first decision may see
    # fewer nodes, and the claim is decided again as the rest arrive, as in Kubernetes)
    expected = "0/3 nodes are available: 3 had fewer than 4 free devices"
    wait_until(
        lambda: (reason() or "").startswith(expected),
        what=f"an Allocated=False condition saying {expected!r}",
    )
    wait_until(lambda: _events(store, "too-big", "FailedScheduling"), what="the event")
    assert not _status(store, "too-big").get("allocation")


def test_deleting_a_claim_frees_its_device_for_a_waiting_claim(
    store: Store, controllers: list[Controller]
) -> None:
    # given one node with one GPU, held by a first claim, and a second claim waiting
    _cluster(store, 1)
    store.create(_claim("first"))
    first = _results(wait_until(lambda: _allocated(store, "first"), what="first allocation"))
    store.create(_claim("second"))
    wait_until(
        lambda: (
            (get_condition(_status(store, "second"), "Allocated") or {}).get("status") == "False"
        ),
        what="second to be unschedulable",
    )
    # when the first claim is deleted
    store.delete("ResourceClaim", "default", "first")
    # then the second gets the very device the first had
    second = _results(wait_until(lambda: _allocated(store, "second"), what="second allocation"))
    assert second[0]["device"] == first[0]["device"]
    assert second[0]["pool"] == first[0]["pool"]


def _taint(store: Store, pool: str, device: str) -> None:
    for s in store.list("ResourceSlice").items:
        if s["spec"]["pool"]["name"] != pool:
            continue
        for d in s["spec"]["devices"]:
            if d["name"] == device:
                d["taints"] = [{"key": "gpu.nvidia.com/xid", "value": "79", "effect": "NoExecute"}]
        store.update(s)


def test_noexecute_taint_re_places_the_claim_and_says_why(
    store: Store, controllers: list[Controller]
) -> None:
    # given two nodes with one GPU each and a claim placed on one of them
    _cluster(store, 2)
    store.create(_claim("serve"))
    before = _results(wait_until(lambda: _allocated(store, "serve"), what="allocation"))[0]
    # when its device is tainted NoExecute
    _taint(store, before["pool"], before["device"])
    # then the claim moves to the other node, and status and an Event explain it
    after_status = wait_until(
        lambda: (
            (s := _allocated(store, "serve")) and _results(s)[0]["pool"] != before["pool"] and s
        ),
        what="re-placement",
    )
    after = _results(after_status)[0]
    cond = get_condition(after_status, "Allocated")
    assert cond is not None and cond["reason"] == "Replaced"
    expected = (
        f"device {before['device']} on {before['pool']} was tainted NoExecute"
        f" (gpu.nvidia.com/xid=79); re-placed on {after['pool']}: {after['device']}"
    )
    assert cond["message"].startswith(expected)
    events = wait_until(lambda: _events(store, "serve", "Rescheduled"), what="the event")
    assert events[0]["message"] == cond["message"] and events[0]["type"] == "Warning"


def test_node_that_is_not_ready_has_its_claims_re_placed(
    store: Store, controllers: list[Controller]
) -> None:
    # given two nodes with one GPU each and a claim placed on one of them
    _cluster(store, 2)
    store.create(_claim("job"))
    before = _results(wait_until(lambda: _allocated(store, "job"), what="allocation"))[0]
    # when that node's Ready condition turns False
    node = store.get("Node", "", before["pool"])
    node["status"] = {
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Heartbeat", "message": "no heartbeat"}
        ]
    }
    store.update_status(node)
    # then the claim is re-placed on the other node
    after_status = wait_until(
        lambda: (s := _allocated(store, "job")) and _results(s)[0]["pool"] != before["pool"] and s,
        what="re-placement",
    )
    message = get_condition(after_status, "Allocated")["message"]  # type: ignore[index]
    assert message.startswith(f"node {before['pool']} is not Ready (no heartbeat); re-placed on")
    # and a new claim sees the node counted as not Ready
    store.create(_claim("more", count=1))
    store.create(_claim("even-more", count=1))

    def unschedulable() -> str | None:
        for name in ("more", "even-more"):
            cond = get_condition(_status(store, name), "Allocated")
            if cond and cond["status"] == "False":
                return str(cond["message"])
        return None

    assert "1 were not Ready" in wait_until(unschedulable, what="a waiting claim")


def test_removed_node_has_its_claims_released_and_waiting(
    store: Store, controllers: list[Controller]
) -> None:
    # given one node with one GPU and a claim on it
    _cluster(store, 1)
    store.create(_claim("lonely"))
    before = _results(wait_until(lambda: _allocated(store, "lonely"), what="allocation"))[0]
    # when the Node is deleted
    store.delete("Node", "", before["pool"])

    # then the claim loses its allocation, and an Event and its status say why
    events = wait_until(lambda: _events(store, "lonely", "Rescheduled"), what="eviction")
    assert events[0]["message"].startswith(
        f"node {before['pool']} was removed; released, waiting for devices"
    )
    assert not _status(store, "lonely").get("allocation")
    cond = get_condition(_status(store, "lonely"), "Allocated")
    assert cond is not None and cond["status"] == "False"
    assert "1 were removed" in cond["message"]


def test_claim_whose_owner_is_gone_is_deleted(store: Store, controllers: list[Controller]) -> None:
    # given a claim owned by an Endpoint that does not exist
    _cluster(store, 1)
    store.create(
        _claim(
            "orphan",
            ownerReferences=[
                {"apiVersion": GROUP, "kind": "Endpoint", "name": "ghost", "uid": "x"}
            ],
        )
    )
    # then the controller deletes it, and its device stays free for others
    wait_until(
        lambda: (
            not [c for c in store.list("ResourceClaim").items if c["metadata"]["name"] == "orphan"]
        ),
        what="the orphan to be deleted",
    )
    store.create(_claim("next"))
    wait_until(lambda: _allocated(store, "next"), what="allocation of the next claim")


def _endpoint(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Endpoint",
        "metadata": {"name": "chat", "namespace": "default"},
        "spec": {
            "model": "llama",
            "replicas": {"min": replicas, "max": 4},
            "devices": {
                "requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}]
            },
        },
    }


def _owned(store: Store, kind: str, name: str) -> list[dict[str, Any]]:
    return [
        c
        for c in store.list("ResourceClaim", "default").items
        if any(
            r["kind"] == kind and r["name"] == name
            for r in c["metadata"].get("ownerReferences") or ()
        )
    ]


def test_endpoint_replicas_get_owned_claims_that_are_allocated_and_go_with_it(
    store: Store, controllers: list[Controller]
) -> None:
    # given two nodes with one GPU each
    _cluster(store, 2)
    # when an Endpoint with two replicas and a device template is created
    endpoint = store.create(validate(_endpoint(2)))
    # then two claims owned by it are allocated, on different GPUs
    claims = wait_until(
        lambda: (cs := _owned(store, "Endpoint", "chat")) and len(cs) == 2 and cs,
        what="two claims",
    )
    assert sorted(c["metadata"]["name"] for c in claims) == ["chat-devices-0", "chat-devices-1"]
    assert all(
        c["metadata"]["ownerReferences"][0]["uid"] == endpoint["metadata"]["uid"] for c in claims
    )
    placed = [
        _results(
            wait_until(lambda n=c["metadata"]["name"]: _allocated(store, n), what="allocation")
        )[0]
        for c in claims
    ]
    assert len({(r["pool"], r["device"]) for r in placed}) == 2
    # when scaled down to one, the second claim goes
    # (a merge patch, as `kubectl patch` sends: the claim controller reports devicesAllocated in
    # the Endpoint's status meanwhile, so a read-modify-write of the whole object could conflict)
    store.patch("Endpoint", "default", "chat", {"spec": {"replicas": {"min": 1}}})
    wait_until(lambda: len(_owned(store, "Endpoint", "chat")) == 1, what="scale down")
    # and when the Endpoint is deleted, its claims go too
    store.delete("Endpoint", "default", "chat")
    wait_until(lambda: not _owned(store, "Endpoint", "chat"), what="claims deleted")


def test_job_replicas_get_one_owned_claim_each(store: Store, controllers: list[Controller]) -> None:
    # given one node with eight GPUs
    _cluster(store, 1, gpus=8)
    # when a Job of three replicas with two GPUs each is created
    job = {
        "apiVersion": GROUP,
        "kind": "Job",
        "metadata": {"name": "train", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "claim": {
                "requests": [
                    {"name": "gpus", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 2}}
                ]
            },
        },
    }
    store.create(validate(job))
    # then three claims exist, owned by the Job, and all are allocated on distinct GPUs
    wait_until(lambda: len(_owned(store, "Job", "train")) == 3, what="three claims")
    devices = set()
    for i in range(3):
        status = wait_until(lambda i=i: _allocated(store, f"train-claim-{i}"), what="allocation")
        devices |= {r["device"] for r in _results(status)}
    assert len(devices) == 6


def test_agent_worker_gets_a_share_of_a_host_through_the_scheduler(
    store: Store, controllers: list[Controller]
) -> None:
    # given a host published by the CPU driver: 4 cores, 8 GiB
    host = Publication(
        publisher="test.host-a",
        pools=[cpu_pool("host-a", cores=4, memory_bytes=8 << 30)],
        device_classes=[cpu_device_class()],
    )
    publish(store, host)
    # when an Agent asks for half a core and 256 MiB per worker
    agent = {
        "apiVersion": GROUP,
        "kind": "Agent",
        "metadata": {"name": "helper", "namespace": "default"},
        "spec": {"entrypoint": "pkg.mod:handler", "resources": {"cpu": "500m", "memory": "256Mi"}},
    }
    store.create(validate(agent))
    # then its worker claim, owned by the Agent, is allocated on that host's CPU device
    wait_until(lambda: len(_owned(store, "Agent", "helper")) == 1, what="the worker claim")
    status = wait_until(lambda: _allocated(store, "helper-worker-0"), what="allocation")
    (result,) = _results(status)
    assert (result["driver"], result["device"]) == ("cpu.modelplane.dev", "host")
    requests = store.get("ResourceClaim", "default", "helper-worker-0")["spec"]["devices"]
    assert requests["requests"][0]["exactly"]["capacity"]["requests"] == {
        "cpu": "500m",
        "memory": "256Mi",
    }
    # and deleting the Agent deletes its claim
    store.delete("Agent", "default", "helper")
    wait_until(lambda: not _owned(store, "Agent", "helper"), what="claim deleted")


def test_the_claims_of_one_consumer_are_placed_together_where_only_both_fit(
    store: Store, controllers: list[Controller]
) -> None:
    # Given node-a with one GPU and node-b with four,
    store.create(_dra.device_class())
    store.create(_dra.node_slice("node-a", [_dra.gpu("gpu-0")]))
    store.create(_dra.node_slice("node-b", [_dra.gpu(f"gpu-{i}") for i in range(4)]))
    together = {
        "annotations": {
            "modelplane.dev/consumer": "worker-0",
            "modelplane.dev/consumer-claims": "2",
        }
    }
    # when the first of the two claims of one consumer (one GPU) is created alone,
    store.create(_claim("worker-0-small", count=1, **together))
    # then it waits for its sibling instead of taking a GPU on its own,
    waiting = wait_until(
        lambda: get_condition(_status(store, "worker-0-small"), "Allocated"), what="waiting"
    )
    assert waiting["reason"] == "WaitingForClaims" and "1 of its 2 claims" in waiting["message"]
    assert _allocated(store, "worker-0-small") is None
    # and when the second (three GPUs, which only node-b has) is created,
    store.create(_claim("worker-0-large", count=3, **together))
    small = wait_until(lambda: _allocated(store, "worker-0-small"), what="the small claim")
    large = wait_until(lambda: _allocated(store, "worker-0-large"), what="the large claim")
    # then both are on node-b, the one node where they fit together, not split over two nodes.
    assert {r["pool"] for r in _results(small) + _results(large)} == {"node-b"}
    assert len({r["device"] for r in _results(small) + _results(large)}) == 4


def test_claims_of_one_consumer_that_fit_nowhere_together_say_so_and_hold_nothing(
    store: Store, controllers: list[Controller]
) -> None:
    # Given two nodes of two GPUs each,
    store.create(_dra.device_class())
    for node in ("node-a", "node-b"):
        store.create(_dra.node_slice(node, [_dra.gpu(f"gpu-{i}") for i in range(2)]))
    together = {
        "annotations": {
            "modelplane.dev/consumer": "worker-1",
            "modelplane.dev/consumer-claims": "2",
        }
    }
    # when one consumer's two claims ask for two GPUs each (four on one node),
    store.create(_claim("worker-1-a", count=2, **together))
    store.create(_claim("worker-1-b", count=2, **together))

    def refused() -> dict[str, Any] | None:
        cond = get_condition(_status(store, "worker-1-b"), "Allocated")
        return cond if cond and cond["reason"] == "Unschedulable" else None

    # then they are refused together, named in the reason, and neither holds GPUs alone.
    cond = wait_until(refused, what="the joint refusal")
    assert "consumer worker-1" in cond["message"]
    assert _allocated(store, "worker-1-a") is None and _allocated(store, "worker-1-b") is None
