"""Run-time Policies (Cedar) on agents' tool calls and approvals: outcomes, audit, fail closed.

On each store backend (the ``store`` fixture): the Policies come through a real informer."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.control._wait import wait_until

from modelplane.agents import InstanceRef
from modelplane.api import Principal, validate
from modelplane.api.errors import Invalid
from modelplane.policy import AgentPolicy, MemoryAudit, RuntimePolicies
from modelplane.store import Store

EXAMPLE = Path(__file__).parents[2] / "examples" / "policies" / "forbid-shell.yaml"
GROUP = "modelplane.dev/v1alpha1"
ASK_FOR_FETCH = """
@id("fetch-needs-approval")
@decision("approval")
@reason("fetching from the web needs a person's approval")
forbid(principal, action == Action::"tools/call", resource)
when { resource.tool == "http.fetch" };
"""
ONLY_LISTED_HOSTS = """
@reason("http.fetch only to listed hosts")
forbid(principal, action == Action::"tools/call", resource)
when { resource.tool == "http.fetch" &&
       !(["docs.example.com", "api.example.com"].contains(context.arguments.host)) };
"""


def _policy(name: str, cedar: str, namespace: str = "modelplane-system", **spec: Any) -> Any:
    return {
        "apiVersion": GROUP,
        "kind": "Policy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scope": "runtime", "cedar": cedar, **spec},
    }


@pytest.fixture
def audit() -> MemoryAudit:
    return MemoryAudit()


@pytest.fixture
def policies(store: Store, audit: MemoryAudit) -> Iterator[RuntimePolicies]:
    # the time limit has its own test with a clock it moves; here a loaded machine must not turn
    # a slow decision into a "(timeout)" deny that the test would read as the policy's verdict
    p = RuntimePolicies(store, audit=audit, timeout=60.0)
    try:
        yield p
    finally:
        p.stop()


def _apply_example(store: Store) -> dict[str, Any]:
    created: dict[str, Any] = store.create(yaml.safe_load(EXAMPLE.read_text()))
    return created


def _tool(agent: AgentPolicy, namespace: str, tool: str, arguments: dict[str, Any]) -> Any:
    return agent.decide_tool(InstanceRef(namespace, "assistant", "demo"), "geo", tool, arguments)


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_shell_is_denied_outside_sandbox_namespaces_and_the_denial_is_audited(
    store: Store, policies: RuntimePolicies, audit: MemoryAudit
) -> None:
    # given the example policy: shell.exec only in namespaces labelled sandbox
    _apply_example(store)
    agent = AgentPolicy(policies)
    # when the assistant in `default` asks to run date, and the one in `sandbox` too
    denied = _tool(agent, "default", "shell.exec", {"command": "date"})
    allowed = _tool(agent, "sandbox", "shell.exec", {"command": "date"})
    other = _tool(agent, "default", "lookup_capital", {"country": "peru"})
    # then only the call outside the sandbox is denied, naming the policy and its reason
    assert not denied.allow and not denied.approval
    assert "modelplane-system/forbid-shell (forbid-shell)" in denied.reason
    assert "shell commands run only in namespaces labelled sandbox" in denied.reason
    assert allowed.allow and other.allow
    # and every decision is in the sink, with the service account, version and arguments digest
    first = audit.events[0]
    assert (first.category, first.action, first.decision) == ("tool", "tools/call", "deny")
    assert first.principal == "system:serviceaccount:default:assistant"
    assert first.resource == "Tool/default/geo/shell.exec"
    assert first.namespace == "default"
    assert first.policies == ("modelplane-system/forbid-shell (forbid-shell)",)
    assert first.arguments_digest == _sha256('{"command":"date"}')
    assert (
        first.policy_version.startswith("sha256:") and first.policy_version == denied.policy_version
    )
    assert [e.decision for e in audit.events] == ["deny", "allow", "allow"]


def test_a_forbid_marked_approval_asks_for_a_person_instead_of_denying(
    store: Store, policies: RuntimePolicies, audit: MemoryAudit
) -> None:
    store.create(_policy("ask-fetch", ASK_FOR_FETCH))
    decision = _tool(AgentPolicy(policies), "team-a", "http.fetch", {"host": "example.org"})
    assert decision.approval and not decision.allow
    assert "fetching from the web needs a person's approval" in decision.reason
    assert audit.events[-1].decision == "approval"


def test_a_plain_forbid_beside_an_approval_one_denies(
    store: Store, policies: RuntimePolicies
) -> None:
    # given one policy asking for approval and one refusing unlisted hosts
    store.create(_policy("ask-fetch", ASK_FOR_FETCH))
    store.create(_policy("hosts", ONLY_LISTED_HOSTS))
    agent = AgentPolicy(policies)
    # then an unlisted host is denied outright, a listed one only waits for a person
    unlisted = _tool(agent, "team-a", "http.fetch", {"host": "evil.example.net"})
    listed = _tool(agent, "team-a", "http.fetch", {"host": "docs.example.com"})
    assert not unlisted.allow and not unlisted.approval
    assert "http.fetch only to listed hosts" in unlisted.reason
    assert listed.approval


def test_the_agents_service_account_is_a_member_of_its_namespace(
    store: Store, policies: RuntimePolicies
) -> None:
    store.create(
        _policy(
            "no-team-b-tools",
            'forbid(principal in Namespace::"team-b", action == Action::"tools/call", resource);',
        )
    )
    agent = AgentPolicy(policies)
    assert not _tool(agent, "team-b", "add", {"a": 1, "b": 2}).allow
    assert _tool(agent, "team-a", "add", {"a": 1, "b": 2}).allow


def test_a_namespaces_own_policy_does_not_reach_other_namespaces(
    store: Store, policies: RuntimePolicies
) -> None:
    store.create(
        _policy(
            "no-add",
            'forbid(principal, action, resource) when { resource.tool == "add" };',
            "team-a",
        )
    )
    agent = AgentPolicy(policies)
    assert not _tool(agent, "team-a", "add", {}).allow
    assert _tool(agent, "team-b", "add", {}).allow


def test_tool_arguments_that_are_not_json_are_a_clear_deny(
    store: Store, policies: RuntimePolicies, audit: MemoryAudit
) -> None:
    _apply_example(store)
    agent = AgentPolicy(policies)
    refused = _tool(agent, "sandbox", "shell.exec", {"command": {"when": {1, 2}}})
    nan = _tool(agent, "sandbox", "shell.exec", {"command": float("nan")})
    keyed = _tool(agent, "sandbox", "shell.exec", {"command": {1: "x"}})
    assert (
        not refused.allow and "arguments.command.when is a set, not a JSON value" in refused.reason
    )
    assert not nan.allow and "arguments.command is nan, which JSON cannot hold" in nan.reason
    assert not keyed.allow and "has the key 1, not a string" in keyed.reason
    assert [e.decision for e in audit.events] == ["deny", "deny", "deny"]
    assert all(e.arguments_digest == "" for e in audit.events)


def test_an_engine_that_raises_denies_and_is_audited_as_such(
    store: Store, policies: RuntimePolicies, audit: MemoryAudit, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a runtime Policy, and a Cedar engine that fails on the next request
    _apply_example(store)
    policies.start()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("engine exploded")

    monkeypatch.setattr("cedarpy.is_authorized", broken)
    # when a harmless tool is called, then it is denied (fail closed), and the sink says why
    decision = _tool(AgentPolicy(policies), "sandbox", "add", {"a": 1})
    assert not decision.allow
    assert "the policy engine raised RuntimeError: engine exploded" in decision.reason
    assert audit.events[-1].decision == "deny"
    assert audit.events[-1].policies == ("(engine)",)


def test_a_decision_slower_than_the_limit_is_a_deny(store: Store, audit: MemoryAudit) -> None:
    # given a clock that moves a second during each decision, and a limit of half a second
    ticks = iter(float(i) for i in range(1000))
    slow = RuntimePolicies(store, audit=audit, timeout=0.5, clock=lambda: next(ticks))
    _apply_example(store)
    try:
        decision = _tool(AgentPolicy(slow), "sandbox", "add", {})
    finally:
        slow.stop()
    assert not decision.allow
    assert "over the limit of 0.5s" in decision.reason
    assert audit.events[-1].policies == ("(timeout)",)


def test_a_stored_policy_cedar_cannot_parse_fails_closed(
    store: Store, policies: RuntimePolicies
) -> None:
    # given a runtime Policy stored without validation (as one written before it parsed Cedar)
    store.create(_policy("broken", "forbid(principal, action, resource) when { ;"))
    decision = _tool(AgentPolicy(policies), "team-a", "add", {})
    assert not decision.allow
    assert "Cedar cannot parse this Policy; fix or delete it" in decision.reason


def test_invalid_cedar_in_a_runtime_policy_is_refused_with_line_and_column() -> None:
    bad = _policy(
        "bad",
        "permit(principal, action, resource);\nforbid(principal, action,\n  resource) when { resource.tool == };",
    )
    with pytest.raises(Invalid) as refused:
        validate(bad)
    message = str(refused.value)
    assert "spec.cedar" in message and "line 3, column" in message


def test_a_policy_change_racing_decisions_each_decision_names_the_version_it_used(
    store: Store, policies: RuntimePolicies, audit: MemoryAudit
) -> None:
    # given no forbid on `add`, decided over and over in a thread
    store.create(
        _policy("quiet", 'forbid(principal, action, resource) when { resource.tool == "none" };')
    )
    agent = AgentPolicy(policies)
    before = _tool(agent, "team-a", "add", {})
    stop = threading.Event()
    seen: list[tuple[bool, str]] = []

    def decide() -> None:
        while not stop.is_set():
            d = _tool(agent, "team-a", "add", {})
            seen.append((d.allow, d.policy_version))

    worker = threading.Thread(target=decide)
    worker.start()
    try:
        # when the policy changes to forbid `add` while decisions run
        current = store.get("Policy", "modelplane-system", "quiet")
        current["spec"]["cedar"] = (
            'forbid(principal, action, resource) when { resource.tool == "add" };'
        )
        store.update(current)
        wait_until(lambda: any(not allow for allow, _ in seen), what="a decision with the change")
    finally:
        stop.set()
        worker.join(10)
    # then every decision is consistent with the version it names: old version allows, new denies
    versions = {version: allow for allow, version in seen}
    assert len(versions) == 2 and versions[before.policy_version] is True
    assert all(versions[version] == allow for allow, version in seen)
    assert {e.policy_version for e in audit.events} == set(versions)


def test_only_admins_and_principals_a_policy_permits_may_decide_approvals(
    store: Store, policies: RuntimePolicies, audit: MemoryAudit
) -> None:
    approval = {"id": "a1", "namespace": "team-a", "agent": "assistant", "tool": "http.fetch"}
    agent = AgentPolicy(policies)
    alice = Principal("alice", frozenset({"system:authenticated", "approvers"}))
    bob = Principal("bob", frozenset({"system:authenticated"}))
    admin = Principal("root", frozenset({"system:masters"}))
    # without a permit only an administrator may
    assert agent.may_decide(admin, approval).allow
    assert not agent.may_decide(alice, approval).allow
    assert audit.events[-1].category == "approval" and audit.events[-1].decision == "deny"
    # given a Policy permitting the group approvers in team-a
    store.create(
        _policy(
            "approvers",
            'permit(principal in Group::"approvers", action == Action::"approval.decide",'
            ' resource in Namespace::"team-a");',
        )
    )
    wait_until(lambda: agent.may_decide(alice, approval, record=False).allow, what="the permit")
    assert not agent.may_decide(bob, approval).allow
    assert not agent.may_decide(alice, {**approval, "namespace": "team-b"}).allow
