"""The node agent: workers for Endpoints, restarts after a crash, replica status, bad artifacts."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
from tests.control._wait import wait_until

from modelplane.control import get_condition
from modelplane.serving import NodeAgent
from modelplane.store._contract import Store

from .test_artifacts import _safetensors_file


def _model(name: str, versions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"task": "chat", "versions": versions},
    }


def _endpoint(name: str, model: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Endpoint",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}},
        "spec": {"model": model, "replicas": {"min": 1, "max": 1}},
    }


def _status(store: Store, name: str) -> dict[str, Any]:
    return store.get("Endpoint", "default", name).get("status") or {}


def _ready_replica(store: Store, name: str) -> dict[str, Any] | None:
    replicas = _status(store, name).get("replicas") or []
    return replicas[0] if replicas and replicas[0]["ready"] else None


def test_agent_starts_a_worker_restarts_it_after_kill_9_and_reports_replicas(
    sqlite_store: Store, tmp_path: Path
) -> None:
    # given a simulated Endpoint and a node agent
    sqlite_store.create(
        _model(
            "m",
            [
                {
                    "name": "v1",
                    "source": "x",
                    "format": "safetensors",
                    "digest": "sha256:" + "a" * 64,
                }
            ],
        )
    )
    sqlite_store.create(_endpoint("chat", "m", {"modelplane.dev/simulated": "true"}))
    agent = NodeAgent(sqlite_store, "node-a", tmp_path / "home")
    agent.start()
    try:
        # when the agent has started its worker, then status lists a ready replica with its URL
        replica = wait_until(lambda: _ready_replica(sqlite_store, "chat"), what="a ready replica")
        assert replica["version"] == "v1" and replica["node"] == "node-a"
        assert replica["url"].endswith("/v1")
        r = httpx.post(
            f"{replica['url']}/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        )
        assert r.status_code == 200
        status = _status(sqlite_store, "chat")
        assert status["readyReplicas"] == 1
        assert get_condition(status, "Ready")["status"] == "True"
        # when the worker is killed with SIGKILL
        (proc,) = agent.replicas()
        old_pid = proc.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        # then it is restarted (a new process) and the status is ready again at a new URL
        wait_until(
            lambda: (p := agent.replicas()[0]).pid not in (None, old_pid) and p.ready,
            timeout=20,
            what="the restarted worker",
        )
        assert agent.replicas()[0].restarts == 1
        replica = wait_until(
            lambda: (r := _ready_replica(sqlite_store, "chat")) and r["url"] != "" and r,
            what="the restarted replica in status",
        )
        assert httpx.get(replica["url"] + "/models").status_code == 200
    finally:
        assert agent.stop(20)


def test_tampered_artifact_keeps_the_endpoint_not_ready_with_the_reason(
    sqlite_store: Store, tmp_path: Path
) -> None:
    # given a Model whose manifest digest no longer matches the file at its source
    weights = _safetensors_file(tmp_path / "w.safetensors")
    pinned = "sha256:" + "0" * 64
    sqlite_store.create(
        _model(
            "m", [{"name": "v1", "source": str(weights), "format": "safetensors", "digest": pinned}]
        )
    )
    sqlite_store.create(_endpoint("chat", "m"))
    # (the test's folder is the operator's model root: the node agent may read the file)
    agent = NodeAgent(sqlite_store, "node-a", tmp_path / "home", model_roots=[tmp_path])
    agent.start()
    try:
        # then the Endpoint is not Ready, says DigestMismatch, and no worker was started
        cond = wait_until(
            lambda: get_condition(_status(sqlite_store, "chat"), "Ready"),
            what="a Ready condition",
        )
        assert cond["status"] == "False"
        assert cond["reason"] == "DigestMismatch"
        assert pinned in cond["message"]
        assert agent.replicas() == []
    finally:
        assert agent.stop(10)
