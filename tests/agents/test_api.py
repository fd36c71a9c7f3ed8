"""The instance API of a real `modelplane up`: create, message, state, list, journal, audit, 404."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner
from tests.e2e._proc import UpProcess

from modelplane.cli import cli

HERE = Path(__file__).parent
AGENT = {
    "apiVersion": "modelplane.dev/v1alpha1",
    "kind": "Agent",
    "metadata": {"name": "echo", "namespace": "default"},
    "spec": {"entrypoint": "agent_handlers:echo"},
}


def _wait(url: str, status: str, deadline: float = 20.0) -> dict[str, Any]:
    end = time.monotonic() + deadline
    while True:
        info: dict[str, Any] = httpx.get(url).json()
        if info.get("status") == status:
            return info
        assert time.monotonic() < end, info
        time.sleep(0.02)  # polling a condition with a deadline


def test_instance_lifecycle_through_the_rest_api(tmp_path: Path) -> None:
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    # the test's handlers are an installed package the operator allows
    up = UpProcess(tmp_path, extra=["--agent-packages", "agent_handlers"]).start()
    try:
        r = httpx.post(
            f"{up.url}/apis/modelplane.dev/v1alpha1/namespaces/default/agents", json=AGENT
        )
        assert r.status_code == 201, r.text
        base = f"{up.url}/agents/default/echo/instances"
        r = httpx.post(base, json={"id": "e1", "input": {"messages": 1}})
        assert r.status_code == 201, r.text
        _wait(f"{base}/e1", "waiting")
        assert httpx.post(f"{base}/e1/messages", json={"payload": "hi"}).status_code == 202
        info = _wait(f"{base}/e1", "completed")
        assert info["result"] == ["hi"]
        listed = httpx.get(base, params={"status": "completed"}).json()
        assert [i["id"] for i in listed["items"]] == ["e1"]
        kinds = [r["kind"] for r in httpx.get(f"{base}/e1/journal").json()["items"]]
        assert kinds == ["start", "recv"]
        actions = [a["action"] for a in httpx.get(f"{base}/e1/audit").json()["items"]]
        assert actions == ["create", "message"]
        missing = httpx.post(f"{base}/nobody/messages", json={"payload": 1})
        assert missing.status_code == 404
        assert missing.json()["kind"] == "Status" and missing.json()["reason"] == "NotFound"
        unknown_agent = httpx.post(f"{up.url}/agents/default/ghost/instances", json={})
        assert unknown_agent.status_code == 404
        # and the CLI creates an instance by name as the docs write it (`agents create AGENT NAME`)
        result = CliRunner().invoke(
            cli,
            ["--server", up.url, "agents", "create", "echo", "e2", "--input", '{"messages": 1}'],
        )
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "echo/e2 created"
        assert _wait(f"{base}/e2", "waiting")["id"] == "e2"
    finally:
        up.stop()
