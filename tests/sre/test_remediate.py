"""The shift-traffic playbook: what it plans, off by default, audited, rate-limited, reversible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.api import ACTION_ANNOTATION, Endpoint
from modelplane.control import Request
from modelplane.policy import MemoryAudit
from modelplane.rollout import RolloutController
from modelplane.sre import RemediationController, plan_shift
from modelplane.store import Store

NS = "default"
REQ = Request(NS, "chat")
SPLIT = [{"version": "v1", "weight": 50}, {"version": "v2", "weight": 50}]


def _alert(scope: str, severity: str = "page") -> dict[str, Any]:
    return {
        "key": f"ttftP99/{severity}-1h/{scope}",
        "objective": "ttftP99",
        "severity": severity,
        "rule": "14.4x over 1h and 5m",
        "scope": scope,
        "longBurn": 100.0,
        "shortBurn": 100.0,
        "since": "2026-12-07T11:00:00.000Z",
        "message": f"chat version {scope}: ttftP99 burns its error budget at 100.0x over 1h",
    }


def _replicas(*versions: str) -> list[dict[str, Any]]:
    return [{"name": f"chat-{v}", "version": v, "ready": True} for v in versions]


def _endpoint(alerts: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
    return {
        "kind": "Endpoint",
        "metadata": {"name": "chat", "namespace": NS},
        "spec": {"model": "m", "traffic": SPLIT},
        "status": {"slo": {"alerts": alerts}, "replicas": _replicas("v1", "v2"), **status},
    }


def test_a_page_on_one_version_moves_its_weight_to_the_healthy_one() -> None:
    shift = plan_shift(_endpoint([_alert("v2")]))
    assert shift is not None and shift.bad == "v2" and shift.healthy == ("v1",)
    assert shift.traffic == [{"version": "v1", "weight": 100}]
    assert shift.previous == SPLIT
    assert "v2 pages" in shift.message("chat") and "v1 100%" in shift.message("chat")


def test_the_weight_is_spread_over_several_healthy_versions_in_proportion() -> None:
    endpoint = _endpoint([_alert("v2")])
    endpoint["status"]["traffic"] = [
        {"version": "v1", "weight": 30},
        {"version": "v2", "weight": 60},
        {"version": "v3", "weight": 10},
    ]
    endpoint["status"]["replicas"] = _replicas("v1", "v2", "v3")
    shift = plan_shift(endpoint)
    assert shift is not None
    assert shift.traffic == [{"version": "v1", "weight": 75}, {"version": "v3", "weight": 25}]


@pytest.mark.parametrize(
    ("alerts", "replicas", "why"),
    [
        ([_alert("v2", "ticket")], ("v1", "v2"), "a ticket is not a page"),
        ([_alert("endpoint")], ("v1", "v2"), "the whole Endpoint burns, no version alone"),
        ([_alert("v2"), _alert("v1", "ticket")], ("v1", "v2"), "the other version burns too"),
        ([_alert("v2")], ("v2",), "the other version has no ready replica"),
        ([], ("v1", "v2"), "nothing fires"),
    ],
)
def test_no_shift_without_a_healthy_version_to_shift_to(
    alerts: list[dict[str, Any]], replicas: tuple[str, ...], why: str
) -> None:
    endpoint = _endpoint(alerts, replicas=_replicas(*replicas))
    assert plan_shift(endpoint) is None, why


# -- the controller on a real store -----------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _create(store: Store, remediation: dict[str, Any] | None) -> None:
    slo: dict[str, Any] = {"ttftP99": "500ms"}
    if remediation is not None:
        slo["remediation"] = remediation
    store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Endpoint",
            "metadata": {"name": "chat", "namespace": NS},
            "spec": {"model": "m", "traffic": SPLIT, "slo": slo},
        }
    )
    _fire(store)


def _fire(store: Store) -> None:
    """The SLO controller's word: v2 pages; both versions serve."""
    endpoint = store.get("Endpoint", NS, "chat")
    status = dict(endpoint.get("status") or {})
    status.update(slo={"alerts": [_alert("v2")]}, replicas=_replicas("v1", "v2"))
    status.setdefault("traffic", SPLIT)
    store.update_status({**endpoint, "status": status})


def _status(store: Store) -> dict[str, Any]:
    return dict(store.get("Endpoint", NS, "chat").get("status") or {})


def _events(store: Store, reason: str) -> list[dict[str, Any]]:
    return [e for e in store.list("Event", NS).items if e["reason"] == reason]


def _controller(store: Store, clock: _Clock, audit: MemoryAudit) -> RemediationController:
    return RemediationController(store, audit=audit, clock=clock, scale=1.0)


@pytest.mark.parametrize(
    "remediation",
    [None, {"playbook": "shift-traffic"}, {"playbook": "shift-traffic", "enabled": False}],
)
def test_the_playbook_is_off_unless_enabled(
    store: Store, remediation: dict[str, Any] | None
) -> None:
    # given an Endpoint whose v2 pages, with no playbook or one not enabled
    _create(store, remediation)
    audit = MemoryAudit()
    # when the remediation controller looks
    _controller(store, _Clock(), audit).reconcile(REQ)
    # then the split stays and nothing is recorded
    assert _status(store)["traffic"] == SPLIT and "remediation" not in _status(store)
    assert audit.events == [] and _events(store, "ShiftedTraffic") == []


def test_the_enabled_playbook_shifts_traffic_with_an_event_and_an_audit_record(
    store: Store,
) -> None:
    # given an Endpoint whose v2 pages, with shift-traffic enabled
    _create(store, {"playbook": "shift-traffic", "enabled": True})
    audit = MemoryAudit()
    # when the remediation controller looks
    _controller(store, _Clock(), audit).reconcile(REQ)
    # then all traffic goes to v1, the split replaced is kept, and it is recorded twice
    status = _status(store)
    assert status["traffic"] == [{"version": "v1", "weight": 100}]
    held = status["remediation"]
    assert held["active"] is True and held["previousTraffic"] == SPLIT
    assert held["alert"] == "ttftP99/page-1h/v2"
    [event] = _events(store, "ShiftedTraffic")
    assert event["type"] == "Warning" and "v2 pages" in event["message"]
    [record] = audit.events
    assert (record.category, record.action, record.resource) == (
        "remediation",
        "shift-traffic",
        "Endpoint/default/chat",
    )
    assert record.principal == "system:controller:remediation-controller"


def test_the_rollout_controller_holds_the_split_and_promote_restores_it(store: Store) -> None:
    # given the playbook holding the traffic on v1
    _create(store, {"playbook": "shift-traffic", "enabled": True})
    clock = _Clock()
    _controller(store, clock, MemoryAudit()).reconcile(REQ)
    rollout = RolloutController(store, clock=clock)
    # when the rollout controller looks (spec.traffic still says 50/50)
    rollout.reconcile(REQ)
    # then it leaves the held split alone
    assert _status(store)["traffic"] == [{"version": "v1", "weight": 100}]
    # and when a person runs `modelplane rollout promote chat`
    store.patch(
        "Endpoint", NS, "chat", {"metadata": {"annotations": {ACTION_ANNOTATION: "promote"}}}
    )
    rollout.reconcile(REQ)
    # then the previous split is back, the hold ended, and the annotation removed
    status = _status(store)
    assert status["traffic"] == SPLIT
    assert status["remediation"]["active"] is False and status["remediation"]["releasedAt"]
    assert _events(store, "RemediationReleased")
    annotations = store.get("Endpoint", NS, "chat")["metadata"].get("annotations") or {}
    assert ACTION_ANNOTATION not in annotations


def test_the_playbook_acts_at_most_once_per_cooldown(store: Store) -> None:
    # given the playbook acted, and a person restored the split while v2 still pages
    _create(store, {"playbook": "shift-traffic", "enabled": True, "cooldown": "10m"})
    clock, audit = _Clock(), MemoryAudit()
    controller = _controller(store, clock, audit)
    controller.reconcile(REQ)
    store.patch(
        "Endpoint", NS, "chat", {"metadata": {"annotations": {ACTION_ANNOTATION: "promote"}}}
    )
    RolloutController(store, clock=clock).reconcile(REQ)
    _fire(store)
    # when the controller looks again 5 minutes later
    clock.now += 300
    result = controller.reconcile(REQ)
    # then it does not act, and looks again when the cooldown ends
    assert _status(store)["traffic"] == SPLIT and len(audit.events) == 1
    assert result.requeue_after == pytest.approx(300)
    # and after the cooldown it acts again
    clock.now += 301
    controller.reconcile(REQ)
    assert _status(store)["traffic"] == [{"version": "v1", "weight": 100}]
    assert len(audit.events) == 2


def test_the_documented_example_enables_shift_traffic() -> None:
    doc = yaml.safe_load(Path("examples/slo/remediation.yaml").read_text())
    slo = Endpoint.model_validate(doc).spec.slo
    assert slo is not None and slo.remediation is not None
    assert (slo.remediation.playbook, slo.remediation.enabled) == ("shift-traffic", True)


def test_abort_does_not_end_a_hold_and_says_how(store: Store) -> None:
    # given the playbook holding the traffic on v1
    _create(store, {"playbook": "shift-traffic", "enabled": True})
    clock = _Clock()
    _controller(store, clock, MemoryAudit()).reconcile(REQ)
    # when a person runs `modelplane rollout abort chat`
    store.patch("Endpoint", NS, "chat", {"metadata": {"annotations": {ACTION_ANNOTATION: "abort"}}})
    RolloutController(store, clock=clock).reconcile(REQ)
    # then the held split stays, a Warning says promote ends it, and the annotation is removed
    assert _status(store)["traffic"] == [{"version": "v1", "weight": 100}]
    [event] = _events(store, "RemediationHolds")
    assert "`modelplane rollout promote` restores" in event["message"]
    annotations = store.get("Endpoint", NS, "chat")["metadata"].get("annotations") or {}
    assert ACTION_ANNOTATION not in annotations


def test_the_rollback_playbook_aborts_a_rollout_whose_canary_pages(store: Store) -> None:
    # given an Endpoint rolling v2 out over v1, with the rollback playbook enabled
    slo = {"ttftP99": "500ms", "remediation": {"playbook": "rollback", "enabled": True}}
    store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Endpoint",
            "metadata": {"name": "chat", "namespace": NS},
            "spec": {
                "model": "m",
                "traffic": [{"version": "v1", "weight": 100}],
                "rollout": {"steps": [10, 50, 100]},
                "slo": slo,
            },
        }
    )
    clock = _Clock()
    rollout = RolloutController(store, clock=clock)
    rollout.reconcile(REQ)
    wanted = [{"version": "v1", "weight": 0}, {"version": "v2", "weight": 100}]
    store.patch("Endpoint", NS, "chat", {"spec": {"traffic": wanted}})
    rollout.reconcile(REQ)
    assert _status(store)["rollout"]["phase"] == "Progressing"
    # when the canary v2 pages
    _fire(store)
    audit = MemoryAudit()
    _controller(store, clock, audit).reconcile(REQ)
    # then the playbook asks for the abort, says why in the status, an Event and the audit log
    endpoint = store.get("Endpoint", NS, "chat")
    assert endpoint["metadata"]["annotations"][ACTION_ANNOTATION] == "abort"
    acted = _status(store)["remediation"]
    assert (acted["playbook"], acted["active"], acted["alert"]) == (
        "rollback",
        False,
        "ttftP99/page-1h/v2",
    )
    [event] = _events(store, "RolledBackOnAlert")
    assert event["type"] == "Warning" and "canary v2 pages" in event["message"]
    [record] = audit.events
    assert (record.action, record.resource) == ("rollback", "Endpoint/default/chat")
    # and the rollout controller rolls back to the split before the rollout
    rollout.reconcile(REQ)
    status = _status(store)
    assert status["rollout"]["phase"] == "Aborted"
    assert [t for t in status["traffic"] if t["weight"]] == [{"version": "v1", "weight": 100}]


def test_the_rollback_playbook_leaves_an_endpoint_without_a_rollout_alone(store: Store) -> None:
    # given v2 paging on an Endpoint whose split is not being rolled out
    _create(store, {"playbook": "rollback", "enabled": True})
    audit = MemoryAudit()
    _controller(store, _Clock(), audit).reconcile(REQ)
    # then nothing is done: shifting traffic is the other playbook's job
    annotations = store.get("Endpoint", NS, "chat")["metadata"].get("annotations") or {}
    assert ACTION_ANNOTATION not in annotations and audit.events == []
