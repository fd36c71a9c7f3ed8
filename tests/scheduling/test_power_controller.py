"""The power controller on a real store: per-device caps under a node's and a rack's budget,
background and idle devices capped first, and a budget no caps can hold refused with the reason
while nothing else changes."""

from __future__ import annotations

from typing import Any

from modelplane.api import (
    NODE_POWER_BUDGET_ANNOTATION,
    PRIORITY_ANNOTATION,
    RACK_POWER_BUDGET_ANNOTATION,
)
from modelplane.control import Request, get_condition
from modelplane.drivers import file_publication, publish
from modelplane.scheduling import (
    AllocatedState,
    AllocationResult,
    Inventory,
    PowerController,
    allocate,
)
from modelplane.sim import generate_cluster
from modelplane.store import Store

from .test_controller import _claim

TDP = 700.0  # the generated H100s; idle and lowest cap default to 20% and 30% of it


def _cluster(store: Store, nodes: int = 1) -> list[str]:
    objs = generate_cluster(nodes, gpus_per_node=8, mix={"h100": 1.0}, mig=False)
    publish(store, file_publication(objs, "test-cluster"))
    return [o["metadata"]["name"] for o in objs if o["kind"] == "Node"]


def _annotate(store: Store, node: str, **values: str) -> None:
    obj = store.get("Node", "", node)
    obj["metadata"].setdefault("annotations", {}).update(values)
    store.update(obj)


def _place(store: Store, name: str, count: int, priority: int) -> None:
    """Create the claim and write the allocator's decision to its status (the controller's job,
    done here in-line: the power controller reads only what the status holds)."""
    claim = store.create(_claim(name, count, annotations={PRIORITY_ANNOTATION: str(priority)}))
    inv = Inventory.from_objects(
        store.list("ResourceSlice").items,
        store.list("DeviceClass").items,
        store.list("Node").items,
    )
    state = AllocatedState.from_claims(inv, store.list("ResourceClaim").items)
    result = allocate(claim, inv, allocated_state=state, deadline_ms=10_000)
    assert isinstance(result, AllocationResult), getattr(result, "reason", result)
    claim["status"] = result.to_status()
    store.update_status(claim)


def _power(store: Store, node: str) -> tuple[dict[str, Any], dict[str, Any]]:
    status = store.get("Node", "", node).get("status") or {}
    return dict(status.get("power") or {}), dict(get_condition(status, "PowerBudget") or {})


def _held_devices(store: Store, claim: str) -> set[str]:
    status = store.get("ResourceClaim", "default", claim)["status"]
    return {r["device"] for r in status["allocation"]["devices"]["results"]}


def test_caps_keep_the_node_under_budget_background_and_idle_first(store: Store) -> None:
    # given a node of 8 x 700 W GPUs: 2 held at priority 10, 2 at priority -1, 4 idle
    (node,) = _cluster(store)
    _place(store, "chat", 2, 10)
    _place(store, "batch", 2, -1)
    applied: dict[str, dict[str, float]] = {}
    controller = PowerController(store, apply=lambda n, caps: applied.__setitem__(n, caps))
    # when its budget is cut by 25%
    _annotate(store, node, **{NODE_POWER_BUDGET_ANNOTATION: "4200"})
    controller.reconcile(Request("", node))
    # then the caps sum within the budget, and say so
    power, cond = _power(store, node)
    assert (cond["status"], cond["reason"]) == ("True", "WithinBudget")
    caps = {d["device"]: d["capWatts"] for d in power["devices"]}
    assert len(caps) == 8 and sum(caps.values()) <= 4200.0 == power["budgetWatts"]
    assert all(0.3 * TDP <= c <= TDP for c in caps.values())
    # and the high-priority GPUs keep the most power, idle ones the least
    chat = {caps[d] for d in _held_devices(store, "chat")}
    batch = {caps[d] for d in _held_devices(store, "batch")}
    idle = {
        c
        for d, c in caps.items()
        if d not in _held_devices(store, "chat") | _held_devices(store, "batch")
    }
    assert min(chat) > max(batch) > max(idle)
    # and the node agent's hook got the same caps
    assert applied[node] == caps


def test_a_budget_above_the_draw_leaves_every_device_at_its_tdp(store: Store) -> None:
    (node,) = _cluster(store)
    _annotate(store, node, **{NODE_POWER_BUDGET_ANNOTATION: "10000"})
    PowerController(store).reconcile(Request("", node))
    power, cond = _power(store, node)
    assert cond["status"] == "True"
    assert {d["capWatts"] for d in power["devices"]} == {TDP}


def test_a_budget_below_the_idle_draw_is_refused_and_nothing_else_changes(store: Store) -> None:
    # given two nodes, the first capped within a valid budget
    first, second = _cluster(store, 2)
    controller = PowerController(store)
    _annotate(store, first, **{NODE_POWER_BUDGET_ANNOTATION: "4200"})
    _annotate(store, second, **{NODE_POWER_BUDGET_ANNOTATION: "5000"})
    for n in (first, second):
        controller.reconcile(Request("", n))
    before_first, _ = _power(store, first)
    before_second = store.get("Node", "", second)
    # when the first node's budget drops below its devices' idle draw (8 x 140 W)
    _annotate(store, first, **{NODE_POWER_BUDGET_ANNOTATION: "1000"})
    controller.reconcile(Request("", first))
    # then its condition says why and what to do, and its caps stay as they were
    power, cond = _power(store, first)
    assert (cond["status"], cond["reason"]) == ("False", "BelowIdleDraw")
    assert "below the idle draw of its 8 devices (1120 W)" in cond["message"]
    assert "raise the budget to at least 1120 W" in cond["message"]
    assert power == before_first
    # and the other node is untouched
    after = store.get("Node", "", second)
    assert after["metadata"]["resourceVersion"] == before_second["metadata"]["resourceVersion"]


def test_a_budget_that_is_not_a_number_names_the_annotation(store: Store) -> None:
    (node,) = _cluster(store)
    _annotate(store, node, **{NODE_POWER_BUDGET_ANNOTATION: "lots"})
    PowerController(store).reconcile(Request("", node))
    power, cond = _power(store, node)
    assert (cond["status"], cond["reason"]) == ("False", "InvalidBudget")
    assert NODE_POWER_BUDGET_ANNOTATION in cond["message"] and "'lots'" in cond["message"]
    assert power == {}


def test_a_rack_budget_holds_over_all_nodes_of_the_rack(store: Store) -> None:
    # given two nodes of one rack (16 x 700 W) sharing a 8400 W rack budget
    nodes = _cluster(store, 2)
    _place(store, "chat", 4, 10)
    controller = PowerController(store)
    for n in nodes:
        _annotate(store, n, **{RACK_POWER_BUDGET_ANNOTATION: "8400"})
    for n in nodes:
        controller.reconcile(Request("", n))
    # then both nodes are capped, and their caps together stay within the rack's budget
    total = 0.0
    for n in nodes:
        power, cond = _power(store, n)
        assert cond["status"] == "True", cond
        total += power["capsWatts"]
    assert total <= 8400.0
