"""A Node whose agent stops renewing its heartbeat lease is marked Ready=Unknown, and its claims
are placed on another node; a controller that just started gives every lease its grace first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.control._wait import wait_until

from modelplane.api import node_lease_name
from modelplane.control import Controller, Request, get_condition
from modelplane.scheduling import ResourceClaimController
from modelplane.scheduling.controllers._lifecycle import LOST, NodeLifecycleController
from modelplane.store import Store

from .test_controller import _allocated, _claim, _cluster, _events, _results


class _Clocks:
    """A wall clock and a monotonic clock the test moves."""

    def __init__(self, wall: float) -> None:
        self.wall = wall
        self.mono = 0.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def _ready(store: Store, node: str) -> dict[str, object]:
    """The Node's Ready condition ({} when it has none: an inventory's nodes have none)."""
    return get_condition(store.get("Node", "", node).get("status"), "Ready") or {}


def _lifecycle(store: Store, clocks: _Clocks, grace: float = 10.0) -> NodeLifecycleController:
    return NodeLifecycleController(
        store, grace=grace, clock=lambda: clocks.wall, monotonic=lambda: clocks.mono
    )


def test_a_lapsed_lease_marks_the_node_unknown_after_the_grace_and_a_renewal_lifts_it(
    store: Store,
) -> None:
    # given a node whose agent renewed its lease for 5 s
    _cluster(store, 1)
    node = store.list("Node").items[0]["metadata"]["name"]
    lease = store.acquire_lease(node_lease_name(node), node, 5.0)
    assert lease is not None
    clocks = _Clocks(lease.expires_at - 5.0)
    controller = _lifecycle(store, clocks)
    assert controller.reconcile(Request("", node)).requeue_after is not None
    # when the lease lapses, but the grace has not passed since it was renewed
    clocks.advance(6.0)
    controller.reconcile(Request("", node))
    assert _ready(store, node).get("status") != "Unknown"
    # then once the grace passed it is Unknown, saying why, with a Warning Event
    clocks.advance(5.0)
    controller.reconcile(Request("", node))
    cond = _ready(store, node)
    assert (cond["status"], cond["reason"]) == ("Unknown", LOST)
    assert "stopped renewing its lease" in str(cond["message"])
    events = [e for e in store.list("Event").items if e["involvedObject"]["name"] == node]
    assert [e["type"] for e in events if e["reason"] == LOST] == ["Warning"]
    # and when the agent renews again, the Node is Ready again
    renewed = store.acquire_lease(node_lease_name(node), node, 5.0)
    assert renewed is not None
    clocks.wall = renewed.expires_at - 4.0
    controller.reconcile(Request("", node))
    assert (_ready(store, node)["status"], _ready(store, node)["reason"]) == (
        "True",
        "NodeLeaseRenewed",
    )


def test_a_controller_that_just_started_gives_a_lapsed_lease_its_grace_first(
    store: Store,
) -> None:
    # given a lease that lapsed long ago (the platform was stopped, say)
    _cluster(store, 1)
    node = store.list("Node").items[0]["metadata"]["name"]
    lease = store.acquire_lease(node_lease_name(node), node, 1.0)
    assert lease is not None
    clocks = _Clocks(lease.expires_at + 3600)
    # when a new controller (a restart, a new leader) looks at it
    controller = _lifecycle(store, clocks)
    controller.reconcile(Request("", node))
    # then the node keeps its Ready until the grace passed on this controller's own clock
    assert _ready(store, node).get("status") != "Unknown"
    clocks.advance(9.0)
    controller.reconcile(Request("", node))
    assert _ready(store, node).get("status") != "Unknown"
    clocks.advance(2.0)
    controller.reconcile(Request("", node))
    assert _ready(store, node)["status"] == "Unknown"


def test_a_node_without_a_lease_is_not_watched(store: Store) -> None:
    # given a node published from an inventory: no agent renews for it
    _cluster(store, 1)
    node = store.list("Node").items[0]["metadata"]["name"]
    clocks = _Clocks(0.0)
    controller = _lifecycle(store, clocks)
    # when any time passes
    controller.reconcile(Request("", node))
    clocks.advance(3600.0)
    # then it keeps its Ready
    controller.reconcile(Request("", node))
    assert _ready(store, node).get("status") != "Unknown"


@pytest.fixture
def running(store: Store) -> Iterator[list[Controller]]:
    controllers: list[Controller] = [
        NodeLifecycleController(store, grace=0.5),
        ResourceClaimController(store, retry=(0.05, 0.5), deadline_ms=10_000),
    ]
    for c in controllers:
        c.start()
    yield controllers
    for c in controllers:
        assert c.stop(10)


def test_the_claims_of_a_node_whose_agent_stopped_renewing_move_to_another_node(
    store: Store, running: list[Controller]
) -> None:
    # given two nodes and a claim placed on one of them, whose agent renewed a short lease once
    _cluster(store, 2)
    store.create(_claim("serve"))
    before = _results(wait_until(lambda: _allocated(store, "serve"), what="allocation"))[0]
    lost = before["pool"]
    assert store.acquire_lease(node_lease_name(lost), lost, 0.5) is not None
    # when it renews no more (its machine went away)
    # then the Node turns Unknown and the claim is re-placed on the other node, saying why
    after = wait_until(
        lambda: (s := _allocated(store, "serve")) and _results(s)[0]["pool"] != lost and s,
        timeout=30,
        what="re-placement",
    )
    assert _ready(store, lost)["status"] == "Unknown"
    message = str(get_condition(after, "Allocated")["message"])  # type: ignore[index]
    assert message.startswith(f"node {lost} is not Ready (the node agent stopped renewing")
    wait_until(lambda: _events(store, "serve", "Rescheduled"), what="the Rescheduled Event")
