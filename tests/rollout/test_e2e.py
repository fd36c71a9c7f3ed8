"""End to end through a real `modelplane up`: simulated replicas, traffic through /v1, a canary.

The platform's rollout controller reads the gateway's samples at ``MODELPLANE_GATEWAY_URL`` (the
API's own address in ``up``), set in the child's environment by the ``up`` fixture (conftest).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

import httpx
import pytest
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess
from tests.rollout.conftest import TOKEN

pytestmark = pytest.mark.slow

API = "/apis/modelplane.dev/v1alpha1/namespaces/default"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLI = (sys.executable, "-m", "modelplane.cli")


def _apply(client: httpx.Client, annotations: dict[str, str]) -> None:
    model = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "m"},
        "spec": {
            "versions": [
                {"name": v, "source": "x", "format": "safetensors", "digest": "sha256:" + "a" * 64}
                for v in ("v1", "v2")
            ]
        },
    }
    endpoint = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Endpoint",
        "metadata": {
            "name": "chat",
            "annotations": {"modelplane.dev/simulated": "true", **annotations},
        },
        "spec": {
            "model": "m",
            "traffic": [{"version": "v1", "weight": 100}],
            "rollout": {
                "steps": [25, 50, 100],
                "analysis": {"interval": "1s", "minSamples": 12},
            },
        },
    }
    assert client.post(f"{API}/models", json=model).status_code == 201
    r = client.post(f"{API}/endpoints", json=endpoint)
    assert r.status_code == 201, r.text


def _endpoint(client: httpx.Client) -> dict[str, Any]:
    return dict(client.get(f"{API}/endpoints/chat").json())


def _rollout_weights_since(client: httpx.Client, resource_version: str) -> set[int]:
    """The canary weights of every Progressing state the Endpoint went through after a version."""
    weights: set[int] = set()
    params = {
        "watch": "true",
        "resourceVersion": resource_version,
        "fieldSelector": "metadata.name=chat",
        "timeoutSeconds": "1",
    }
    with client.stream("GET", f"{API}/endpoints", params=params) as r:
        for line in r.iter_lines():
            if not line:
                continue
            obj = json.loads(line)["object"]
            state = (obj.get("status") or {}).get("rollout") or {}
            if state.get("phase") == "Progressing" and state.get("weight") is not None:
                weights.add(int(state["weight"]))
    return weights


def _traffic(client: httpx.Client) -> dict[str, int] | None:
    status = _endpoint(client).get("status") or {}
    if status.get("traffic") is None:
        return None
    return {t["version"]: t["weight"] for t in status["traffic"]}


class _Load:
    """Clients sending chat completions through the gateway until stopped."""

    def __init__(self, url: str, clients: int = 3) -> None:
        self.url = url
        self.stop = threading.Event()
        self.codes: list[int] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        with httpx.Client(base_url=self.url, timeout=10, headers=AUTH) as client:
            while not self.stop.is_set():
                self.codes.append(client.post("/v1/chat/completions", json=body).status_code)

    def __enter__(self) -> _Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


def _roll_out_v2(client: httpx.Client) -> None:
    # v1 in force and serving, then v2 wanted in full
    wait_until(lambda: _traffic(client) == {"v1": 100}, timeout=15, what="v1 in force")
    ep = _endpoint(client)
    ep["spec"]["traffic"] = [{"version": "v2", "weight": 100}]
    r = client.put(f"{API}/endpoints/chat", json=ep)
    assert r.status_code == 200, r.text


def test_healthy_v2_rolls_forward_step_by_step_to_full_traffic(up: UpProcess) -> None:
    with httpx.Client(base_url=up.url, timeout=10, headers=AUTH) as client:
        # given two versions of one model on simulated replicas, alike in latency
        _apply(client, {"modelplane.dev/simulated-ttft": "20ms"})
        wait_until(
            lambda: (_endpoint(client).get("status") or {}).get("readyReplicas"),
            timeout=20,
            what="a ready v1 replica",
        )
        before = _endpoint(client)["metadata"]["resourceVersion"]
        with _Load(up.url) as load:
            # when v2 is wanted, under steady traffic
            _roll_out_v2(client)

            def finished() -> bool:
                state = (_endpoint(client).get("status") or {}).get("rollout") or {}
                return state.get("phase") in ("Succeeded", "RolledBack")

            wait_until(finished, timeout=60, what="the rollout to finish")
        # then it went through each step (every change of the Endpoint since, replayed by a watch,
        # so a step that passed between two polls is not missed) and v2 takes everything
        seen = _rollout_weights_since(client, before)
        status = _endpoint(client)["status"]
        assert status["rollout"]["phase"] == "Succeeded", status["rollout"]
        assert _traffic(client) == {"v2": 100}
        assert {25, 50} <= seen
        assert status["rollout"]["lastAnalysis"]["verdict"] == "pass"
        assert load.codes.count(200) > 0 and all(c == 200 for c in load.codes), set(load.codes)
        # and `modelplane rollout status` shows it
        out = _cli(up, "status", "chat")
        assert out.returncode == 0, out.stderr
        assert "Succeeded" in out.stdout and "v2 100%" in out.stdout and "pass" in out.stdout


def test_slowed_v2_is_rolled_back_automatically_with_the_reason(up: UpProcess) -> None:
    with httpx.Client(base_url=up.url, timeout=10, headers=AUTH) as client:
        # given v2 deliberately slowed: 400 ms to first token against v1's 20 ms
        _apply(
            client,
            {
                "modelplane.dev/simulated-ttft": "20ms",
                "modelplane.dev/simulated-ttft.v2": "400ms",
            },
        )
        wait_until(
            lambda: (_endpoint(client).get("status") or {}).get("readyReplicas"),
            timeout=20,
            what="a ready v1 replica",
        )
        with _Load(up.url, clients=4):
            # when v2 is wanted, under steady traffic
            _roll_out_v2(client)
            wait_until(
                lambda: (
                    ((_endpoint(client).get("status") or {}).get("rollout") or {}).get("phase")
                    in ("RolledBack", "Succeeded")
                ),
                timeout=60,
                what="the rollout to finish",
            )
        # then traffic is back on v1, the status says why with the figures, and a Warning Event
        status = _endpoint(client)["status"]
        assert status["rollout"]["phase"] == "RolledBack", status["rollout"]
        assert _traffic(client) == {"v1": 100}
        (cond,) = [c for c in status["conditions"] if c["type"] == "Rollout"]
        assert cond["status"] == "False" and cond["reason"] == "RolledBack"
        assert "canary v2 TTFT p99" in cond["message"] and "Mann-Whitney" in cond["message"]
        events = client.get(f"{API}/events").json()["items"]
        assert any(e["reason"] == "RolledBack" and e["type"] == "Warning" for e in events)
        # and a person may still force it: `modelplane rollout promote` puts v2 in force
        out = _cli(up, "promote", "chat")
        assert out.returncode == 0, out.stderr
        assert "Succeeded (traffic v2 100%)" in out.stdout
        assert _traffic(client) == {"v2": 100}


def _cli(up: UpProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--server", up.url, "--token", TOKEN, "rollout", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
