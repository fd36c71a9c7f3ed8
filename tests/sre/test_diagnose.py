"""Diagnosis: each analyzer on hand-made objects, and `modelplane diagnose` against a server."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.cli._platform import run_cli

from modelplane.api import Endpoint
from modelplane.api.errors import Invalid
from modelplane.sre import diagnose
from modelplane.sre._diagnose import DENIAL_SPIKE
from modelplane.store import Store

NS = "default"
SPLIT = [{"version": "v1", "weight": 50}, {"version": "v2", "weight": 50}]


def _page(scope: str) -> dict[str, Any]:
    return {
        "key": f"ttftP99/page-1h/{scope}",
        "objective": "ttftP99",
        "severity": "page",
        "rule": "14.4x over 1h and 5m",
        "scope": scope,
        "longBurn": 14.2,
        "shortBurn": 15.0,
        "since": "2026-12-07T11:00:00.000Z",
        "message": f"chat version {scope}: ttftP99 burns its error budget at 14.2x over 1h",
    }


def _endpoint(status: dict[str, Any], slo: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Endpoint",
        "metadata": {"name": "chat", "namespace": NS},
        "spec": {"model": "m", "traffic": SPLIT, "slo": slo or {"ttftP99": "500ms"}},
        "status": status,
    }


def test_an_slo_burn_names_the_version_the_objective_and_the_healthy_one() -> None:
    figures = {
        "v1": {"window": "1h", "requests": 500, "errorRate": 0, "ttftP99": 0.12},
        "v2": {"window": "1h", "requests": 500, "errorRate": 0, "ttftP99": 1.2},
    }
    slo = {"alerts": [_page("v2")], "versions": figures}
    endpoint = _endpoint({"slo": slo, "traffic": SPLIT})
    [finding] = diagnose({"Endpoint": [endpoint]})
    assert finding.severity == "critical" and finding.object == "Endpoint/chat"
    assert finding.cause == (
        "version v2's TTFT p99 1.20 s over the last 1h exceeds the objective (ttftP99 500ms);"
        " burn 14.2x and 15.0x over 1h and 5m (page)"
    )
    assert "since 2026-12-07T11:00:00.000Z" in finding.evidence
    assert finding.fix.startswith(
        "v1 (TTFT p99 120 ms over the last 1h) is healthy: shift traffic to v1"
    )
    assert "roll back v2" in finding.fix


def test_the_endpoint_wide_alert_is_folded_into_the_version_that_causes_it() -> None:
    whole = {**_page("endpoint"), "key": "ttftP99/page-1h/endpoint"}
    endpoint = _endpoint({"slo": {"alerts": [whole, _page("v2")]}, "traffic": SPLIT})
    [finding] = diagnose({"Endpoint": [endpoint]})
    assert finding.cause.startswith("version v2's")
    [alone] = diagnose({"Endpoint": [_endpoint({"slo": {"alerts": [whole]}})]})
    assert alone.cause.startswith("its ttftP99") and "roll back" in alone.fix


def test_without_figures_the_burn_is_named_by_its_objective() -> None:
    endpoint = _endpoint({"slo": {"alerts": [_page("v2")]}, "traffic": SPLIT})
    [finding] = diagnose({"Endpoint": [endpoint]})
    assert finding.cause.startswith("version v2's ttftP99 exceeds the objective (ttftP99 500ms)")


def test_a_held_split_is_reported_with_how_to_undo_it() -> None:
    held = {"active": True, "playbook": "shift-traffic", "message": "moved", "actedAt": "t"}
    endpoint = _endpoint({"remediation": held, "traffic": [{"version": "v1", "weight": 100}]})
    [finding] = diagnose({"Endpoint": [endpoint]})
    assert "holds the traffic split" in finding.cause
    assert "modelplane rollout promote chat" in finding.fix


def test_crash_looping_and_not_ready_replicas() -> None:
    replicas = [
        {
            "name": "chat-0",
            "version": "v1",
            "ready": False,
            "message": "worker ended (exit 1); restart 4 in 8s",
        },
        {"name": "chat-1", "version": "v1", "ready": False, "message": "starting"},
        {"name": "chat-2", "version": "v1", "ready": True},
    ]
    findings = diagnose({"Endpoint": [_endpoint({"replicas": replicas})]})
    assert [(f.severity, f.cause.split(" is ")[-1]) for f in findings] == [
        ("critical", "crash-looping (4 restarts)"),
        ("warning", "not ready"),
    ]


@pytest.mark.parametrize(
    ("phase", "message", "cause"),
    [
        ("RolledBack", "rolled back to v1: errors 2%", "rolled back"),
        ("Paused", "failed analysis", "paused"),
        ("Progressing", "v2 at 10%: waiting for a ready replica of v2", "stuck"),
    ],
)
def test_failed_and_stuck_rollouts(phase: str, message: str, cause: str) -> None:
    state = {"phase": phase, "canary": "v2", "message": message}
    [finding] = diagnose({"Endpoint": [_endpoint({"rollout": state})]})
    assert cause in finding.cause and finding.evidence == message


def test_an_unschedulable_claim_and_a_waiting_one() -> None:
    def claim(name: str, reason: str) -> dict[str, Any]:
        condition = {"type": "Allocated", "status": "False", "reason": reason, "message": "m"}
        return {
            "kind": "ResourceClaim",
            "metadata": {"name": name},
            "status": {"conditions": [condition]},
        }

    findings = diagnose(
        {"ResourceClaim": [claim("a", "Unschedulable"), claim("b", "WaitingForClaims")]}
    )
    assert [(f.object, f.cause) for f in findings] == [
        ("ResourceClaim/a", "not schedulable (Unschedulable)")
    ]


def test_a_model_whose_artifact_was_tampered_with_is_critical() -> None:
    condition = {"type": "Ready", "status": "False", "reason": "ArtifactTampered", "message": "m"}
    model = {
        "kind": "Model",
        "metadata": {"name": "m"},
        "status": {
            "conditions": [condition],
            "versions": [
                {"name": "v1", "ready": False, "message": "model.safetensors: expected sha256:a"}
            ],
        },
    }
    [finding] = diagnose({"Model": [model]})
    assert finding.severity == "critical" and "ArtifactTampered" in finding.cause
    assert finding.evidence == "v1: model.safetensors: expected sha256:a"


def test_remediation_is_validated_and_off_by_default() -> None:
    endpoint = _endpoint({}, {"ttftP99": "500ms", "remediation": {"playbook": "shift-traffic"}})
    del endpoint["status"]
    slo = Endpoint.model_validate(endpoint).spec.slo
    assert slo is not None and slo.remediation is not None
    assert slo.remediation.enabled is False and slo.remediation.cooldown == "10m"
    endpoint["spec"]["slo"]["remediation"] = {"playbook": "reboot-everything"}
    with pytest.raises((Invalid, ValueError)):
        Endpoint.model_validate(endpoint)


# -- the command -------------------------------------------------------------------------------------


def test_diagnose_prints_a_table_and_json(platform: tuple[str, Store]) -> None:
    url, store = platform
    # given an Endpoint whose v2 pages
    endpoint = _endpoint({})
    del endpoint["status"]
    created = store.create(endpoint)
    store.update_status({**created, "status": {"slo": {"alerts": [_page("v2")]}, "traffic": SPLIT}})
    # when `modelplane diagnose` runs
    table = run_cli("--server", url, "diagnose")
    # then the table names the object and the cause, then the evidence and the fix
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["SEVERITY", "OBJECT", "CAUSE"]
    assert lines[1].split()[:2] == ["critical", "Endpoint/chat"]
    assert "fix: v1 is healthy: shift traffic to v1" in table.stdout
    # and one object, as JSON
    as_json = orjson.loads(
        run_cli("--server", url, "diagnose", "endpoint/chat", "-o", "json").stdout
    )
    assert [f["object"] for f in as_json] == ["Endpoint/chat"]
    # and a kind no analyzer reads is a clear error
    bad = run_cli("--server", url, "diagnose", "secret/x")
    assert bad.exit_code != 0 and "no analyzer reads Secret" in bad.output
    # and an Agent whose instances cannot be listed here (no agent runtime) is read all the same
    agent = {"apiVersion": "modelplane.dev/v1alpha1", "kind": "Agent"}
    store.create({**agent, "metadata": {"name": "helper", "namespace": NS}, "spec": {}})
    agents = run_cli("--server", url, "diagnose", "agents")
    assert agents.exit_code == 0 and "no problem found" in agents.stdout, agents.output
    # and a healthy namespace says so
    healthy = run_cli("--server", url, "diagnose", "models")
    assert healthy.exit_code == 0 and "no problem found" in healthy.stdout


def test_an_agent_not_ready_and_its_failed_corrupt_and_stuck_instances() -> None:
    condition = {
        "type": "Ready",
        "status": "False",
        "reason": "LoadFailed",
        "message": "no module x",
    }
    agent = {"kind": "Agent", "metadata": {"name": "helper"}, "status": {"conditions": [condition]}}

    def instance(id_: str, status: str, updated: float, error: str | None = None) -> dict[str, Any]:
        return {"agent": "helper", "id": id_, "status": status, "updated": updated, "error": error}

    now = 10_000.0
    instances = [
        instance("a", "failed", now - 5, "tool crashed"),
        instance("b", "corrupt", now - 5, "journal crc mismatch"),
        instance("c", "running", now - 3600),
        instance("d", "running", now - 5),
    ]
    findings = diagnose({"Agent": [agent], "AgentInstance": instances}, now=now)
    assert [(f.severity, f.object, f.cause.split(":")[0]) for f in findings] == [
        ("critical", "AgentInstance/helper/b", "corrupt"),
        ("warning", "Agent/helper", "not ready (LoadFailed)"),
        ("warning", "AgentInstance/helper/a", "failed"),
        ("warning", "AgentInstance/helper/c", "stuck"),
    ]
    assert findings[2].evidence == "tool crashed" and "60 min" in findings[3].cause


def _denial(principal: str, action: str, resource: str, decision: str = "deny") -> Any:
    return {
        "principal": principal,
        "action": action,
        "resource": resource,
        "decision": decision,
        "namespace": "team-a",
        "policies": ["no-shell"],
        "reasons": ["shell is for sandbox namespaces only"],
    }


def test_a_spike_of_denials_of_one_callers_action_is_named_with_the_policy() -> None:
    sa = "system:serviceaccount:team-a:assistant"
    records = [
        _denial(sa, "tools/call", f"Tool/shell.run-{i % 2}") for i in range(DENIAL_SPIKE + 5)
    ]
    records += [_denial("alice", "model.call", "Endpoint/team-a/chat") for _ in range(3)]
    records += [_denial(sa, "model.call", "Endpoint/team-a/chat", "allow") for _ in range(50)]
    [finding] = diagnose({"AuditRecord": records})
    assert (finding.severity, finding.object) == ("warning", sa)
    assert finding.cause == f"{DENIAL_SPIKE + 5} denials of tools/call (a spike)"
    assert "Tool/shell.run-0, Tool/shell.run-1" in finding.evidence
    assert "no-shell" in finding.evidence and "sandbox namespaces" in finding.evidence
    assert "runtime Policy" in finding.fix
