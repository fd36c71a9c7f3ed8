"""Relationship tuples resolve into Cedar entity parents: nesting, cycles, scope, live changes."""

from __future__ import annotations

from typing import Any

from tests.control._wait import wait_until

from modelplane import api
from modelplane.api import Principal, service_account
from modelplane.policy import (
    PolicySet,
    Relations,
    compile_policy,
    resource_entity,
)
from modelplane.store import Store

from ._relations import endpoint, member, relationship

ONLY_ML = """
@id("only-ml-team")
@reason("only the ml-team updates Endpoints")
forbid(principal, action == Action::"update", resource)
unless { principal in Group::"ml-team" };
"""
CALLERS = """
@id("callers")
@reason("call an Endpoint you may use")
forbid(principal, action == Action::"model.call", resource)
unless { principal in resource };
"""


def _policies(cedar: str) -> PolicySet:
    return PolicySet([compile_policy("modelplane-system", "p", cedar)])


def _parents(relations: Relations, principal: Principal) -> set[tuple[str, str]]:
    own = relations.principal_entities(principal)[0]
    return {(p["type"], p["id"]) for p in own["parents"]}


def test_member_of_a_group_makes_the_user_a_member_for_cedar() -> None:
    # given alice is a member of ml-team by a Relationship, bob is not
    relations = Relations(objects=[member("alice-ml", "User", "alice", "ml-team")])
    policies = _policies(ONLY_ML)
    alice, bob = Principal("alice"), Principal("bob")
    # when each updates an Endpoint
    # then alice is allowed through the relationship and bob is denied by the policy
    assert policies.decide(alice, "update", endpoint("chat"), relations=relations).allowed
    denied = policies.decide(bob, "update", endpoint("chat"), relations=relations)
    assert not denied.allowed and denied.policies == ("modelplane-system/p (only-ml-team)",)
    # and without the relations alice is denied too: the parent came from the tuple
    assert not policies.decide(alice, "update", endpoint("chat")).allowed


def test_a_chain_of_fifty_nested_groups_resolves_to_every_ancestor() -> None:
    # given alice in g0, g0 in g1, ..., g48 in g49 = ml-team's parent chain
    tuples = [member("alice-g0", "User", "alice", "g0")]
    tuples += [member(f"g{i}-g{i + 1}", "Group", f"g{i}", f"g{i + 1}") for i in range(49)]
    tuples.append(member("g49-ml", "Group", "g49", "ml-team"))
    relations = Relations(objects=tuples)
    alice = Principal("alice")
    # when her entity is built
    parents = _parents(relations, alice)
    # then it holds all fifty groups and the top one, and the policy sees her in ml-team
    assert {("Group", f"g{i}") for i in range(50)} | {("Group", "ml-team")} <= parents
    assert _policies(ONLY_ML).decide(alice, "update", endpoint("chat"), relations=relations).allowed


def test_a_group_reached_through_a_token_group_counts_too() -> None:
    # given the token says carol is in "oncall"; a Relationship nests oncall in ml-team
    relations = Relations(objects=[member("oncall-ml", "Group", "oncall", "ml-team")])
    carol = Principal("carol", frozenset({"oncall"}))
    # then carol is in ml-team for Cedar
    assert ("Group", "ml-team") in _parents(relations, carol)
    assert _policies(ONLY_ML).decide(carol, "update", endpoint("chat"), relations=relations).allowed


def test_a_cycle_of_groups_terminates_and_each_member_is_in_both() -> None:
    # given A member-of B and B member-of A, and alice member-of A
    relations = Relations(
        objects=[
            member("a-b", "Group", "A", "B"),
            member("b-a", "Group", "B", "A"),
            member("alice-a", "User", "alice", "A"),
            member("b-ml", "Group", "B", "ml-team"),
        ]
    )
    alice = Principal("alice")
    # when her entity is built and a decision made (Cedar refuses cyclic entity graphs)
    parents = _parents(relations, alice)
    decision = _policies(ONLY_ML).decide(alice, "update", endpoint("chat"), relations=relations)
    # then the walk ended with both groups and what lies above them, and Cedar decided
    assert {("Group", "A"), ("Group", "B"), ("Group", "ml-team")} <= parents
    assert decision.allowed, decision.reasons
    # and a group is never its own ancestor
    assert ("Group", "A") not in relations.graph.ancestors(("Group", "A"))


def test_can_use_lets_one_policy_cover_every_resource() -> None:
    # given the group ml-team may use team-a/chat and an Agent may use team-a/embed
    relations = Relations(
        objects=[
            relationship(
                "ml-chat",
                {"kind": "Group", "name": "ml-team"},
                "can-use",
                {"kind": "Endpoint", "name": "chat"},
                namespace="team-a",
            ),
            relationship(
                "helper-embed",
                {"kind": "Agent", "name": "helper", "namespace": "team-a"},
                "can-use",
                {"kind": "Endpoint", "name": "embed", "namespace": "team-a"},
                namespace="team-a",
            ),
        ]
    )
    policies = _policies(CALLERS)
    member_ = Principal("dana", frozenset({"ml-team"}))
    agent = Principal(service_account("team-a", "helper").name)
    # then each may call what it may use, and nothing else
    assert policies.decide(member_, "model.call", endpoint("chat"), relations=relations).allowed
    assert not policies.decide(
        member_, "model.call", endpoint("embed"), relations=relations
    ).allowed
    assert policies.decide(agent, "model.call", endpoint("embed"), relations=relations).allowed
    assert not policies.decide(agent, "model.call", endpoint("chat"), relations=relations).allowed


def test_owner_of_a_namespace_is_a_member_and_an_owner() -> None:
    relations = Relations(
        objects=[
            relationship(
                "alice-owns-a",
                {"kind": "User", "name": "alice"},
                "owner-of",
                {"kind": "Namespace", "name": "team-a"},
            )
        ]
    )
    alice = Principal("alice")
    assert {("Namespace", "team-a"), ("Owner", "Namespace/team-a")} <= _parents(relations, alice)
    assert relations.owns_namespace(alice, "team-a")
    assert not relations.owns_namespace(alice, "team-b")
    assert not relations.owns_namespace(Principal("bob"), "team-a")


def test_a_tenant_relationship_reaching_outside_its_namespace_takes_no_effect() -> None:
    # given, in team-a, a tuple that would make mallory a member of team-b and of a global group
    relations = Relations(
        objects=[
            relationship(
                "grab-b",
                {"kind": "User", "name": "mallory"},
                "member-of",
                {"kind": "Namespace", "name": "team-b"},
                namespace="team-a",
            ),
            relationship(
                "grab-admins",
                {"kind": "User", "name": "mallory"},
                "member-of",
                {"kind": "Group", "name": "system:masters"},
                namespace="team-a",
            ),
        ]
    )
    # then mallory gains no parent, and both tuples are reported with the fix
    assert _parents(relations, Principal("mallory")) == set()
    assert len(relations.graph.ignored) == 2
    assert "outside namespace 'team-a'" in relations.graph.ignored[0]
    assert "modelplane-system" in relations.graph.ignored[0]


def test_delegated_to_is_not_a_parent() -> None:
    # given an agent that acts for the administrator alice
    relations = Relations(
        objects=[
            relationship(
                "helper-for-alice",
                {"kind": "Agent", "name": "helper", "namespace": "team-a"},
                "delegated-to",
                {"kind": "User", "name": "alice"},
            ),
            member("alice-ml", "User", "alice", "ml-team"),
        ]
    )
    agent = Principal(service_account("team-a", "helper").name)
    # then the agent inherits nothing of alice's: its only parent is its own namespace
    assert _parents(relations, agent) == {("Namespace", "team-a")}
    assert relations.delegates(agent, Principal("alice"))
    assert not relations.delegates(agent, Principal("bob"))


def _create(store: Store, obj: dict[str, Any]) -> None:
    store.create(api.validate(obj))


def test_relationships_in_the_store_are_followed_and_recomputed_on_change(store: Store) -> None:
    # given a store with alice in ml-team, followed by Relations
    _create(store, member("alice-ml", "User", "alice", "ml-team"))
    relations = Relations(store)
    try:
        assert relations.start(timeout=10.0)
        alice = Principal("alice")
        assert ("Group", "ml-team") in _parents(relations, alice)
        _, chat = resource_entity(endpoint("chat"))
        parsed = relations.entities(alice, chat)
        assert relations.entities(alice, chat) is parsed  # parsed once, reused
        before = relations.version
        # when the Relationship is deleted
        store.delete("Relationship", "modelplane-system", "alice-ml")
        # then the change is seen, and alice's cached entities are recomputed without the group
        wait_until(lambda: relations.version > before, what="the deletion to be seen")
        assert ("Group", "ml-team") not in _parents(relations, alice)
        assert relations.entities(alice, chat) is not parsed
        # and a new tuple is picked up the same way
        _create(store, member("alice-ops", "User", "alice", "ops"))
        wait_until(lambda: ("Group", "ops") in _parents(relations, alice), what="the new tuple")
    finally:
        relations.stop()


def test_the_graph_is_built_once_per_change_not_per_request() -> None:
    relations = Relations(objects=[member("alice-ml", "User", "alice", "ml-team")])
    first = relations.graph
    alice = Principal("alice")
    entities = relations.principal_entities(alice)
    # repeated requests reuse the same graph and the same cached entities
    for _ in range(3):
        _policies(ONLY_ML).decide(alice, "update", endpoint("chat"), relations=relations)
    assert relations.graph is first
    assert relations.principal_entities(alice) is entities
