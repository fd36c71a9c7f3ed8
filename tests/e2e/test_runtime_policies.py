"""Runtime Policies on a real `modelplane up` (SQLite) and the quickstart assistant's real MCP
server: the example policy denies its shell tool, the denial is in the instance's audit trail;
a policy asking for approval makes the call wait until `modelplane approvals approve`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import yaml
from click.testing import CliRunner
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess

from modelplane.cli import cli
from modelplane.control import get_condition

ROOT = Path(__file__).parents[2]
AGENT_FOLDER = ROOT / "examples" / "quickstart" / "agent"
FORBID_SHELL = ROOT / "examples" / "policies" / "forbid-shell.yaml"
INSTANCES = "/agents/default/assistant/instances"
POLICIES = "/apis/modelplane.dev/v1alpha1/namespaces/modelplane-system/policies"
ASK_FOR_SHELL = """
@id("shell-needs-approval")
@decision("approval")
@reason("a person approves shell commands")
forbid(principal, action == Action::"tools/call", resource)
when { resource.tool == "shell.exec" };
"""


def _get(client: httpx.Client, path: str) -> Any:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return r.json()


def _agent_ready(client: httpx.Client) -> bool:
    r = client.get("/apis/modelplane.dev/v1alpha1/namespaces/default/agents/assistant")
    ready = get_condition((r.json().get("status") or {}) if r.status_code == 200 else {}, "Ready")
    return (ready or {}).get("status") == "True"


def _answer(client: httpx.Client, turn: int) -> Any:
    def answered() -> dict[str, Any] | None:
        info: dict[str, Any] = _get(client, f"{INSTANCES}/demo")
        result = info.get("result") or {}
        return info if result.get("turn") == turn else None

    return wait_until(answered, timeout=120, what=f"the assistant's answer to turn {turn}")


def _cli(url: str, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--server", url, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_example_policy_denies_the_assistants_shell_call_and_approval_lets_it_run(
    tmp_path: Path,
) -> None:
    # given `modelplane up` with the quickstart assistant and the forbid-shell runtime Policy
    extra = ["-f", str(AGENT_FOLDER), "-f", str(FORBID_SHELL)]
    up = UpProcess(tmp_path / "home", extra=extra)
    try:
        with httpx.Client(base_url=up.start().url, timeout=30) as client:
            wait_until(lambda: _agent_ready(client), timeout=60, what="the assistant Ready")
            wait_until(
                lambda: client.get(f"{POLICIES}/forbid-shell").status_code == 200,
                timeout=60,
                what="the forbid-shell Policy applied",
            )
            r = client.post(INSTANCES, json={"id": "demo", "input": {"pause": 0}})
            assert r.status_code == 201, r.text
            # when it is asked to run date in the namespace default (not a sandbox)
            r = client.post(f"{INSTANCES}/demo/messages", json={"payload": "run date"})
            assert r.status_code == 202, r.text
            # then the call is denied with the policy's reason, and the assistant says so
            answer = _answer(client, 1)["result"]["answer"]
            assert "I may not run 'date'" in answer
            assert "shell commands run only in namespaces labelled sandbox" in answer
            # and the instance's audit trail holds the denial, naming the policy and its version
            audit = _get(client, f"{INSTANCES}/demo/audit")["items"]
            [denial] = [a for a in audit if a["action"] == "tool.deny"]
            assert denial["actor"] == "instance:default/assistant/demo"
            assert denial["detail"]["tool"] == "shell.exec"
            assert denial["detail"]["arguments"] == {"command": "date"}
            assert "modelplane-system/forbid-shell (forbid-shell)" in denial["detail"]["reason"]
            assert denial["detail"]["policyVersion"].startswith("sha256:")
            # and the persistent audit log has it too, through `modelplane audit log`
            [logged] = _logged_shell_denials(up.url)
            assert logged["principal"] == "system:serviceaccount:default:assistant"
            assert logged["action"] == "tools/call" and "shell.exec" in logged["resource"]
            assert logged["policies"] == ["modelplane-system/forbid-shell (forbid-shell)"]
            assert logged["policyVersion"] == denial["detail"]["policyVersion"]
            assert logged["argumentsDigest"].startswith("sha256:")

            # given the policy changed to ask a person instead
            policy = yaml.safe_load(FORBID_SHELL.read_text())
            policy["spec"]["cedar"] = ASK_FOR_SHELL
            r = client.put(f"{POLICIES}/forbid-shell", json=policy)
            assert r.status_code == 200, r.text
            # when the assistant is asked again, the call waits for a person
            asked = _Asker(client, answered_turns=1)
            wait_until(asked.waiting, timeout=120, what="the shell call waiting for approval")
            listed = json.loads(_cli(up.url, "approvals", "list", "-o", "json"))["items"]
            [waiting] = [a for a in listed if a["decision"] == "pending"]
            assert (waiting["instance"], waiting["tool"]) == ("demo", "shell.exec")
            table = _cli(up.url, "approvals", "list")
            assert waiting["id"] in table and "assistant/demo" in table
            # and once approved through the CLI, the command runs and its output is the answer
            out = _cli(up.url, "approvals", "approve", waiting["id"], "--reason", "checked")
            assert out.strip() == f"approval/{waiting['id']} approved"
            answer = _answer(client, asked.sent)["result"]["answer"]
            assert "UTC" in answer and "may not" not in answer
            actions = [a["action"] for a in _get(client, f"{INSTANCES}/demo/audit")["items"]]
            assert "tool.approval" in actions and "approval.approved" in actions
            # and a second decision is refused, naming the first
            again = CliRunner().invoke(
                cli, ["--server", up.url, "approvals", "deny", waiting["id"]]
            )
            assert again.exit_code != 0 and "already approved by local-operator" in again.output
    finally:
        up.stop()


def _logged_shell_denials(url: str) -> list[dict[str, Any]]:
    out = _cli(url, "audit", "log", "--category", "tool", "--decision", "deny", "-o", "json")
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return [i for i in items if "shell.exec" in i["resource"]]


class _Asker:
    """Asks `run date` again after each answer until a call waits for approval (the changed
    Policy reaches the runtime through a watch: an answer before that is still a denial)."""

    def __init__(self, client: httpx.Client, answered_turns: int) -> None:
        self.client = client
        self.sent = answered_turns

    def waiting(self) -> bool:
        info = _get(self.client, f"{INSTANCES}/demo")
        if info["status"] == "waiting_approval":
            return True
        if info["status"] == "idle" and (info.get("result") or {}).get("turn") == self.sent:
            r = self.client.post(f"{INSTANCES}/demo/messages", json={"payload": "run date"})
            assert r.status_code == 202, r.text
            self.sent += 1
        return False
