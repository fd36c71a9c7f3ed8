"""Delegation: an agent acting for a user gets at most the user's permissions, never more."""

from __future__ import annotations

from modelplane.api import Principal, service_account
from modelplane.policy import (
    NOT_DELEGATED,
    MemoryAudit,
    PolicySet,
    Relations,
    compile_policy,
    decide_on_behalf,
)

from ._relations import endpoint, member, relationship

# ml-team members may update Endpoints; agents may not delete anything
RULES = """
@id("only-ml-team")
@reason("only the ml-team updates Endpoints")
forbid(principal, action == Action::"update", resource)
unless { principal in Group::"ml-team" };

@id("agents-keep")
@reason("agents do not delete")
forbid(principal, action == Action::"delete", resource)
when { principal in Group::"agents" };
"""
AGENT = Principal(service_account("team-a", "helper").name, frozenset({"agents"}))
ALICE = Principal("alice")  # in ml-team through a Relationship
BOB = Principal("bob")  # in no group


def _delegation(user: str) -> dict[str, object]:
    return relationship(
        f"helper-for-{user}",
        {"kind": "Agent", "name": "helper", "namespace": "team-a"},
        "delegated-to",
        {"kind": "User", "name": user},
    )


def _world(*extra: dict[str, object]) -> tuple[PolicySet, Relations]:
    policies = PolicySet([compile_policy("modelplane-system", "rules", RULES)])
    relations = Relations(
        objects=[
            member("alice-ml", "User", "alice", "ml-team"),
            _delegation("alice"),
            _delegation("bob"),
            *extra,
        ]
    )
    return policies, relations


def _member_agent() -> dict[str, object]:
    # the agent's own membership: ServiceAccount subject of the agent's service account
    return relationship(
        "helper-sa-ml",
        {"kind": "ServiceAccount", "name": "helper", "namespace": "team-a"},
        "member-of",
        {"kind": "Group", "name": "ml-team"},
    )


def test_agent_acting_for_a_permitted_user_is_allowed_when_it_is_allowed_itself() -> None:
    policies, relations = _world(_member_agent())
    audit = MemoryAudit()
    # when the agent (an ml-team member) updates an Endpoint for alice (an ml-team member)
    decision = decide_on_behalf(
        AGENT, ALICE, policies, "update", endpoint("chat"), relations=relations, audit=audit
    )
    # then it is allowed, and audited under the agent, on behalf of alice
    assert decision.allowed
    (event,) = audit.events
    assert (event.principal, event.on_behalf_of, event.decision) == (AGENT.name, "alice", "allow")
    assert event.resource == "Endpoint/team-a/chat"


def test_a_user_cannot_lend_an_agent_what_the_user_lacks() -> None:
    # given the agent may update Endpoints itself, bob may not
    policies, relations = _world(_member_agent())
    assert policies.decide(AGENT, "update", endpoint("chat"), relations=relations).allowed
    # when it acts for bob
    decision = decide_on_behalf(
        AGENT, BOB, policies, "update", endpoint("chat"), relations=relations
    )
    # then it is denied by bob's lack, and the reason says so
    assert not decision.allowed
    assert decision.policies == ("modelplane-system/rules#0 (only-ml-team)",)
    assert decision.reasons[0].startswith("on behalf of user 'bob'")


def test_acting_for_a_privileged_user_does_not_widen_the_agent() -> None:
    # given alice may delete (no rule stops her), the agent may not (agents do not delete)
    policies, relations = _world()
    assert policies.decide(ALICE, "delete", endpoint("chat"), relations=relations).allowed
    # when the agent deletes on alice's behalf
    decision = decide_on_behalf(
        AGENT, ALICE, policies, "delete", endpoint("chat"), relations=relations
    )
    # then the agent's own limit still holds
    assert not decision.allowed
    assert decision.policies == ("modelplane-system/rules#1 (agents-keep)",)


def test_acting_for_an_administrator_does_not_make_the_agent_one() -> None:
    # given an administrator root, delegated to the agent, and an update only ml-team may do
    root = Principal("root", frozenset({"system:masters", "ml-team"}))
    policies, relations = _world(_delegation("root"))
    # when the agent (not in ml-team) updates on root's behalf
    decision = decide_on_behalf(
        AGENT, root, policies, "update", endpoint("chat"), relations=relations
    )
    # then it is denied: root's groups are not lent
    assert not decision.allowed
    assert decision.policies == ("modelplane-system/rules#0 (only-ml-team)",)


def test_an_agent_cannot_claim_a_user_it_was_not_delegated() -> None:
    policies, relations = _world(_member_agent())
    carol = Principal("carol", frozenset({"ml-team"}))
    audit = MemoryAudit()
    decision = decide_on_behalf(
        AGENT, carol, policies, "update", endpoint("chat"), relations=relations, audit=audit
    )
    assert not decision.allowed and decision.policies == (NOT_DELEGATED,)
    assert "delegated-to" in decision.reasons[0]
    assert audit.events[0].decision == "deny"


def test_delegation_is_not_transitive() -> None:
    # given helper acts for alice, and a second agent acts for helper's service account
    second = Principal(service_account("team-a", "second").name)
    chained = relationship(
        "second-for-helper",
        {"kind": "Agent", "name": "second", "namespace": "team-a"},
        "delegated-to",
        {"kind": "User", "name": AGENT.name},
    )
    policies, relations = _world(chained)
    # then the second agent may act for helper, but not for alice through it
    assert relations.delegates(second, AGENT)
    decision = decide_on_behalf(
        second, ALICE, policies, "get", endpoint("chat"), relations=relations
    )
    assert not decision.allowed and decision.policies == (NOT_DELEGATED,)
