"""A policy set evaluates only the statements whose action scope can match the request's action,
and decides exactly as the whole set does."""

from __future__ import annotations

import itertools

import cedarpy

from modelplane.api import Principal
from modelplane.policy import PolicySet, compile_policy, principal_entities, resource_entity

from ._relations import endpoint

STATEMENTS = """
@id("no-updates") forbid(principal, action == Action::"update", resource);
@id("no-writes") forbid(principal, action in [Action::"create", Action::"delete"], resource)
when { resource.namespace == "team-a" };
@id("group") forbid(principal, action in Action::"writes", resource);
@id("all") forbid(principal, action, resource) when { principal.name == "mallory" };
@id("typed") forbid(principal, action == Modelplane::Action::"get", resource);
"""


def test_each_action_gets_only_the_statements_that_can_apply_to_it() -> None:
    policies = PolicySet([compile_policy("modelplane-system", "p", STATEMENTS)])
    kept = {
        verb: str(policies.for_action(verb)) for verb in ("update", "create", "get", "model.call")
    }
    # then a statement naming other actions plainly is left out, anything else is kept
    assert "update" in kept["update"] and 'Action::"create"' not in kept["update"]
    assert 'Action::"update"' not in kept["create"] and 'Action::"create"' in kept["create"]
    for verb in kept:
        assert "writes" in kept[verb] and "mallory" in kept[verb]  # action group, all actions
        assert "Modelplane::Action" in kept[verb]  # not plainly ours: kept


def test_decisions_with_the_action_subsets_match_the_whole_set() -> None:
    policies = PolicySet([compile_policy("modelplane-system", "p", STATEMENTS)])
    for verb, who, namespace in itertools.product(
        ("update", "create", "delete", "get", "list", "model.call"),
        ("alice", "mallory"),
        ("team-a", "team-b"),
    ):
        principal, obj = Principal(who), endpoint("chat", namespace)
        ours = policies.decide(principal, verb, obj)
        whole = _every_statement(principal, verb, obj)
        assert (ours.allowed, len(ours.policies)) == whole, (verb, who, namespace)


def _every_statement(principal: Principal, verb: str, obj: dict[str, object]) -> tuple[bool, int]:
    # the whole text given to Cedar, with the baseline permit admission sets hold
    resource, entity = resource_entity(obj)
    request = {
        "principal": {"type": "User", "id": principal.name},
        "action": {"type": "Action", "id": verb},
        "resource": resource,
        "context": {},
    }
    text = STATEMENTS + "\npermit(principal, action, resource);"
    result = cedarpy.is_authorized(request, text, [*principal_entities(principal), entity])
    return bool(result.allowed), 0 if result.allowed else len(result.diagnostics.reasons)
