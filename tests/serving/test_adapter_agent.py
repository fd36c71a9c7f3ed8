"""The node agent and adapters: a traffic split may not name an adapter (its base serves it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.control._wait import wait_until

from modelplane.api import validate
from modelplane.control import get_condition
from modelplane.serving import NodeAgent
from modelplane.store._contract import Store

DIGEST = "sha256:" + "a" * 64


def _condition(store: Store) -> dict[str, Any] | None:
    status = store.get("Endpoint", "default", "chat").get("status") or {}
    return get_condition(status, "Ready")


def test_traffic_to_an_adapter_keeps_the_endpoint_not_ready_saying_what_to_do(
    sqlite_store: Store, tmp_path: Path
) -> None:
    version = {"source": "x", "format": "safetensors", "digest": DIGEST}
    sqlite_store.create(
        validate(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Model",
                "metadata": {"name": "m", "namespace": "default"},
                "spec": {
                    "versions": [
                        {**version, "name": "sql", "format": "peft", "adapterOf": "v1"},
                        {**version, "name": "v1"},
                    ]
                },
            }
        )
    )
    sqlite_store.create(
        validate(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Endpoint",
                "metadata": {"name": "chat", "namespace": "default"},
                "spec": {"model": "m", "traffic": [{"version": "sql", "weight": 100}]},
            }
        )
    )
    agent = NodeAgent(sqlite_store, "node-a", tmp_path / "home")
    agent.start()
    try:
        condition = wait_until(lambda: _condition(sqlite_store), what="the Endpoint's Ready")
        assert agent.replicas() == []  # no worker runs an adapter on its own
    finally:
        assert agent.stop(20)
    assert (condition["status"], condition["reason"]) == ("False", "AdapterInTraffic")
    assert "model: chat:sql" in condition["message"]
