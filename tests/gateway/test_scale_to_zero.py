"""scaleToZero Endpoints: a request during a cold start is held until a replica is ready, not 5xx.

A real gateway and a real node agent on one SQLite store; the agent runs simulated replicas
(worker processes with a latency model), so a cold start takes about a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.control._wait import wait_until
from tests.gateway._env import DIGEST, Env

from modelplane.api import validate
from modelplane.control import get_condition
from modelplane.gateway import DEMAND_ANNOTATION
from modelplane.serving import IDLE_TIMEOUT_ANNOTATION, SIMULATED_ANNOTATION, NodeAgent


def _scale_to_zero_endpoint(env: Env, name: str, idle: str = "3s") -> None:
    env.store.create(
        validate(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Model",
                "metadata": {"name": f"{name}-model"},
                "spec": {
                    "versions": [
                        {"name": "v1", "source": "x", "format": "safetensors", "digest": DIGEST}
                    ]
                },
            }
        )
    )
    env.store.create(
        validate(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Endpoint",
                "metadata": {
                    "name": name,
                    "annotations": {SIMULATED_ANNOTATION: "true", IDLE_TIMEOUT_ANNOTATION: idle},
                },
                "spec": {
                    "model": f"{name}-model",
                    "replicas": {"min": 0, "max": 1, "scaleToZero": True},
                },
            }
        )
    )


def _ready(env: Env, name: str) -> dict[str, Any]:
    status = env.store.get("Endpoint", "default", name).get("status") or {}
    return get_condition(status, "Ready") or {}


@pytest.fixture
def agent(env: Env, tmp_path: Path) -> Iterator[NodeAgent]:
    node_agent = NodeAgent(env.store, "node-a", tmp_path / "agent-home")
    node_agent.start()
    try:
        yield node_agent
    finally:
        assert node_agent.stop(20)


def test_request_to_a_scaled_to_zero_endpoint_waits_for_a_replica_and_gets_200(
    env: Env, agent: NodeAgent
) -> None:
    # given a scaleToZero Endpoint that the agent keeps at zero replicas
    _scale_to_zero_endpoint(env, "lazy")
    wait_until(lambda: _ready(env, "lazy").get("reason") == "ScaledToZero", what="ScaledToZero")
    assert agent.replicas() == []
    # when a client asks for it
    r = env.client.post(
        "/chat/completions",
        json={"model": "lazy", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        timeout=60,
    )
    # then it is answered (held through the cold start, not 5xx), by the replica started on demand
    assert r.status_code == 200, r.text
    assert r.headers["x-modelplane-endpoint"] == "lazy"
    annotations = env.store.get("Endpoint", "default", "lazy")["metadata"]["annotations"]
    assert int(annotations[DEMAND_ANNOTATION]) > 0
    # (replica 0 of version v1, the one the node agent started; it may be idle-stopped already)
    assert r.headers["x-modelplane-replica"] == "lazy-v1-0"
    # and after its idle period the replica is stopped and the Endpoint is scaled to zero again
    wait_until(lambda: agent.replicas() == [], timeout=30, what="the idle replica to stop")
    wait_until(lambda: _ready(env, "lazy").get("reason") == "ScaledToZero", what="ScaledToZero")


def test_held_request_gets_503_with_retry_after_when_no_replica_starts_in_time(env: Env) -> None:
    # given a scaleToZero Endpoint and no node agent to start its replica, and a short hold
    _scale_to_zero_endpoint(env, "orphan")
    env.wait_routed("orphan", 0)
    env.gw.gateway.hold_timeout = 0.5
    # when a client asks for it
    r = env.chat("orphan")
    # then it gets 503 with Retry-After once the hold times out, naming the reason
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert "scaled to zero" in r.json()["error"]["message"]
    # and the gateway asked for a replica through the store
    annotations = env.store.get("Endpoint", "default", "orphan")["metadata"]["annotations"]
    assert DEMAND_ANNOTATION in annotations
