"""Replica autoscaling end to end: `modelplane up`, simulated workers under load, scale up and down.

One real `modelplane up`; the Endpoint's replicas are simulated workers (real processes with a
latency model) started by its node agent; the load is real streaming requests through the gateway.
The replica autoscaler reads each replica's ``modelplane_worker_running_requests`` and writes its
decision to ``status.autoscaling``, with an Event per change.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess, simulated_model

pytestmark = pytest.mark.slow

API = "/apis/modelplane.dev/v1alpha1/namespaces/default"
CLIENTS = 10


def _apply(client: httpx.Client) -> None:
    model = simulated_model("burst-model")
    endpoint = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Endpoint",
        "metadata": {
            "name": "burst",
            "annotations": {
                "modelplane.dev/simulated": "true",
                "modelplane.dev/simulated-ttft": "100ms",
                "modelplane.dev/simulated-tpot": "250ms",
            },
        },
        "spec": {
            "model": "burst-model",
            "replicas": {
                "min": 1,
                "max": 3,
                "autoscaling": {
                    "metric": "modelplane_worker_running_requests",
                    "target": 2,
                    "stableWindow": "6s",
                    "panicWindow": "2s",
                },
            },
        },
    }
    for obj in (model, endpoint):
        r = client.post(f"{API}/{obj['kind'].lower()}s", json=obj)
        assert r.status_code == 201, r.text


def _autoscaling(client: httpx.Client) -> dict[str, Any]:
    status = client.get(f"{API}/endpoints/burst").json().get("status") or {}
    return {**(status.get("autoscaling") or {}), "ready": status.get("readyReplicas")}


def _load(url: str, stop: threading.Event, answered: list[int]) -> None:
    body = {"model": "burst", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    with httpx.Client(base_url=url, timeout=60) as c:
        while not stop.is_set():
            r = c.post("/v1/chat/completions", json=body)
            answered.append(r.status_code)


def _events(client: httpx.Client, reason: str) -> list[dict[str, Any]]:
    items = client.get(f"{API}/events").json()["items"]
    return [e for e in items if e.get("reason") == reason]


def test_replicas_scale_up_under_load_and_back_down_with_decision_in_status_and_events(
    up: UpProcess,
) -> None:
    with httpx.Client(base_url=up.url, timeout=30) as client:
        # given an autoscaled Endpoint (running requests, target 2 per replica, 1 to 3 replicas)
        _apply(client)
        wait_until(lambda: _autoscaling(client).get("ready") == 1, timeout=90, what="1 replica")
        assert _autoscaling(client)["desiredReplicas"] == 1
        # when 10 clients stream requests without pause
        stop, answered = threading.Event(), []
        threads = [
            threading.Thread(target=_load, args=(up.url, stop, answered)) for _ in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        try:
            # then the autoscaler wants the most replicas (10 running / 2 > 3) and they run
            wait_until(
                lambda: (
                    _autoscaling(client).get("desiredReplicas") == 3
                    and _autoscaling(client).get("ready") == 3
                ),
                timeout=120,
                what="3 ready replicas under load",
            )
            up_status = _autoscaling(client)
        finally:
            stop.set()
            for t in threads:
                t.join(90)
        assert up_status["metric"] == "modelplane_worker_running_requests"
        assert up_status["observed"] > 0
        assert up_status["mode"] in ("stable", "panic")
        assert up_status["lastScaleTime"]
        assert answered and all(code == 200 for code in answered), set(answered)
        # and once the load stopped it comes back down to min, replicas stopped
        wait_until(
            lambda: (
                _autoscaling(client).get("desiredReplicas") == 1
                and _autoscaling(client).get("ready") == 1
            ),
            timeout=120,
            what="back to 1 replica",
        )
        down = _autoscaling(client)
        assert down["mode"] == "stable"
        # with an Event for each change
        ups, downs = _events(client, "ScaledUp"), _events(client, "ScaledDown")
        assert ups and downs
        assert all(e["source"]["component"] == "replica-autoscaler" for e in ups + downs)
        assert "-> 3 replicas" in " ".join(e["message"] for e in ups)
