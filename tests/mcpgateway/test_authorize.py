"""Who the MCP gateway admits to a namespace by default, and the audit record of a tool call."""

from __future__ import annotations

from modelplane.api import ADMIN_GROUP, Principal, service_account
from modelplane.mcpgateway import belongs_to, call_event
from modelplane.policy import Decision


def test_members_service_accounts_and_administrators_belong_to_a_namespace() -> None:
    # given a member, a service account, a principal with only Kubernetes' service-account
    # group of the namespace, an administrator and an outsider
    member = Principal("alice", frozenset({"modelplane:namespace:team-a"}))
    agent = Principal(service_account("team-a", "helper").name)
    grouped = Principal("ci", frozenset({"system:serviceaccounts:team-a"}))
    admin = Principal("root", frozenset({ADMIN_GROUP}))
    outsider = Principal("bob", frozenset({"modelplane:namespace:team-b"}))

    # then all but the outsider belong to team-a, and none of team-a's belong to team-b
    assert [belongs_to(p, "team-a") for p in (member, agent, grouped, admin, outsider)] == [
        True,
        True,
        True,
        True,
        False,
    ]
    assert [belongs_to(p, "team-b") for p in (member, agent, grouped)] == [False, False, False]


def test_the_record_of_a_tool_call_carries_the_decision_and_the_arguments_digest() -> None:
    # given a denied call
    decision = Decision(False, ("team-a/no-shell",), ("no shell here",), "sha256:set")

    # when it is recorded
    event = call_event(Principal("alice"), "team-a", "shell", "run", {"b": 1, "a": 2}, decision)

    # then the record names the tool, the outcome, the deciding policy and the set's version
    assert (event.category, event.action, event.resource, event.decision) == (
        "tool",
        "tools/call",
        "shell/run",
        "deny",
    )
    assert (event.namespace, event.policies, event.reasons, event.policy_version) == (
        "team-a",
        ("team-a/no-shell",),
        ("no shell here",),
        "sha256:set",
    )
    assert event.arguments_digest.startswith("sha256:")
    assert (
        event.arguments_digest
        == call_event(
            Principal("alice"), "team-a", "shell", "run", {"a": 2, "b": 1}, decision
        ).arguments_digest
    )
