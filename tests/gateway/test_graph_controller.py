"""The Graph controller on a real store (both backends): Ready when every step can be called."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.control._wait import wait_until

from modelplane.api import validate
from modelplane.control import get_condition, set_condition
from modelplane.gateway import GraphController, graph_problems

NS = "team-a"
DIGEST = "sha256:" + "a" * 64


@pytest.fixture
def controller(store: Any) -> Iterator[GraphController]:
    c = GraphController(store)
    c.start()
    yield c
    assert c.stop(10), "the controller did not stop"


def _endpoint(store: Any, name: str, *, ready: bool = True) -> None:
    store.create(
        validate(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Endpoint",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"model": "m"},
            }
        )
    )
    _set_ready(store, name, ready)


def _set_ready(store: Any, name: str, ready: bool) -> None:
    obj = store.get("Endpoint", NS, name)
    status = dict(obj.get("status") or {})
    reason = "ReplicasReady" if ready else "NoReplicas"
    set_condition(status, "Ready", ready, reason, "no replica ready" if not ready else "ok")
    store.update_status({**obj, "status": status})


def _graph(store: Any, name: str, nodes: dict[str, Any]) -> None:
    store.create(
        validate(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Graph",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"nodes": nodes},
            }
        )
    )


def _wait_ready(store: Any, name: str, status: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        cond = get_condition(store.get("Graph", NS, name).get("status"), "Ready")
        return cond if cond and cond["status"] == status else None

    result: dict[str, Any] = wait_until(check, timeout=15, what=f"graph {name} Ready={status}")
    return result


CHAIN = {
    "root": {"type": "Sequence", "steps": [{"node": "polish"}]},
    "polish": {
        "type": "Sequence",
        "steps": [{"endpoint": "draft"}, {"endpoint": "smollm2-polish"}],
    },
}


def test_a_graph_whose_endpoints_exist_and_are_ready_is_ready(
    store: Any, controller: GraphController
) -> None:
    _endpoint(store, "draft")
    _endpoint(store, "smollm2-polish")
    _graph(store, "chain", CHAIN)
    cond = _wait_ready(store, "chain", "True")
    graph = store.get("Graph", NS, "chain")
    assert cond["reason"] == "StepsReady"
    assert graph["status"]["observedGeneration"] == graph["metadata"]["generation"]


def test_a_missing_endpoint_is_named_then_its_creation_makes_the_graph_ready(
    store: Any, controller: GraphController
) -> None:
    # given a graph whose second step of node polish names no endpoint
    _endpoint(store, "draft")
    _graph(store, "chain", CHAIN)
    cond = _wait_ready(store, "chain", "False")
    assert cond["reason"] == "EndpointNotFound"
    assert cond["message"] == "step 2 of node polish: endpoint smollm2-polish does not exist"
    # when the endpoint is created, not yet ready
    _endpoint(store, "smollm2-polish", ready=False)
    wait_until(
        lambda: (
            (get_condition(store.get("Graph", NS, "chain")["status"], "Ready") or {}).get("reason")
            == "EndpointNotReady"
        ),
        timeout=15,
        what="the graph to see the new endpoint",
    )
    # and then becomes ready, then the graph is ready: the Endpoint watch re-reconciled it
    _set_ready(store, "smollm2-polish", True)
    _wait_ready(store, "chain", "True")

    # and each transition was recorded as an Event (recorded after its status write: wait for it)
    def reasons() -> set[str]:
        events = store.list("Event", NS).items
        return {e["reason"] for e in events if e["involvedObject"]["name"] == "chain"}

    wait_until(
        lambda: {"EndpointNotFound", "EndpointNotReady", "StepsReady"} <= reasons(),
        timeout=15,
        what="an Event for each transition",
    )


def test_an_endpoint_that_stops_being_ready_makes_the_graph_not_ready(
    store: Any, controller: GraphController
) -> None:
    _endpoint(store, "draft")
    _endpoint(store, "smollm2-polish")
    _graph(store, "chain", CHAIN)
    _wait_ready(store, "chain", "True")
    _set_ready(store, "draft", False)
    cond = _wait_ready(store, "chain", "False")
    assert (
        cond["message"] == "step 1 of node polish: endpoint draft is not Ready (no replica ready)"
    )


def test_status_is_written_only_when_it_changes(store: Any, controller: GraphController) -> None:
    # given a ready graph
    _endpoint(store, "draft")
    _endpoint(store, "smollm2-polish")
    _graph(store, "chain", CHAIN)
    _wait_ready(store, "chain", "True")
    version = store.get("Graph", NS, "chain")["metadata"]["resourceVersion"]
    # when an endpoint it calls changes without changing the graph's readiness, and a later
    # change that the controller must also process is observed
    _set_ready(store, "draft", True)
    _endpoint(store, "unrelated")
    _graph(store, "witness", {"root": {"type": "Sequence", "steps": [{"endpoint": "draft"}]}})
    _wait_ready(store, "witness", "True")
    # then the ready graph's status was not rewritten
    assert store.get("Graph", NS, "chain")["metadata"]["resourceVersion"] == version


def test_cycles_and_missing_nodes_are_named() -> None:
    # the API refuses these on create, so they are checked on the spec directly
    spec = {
        "nodes": {
            "root": {"type": "Sequence", "steps": [{"node": "a"}]},
            "a": {"type": "Sequence", "steps": [{"node": "b"}]},
            "b": {"type": "Sequence", "steps": [{"node": "a"}, {"node": "ghost"}]},
        }
    }
    problems = graph_problems(spec, lambda _ns, _name: None, NS)
    assert ("NodeNotFound", "step 2 of node b: node ghost does not exist") in problems
    assert ("Cycle", "nodes a -> b -> a form a cycle") in problems
