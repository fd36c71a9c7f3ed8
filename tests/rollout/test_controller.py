"""The rollout controller on a real store: steps, holds, rollback, promote and abort by hand.

Each test calls ``reconcile`` as the runtime would after each change; replicas are reported by
writing ``status.replicas`` as a node agent does, and samples come from a :class:`RecordedSamples`.
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from modelplane.control import Request, get_condition
from modelplane.rollout import ACTION_ANNOTATION, RecordedSamples, RolloutController, Sample
from modelplane.store import Store

NS = "default"
REQ = Request(NS, "chat")


def _create(store: Store, *, rollout: dict[str, Any] | None = None) -> None:
    store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "m", "namespace": NS},
            "spec": {
                "versions": [
                    {
                        "name": v,
                        "source": "x",
                        "format": "safetensors",
                        "digest": "sha256:" + "a" * 64,
                    }
                    for v in ("v1", "v2")
                ]
            },
        }
    )
    spec: dict[str, Any] = {"model": "m", "traffic": [{"version": "v1", "weight": 100}]}
    if rollout is not None:
        spec["rollout"] = rollout
    store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Endpoint",
            "metadata": {"name": "chat", "namespace": NS},
            "spec": spec,
        }
    )


def _rollout(**analysis: Any) -> dict[str, Any]:
    return {
        "steps": [10, 50, 100],
        "analysis": {"interval": "0s", "minSamples": 20, **analysis},
    }


def _want(store: Store, traffic: list[dict[str, Any]]) -> None:
    ep = store.get("Endpoint", NS, "chat")
    store.update({**ep, "spec": {**ep["spec"], "traffic": traffic}})


def _status(store: Store) -> dict[str, Any]:
    return dict(store.get("Endpoint", NS, "chat").get("status") or {})


def _traffic(store: Store) -> dict[str, int]:
    return {t["version"]: t["weight"] for t in _status(store).get("traffic") or []}


def _replicas_ready(store: Store, *versions: str) -> None:
    replicas = [
        {"name": f"chat-{v}-0", "version": v, "url": f"http://127.0.0.1:1/{v}/v1", "ready": True}
        for v in versions
    ]
    store.patch("Endpoint", NS, "chat", {"status": {"replicas": replicas}}, subresource="status")


def _feed(
    recorded: RecordedSamples, version: str, n: int, *, ttft: float, rnd: random.Random
) -> None:
    now = time.time()
    recorded.extend(
        NS,
        "chat",
        version,
        (Sample(t=now, ttft_s=ttft * rnd.lognormvariate(0, 0.2), tpot_s=0.01) for _ in range(n)),
    )


def _rollout_condition(status: dict[str, Any]) -> dict[str, Any]:
    cond = get_condition(status, "Rollout")
    assert cond is not None, status
    return cond


def _events(store: Store, reason: str) -> list[dict[str, Any]]:
    return [e for e in store.list("Event", NS).items if e["reason"] == reason]


def _start_rollout(store: Store, controller: RolloutController) -> None:
    """Given chat at v1 100% in force, when v2 100% is wanted: the canary's window opens."""
    controller.reconcile(REQ)
    assert _traffic(store) == {"v1": 100}
    _want(store, [{"version": "v2", "weight": 100}])
    controller.reconcile(REQ)
    controller.reconcile(REQ)  # no canary replica yet: waits
    assert "waiting for a ready replica of v2" in _status(store)["rollout"]["message"]
    _replicas_ready(store, "v1", "v2")
    controller.reconcile(REQ)  # the window opens
    assert _status(store)["rollout"]["stepStartedAt"]


def test_healthy_canary_rolls_forward_step_by_step(store: Store) -> None:
    # given an endpoint with steps 10, 50, 100 and v1 in force
    _create(store, rollout=_rollout())
    recorded = RecordedSamples()
    controller = RolloutController(store, samples=recorded)
    rnd = random.Random(11)
    controller.reconcile(REQ)
    assert _traffic(store) == {"v1": 100}
    # when v2 is wanted at 100%
    _want(store, [{"version": "v2", "weight": 100}])
    controller.reconcile(REQ)
    # then the canary starts at 10%, and an Event says how it will roll out
    assert _traffic(store) == {"v1": 90, "v2": 10}
    state = _status(store)["rollout"]
    assert (state["phase"], state["canary"], state["stable"]) == ("Progressing", "v2", "v1")
    assert state["steps"] == [10, 50] and state["weight"] == 10
    assert _events(store, "RolloutStarted")
    _replicas_ready(store, "v1", "v2")
    controller.reconcile(REQ)
    # when both versions serve alike at 10%, then it moves to 50%
    _feed(recorded, "v1", 180, ttft=0.05, rnd=rnd)
    _feed(recorded, "v2", 20, ttft=0.05, rnd=rnd)
    controller.reconcile(REQ)
    assert _traffic(store) == {"v1": 50, "v2": 50}
    state = _status(store)["rollout"]
    assert state["step"] == 1 and state["lastAnalysis"]["verdict"] == "pass"
    assert state["lastAnalysis"]["samples"] == 20
    # and when they serve alike at 50%, then v2 is promoted to the wanted split
    _feed(recorded, "v1", 30, ttft=0.05, rnd=rnd)
    _feed(recorded, "v2", 30, ttft=0.05, rnd=rnd)
    controller.reconcile(REQ)
    status = _status(store)
    assert _traffic(store) == {"v2": 100}
    assert status["rollout"]["phase"] == "Succeeded"
    assert _rollout_condition(status)["status"] == "True"
    assert _events(store, "StepPassed") and _events(store, "Promoted")
    # and a later reconcile changes nothing
    rv = store.get("Endpoint", NS, "chat")["metadata"]["resourceVersion"]
    controller.reconcile(REQ)
    assert store.get("Endpoint", NS, "chat")["metadata"]["resourceVersion"] == rv


def test_canary_rolls_back_when_ttft_regresses(store: Store) -> None:
    # given a rollout of v2 whose window has opened
    _create(store, rollout=_rollout())
    recorded = RecordedSamples()
    controller = RolloutController(store, samples=recorded)
    _start_rollout(store, controller)
    # when v2's time to first token is 5x v1's on the same window
    rnd = random.Random(12)
    _feed(recorded, "v1", 180, ttft=0.05, rnd=rnd)
    _feed(recorded, "v2", 25, ttft=0.25, rnd=rnd)
    controller.reconcile(REQ)
    # then traffic goes back to v1, the condition says why with the figures, and a Warning Event
    status = _status(store)
    assert _traffic(store) == {"v1": 100}
    assert status["rollout"]["phase"] == "RolledBack"
    cond = _rollout_condition(status)
    assert (cond["status"], cond["reason"]) == ("False", "RolledBack")
    assert "canary v2 TTFT p99" in cond["message"] and "Mann-Whitney p=" in cond["message"]
    (event,) = _events(store, "RolledBack")
    assert event["type"] == "Warning" and "TTFT p99" in event["message"]
    # and it stays rolled back while spec.traffic still wants v2
    controller.reconcile(REQ)
    assert _traffic(store) == {"v1": 100}


def test_too_few_samples_hold_the_step(store: Store) -> None:
    # given a rollout whose canary has 5 requests of the 20 needed
    _create(store, rollout=_rollout())
    recorded = RecordedSamples()
    controller = RolloutController(store, samples=recorded)
    _start_rollout(store, controller)
    rnd = random.Random(13)
    _feed(recorded, "v1", 200, ttft=0.05, rnd=rnd)
    _feed(recorded, "v2", 5, ttft=5.0, rnd=rnd)
    # when analysed, then the step holds: inconclusive, neither pass nor fail
    controller.reconcile(REQ)
    state = _status(store)["rollout"]
    assert state["phase"] == "Progressing" and state["step"] == 0
    assert state["lastAnalysis"]["verdict"] == "inconclusive"
    assert "at least 20" in state["lastAnalysis"]["reason"]
    assert _traffic(store) == {"v1": 90, "v2": 10}


def test_without_auto_rollback_a_failure_pauses_until_aborted(store: Store) -> None:
    _create(store, rollout={**_rollout(), "autoRollback": False})
    recorded = RecordedSamples()
    controller = RolloutController(store, samples=recorded)
    _start_rollout(store, controller)
    rnd = random.Random(14)
    _feed(recorded, "v1", 100, ttft=0.05, rnd=rnd)
    _feed(recorded, "v2", 40, ttft=0.5, rnd=rnd)
    # when the canary fails, then it pauses at its step for a person
    controller.reconcile(REQ)
    assert _status(store)["rollout"]["phase"] == "Paused"
    assert _traffic(store) == {"v1": 90, "v2": 10}
    assert _rollout_condition(_status(store))["reason"] == "AnalysisFailed"
    # when a person aborts (what `modelplane rollout abort` asks for)
    store.patch("Endpoint", NS, "chat", {"metadata": {"annotations": {ACTION_ANNOTATION: "abort"}}})
    controller.reconcile(REQ)
    # then v1 takes everything back, and the request is removed once applied
    assert _traffic(store) == {"v1": 100}
    assert _status(store)["rollout"]["phase"] == "Aborted"
    annotations = store.get("Endpoint", NS, "chat")["metadata"].get("annotations") or {}
    assert ACTION_ANNOTATION not in annotations


def test_promote_by_hand_skips_the_remaining_steps(store: Store) -> None:
    _create(store, rollout=_rollout())
    controller = RolloutController(store, samples=RecordedSamples())
    _start_rollout(store, controller)
    # when a person promotes in the middle of the first step
    store.patch(
        "Endpoint", NS, "chat", {"metadata": {"annotations": {ACTION_ANNOTATION: "promote"}}}
    )
    controller.reconcile(REQ)
    # then the wanted split is in force and the rollout succeeded
    assert _traffic(store) == {"v2": 100}
    status = _status(store)
    assert status["rollout"]["phase"] == "Succeeded"
    assert _rollout_condition(status)["reason"] == "Promoted"


def test_a_partial_target_stops_at_its_weight(store: Store) -> None:
    # given steps 10, 50, 100 and a wanted split of v2 at 30%
    _create(store, rollout=_rollout())
    recorded = RecordedSamples()
    controller = RolloutController(store, samples=recorded)
    controller.reconcile(REQ)
    _want(store, [{"version": "v1", "weight": 70}, {"version": "v2", "weight": 30}])
    controller.reconcile(REQ)
    # then only the 10% step is analysed before the wanted split
    assert _status(store)["rollout"]["steps"] == [10]
    assert _traffic(store) == {"v1": 90, "v2": 10}


def test_without_a_rollout_the_split_in_force_follows_spec(store: Store) -> None:
    # given an endpoint whose status.traffic a past rollout left at v1
    _create(store)
    store.patch(
        "Endpoint",
        NS,
        "chat",
        {"status": {"traffic": [{"version": "v1", "weight": 100}]}},
        subresource="status",
    )
    controller = RolloutController(store, samples=RecordedSamples())
    # when spec.traffic moves to v2 without spec.rollout, then it applies at once
    _want(store, [{"version": "v2", "weight": 100}])
    controller.reconcile(REQ)
    assert _traffic(store) == {"v2": 100}


def test_no_sample_source_holds_with_what_to_set(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELPLANE_GATEWAY_URL", raising=False)
    _create(store, rollout=_rollout())
    controller = RolloutController(store)
    _start_rollout(store, controller)
    controller.reconcile(REQ)
    analysis = _status(store)["rollout"]["lastAnalysis"]
    assert analysis["verdict"] == "inconclusive"
    assert "MODELPLANE_GATEWAY_URL" in analysis["reason"]
