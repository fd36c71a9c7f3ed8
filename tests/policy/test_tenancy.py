"""The tenancy rules: namespaces are tenants, decided per namespace and kind."""

from __future__ import annotations

import pytest

from modelplane.api import AUTHENTICATED_GROUP, LOCAL_OPERATOR, Principal, service_account
from modelplane.policy import TENANCY_CEDAR, Decision, Tenancy


def _tenant(name: str, *namespaces: str) -> Principal:
    groups = {f"modelplane:namespace:{n}" for n in namespaces}
    return Principal(name, frozenset({*groups, AUTHENTICATED_GROUP}))


@pytest.fixture(scope="module")
def tenancy() -> Tenancy:
    return Tenancy()


@pytest.mark.parametrize("action", ["get", "list", "watch", "create", "delete", "model.call"])
def test_a_member_may_do_anything_in_its_namespace_and_nothing_in_another(
    tenancy: Tenancy, action: str
) -> None:
    alice = _tenant("alice", "team-a", "shared")

    assert tenancy.decide(alice, action, "Model", "team-a").allowed
    assert tenancy.decide(alice, action, "Model", "shared").allowed
    refused = tenancy.decide(alice, action, "Model", "team-b")
    assert not refused.allowed and refused.policies == ()


def test_a_service_account_belongs_to_its_namespace(tenancy: Tenancy) -> None:
    agent = service_account("team-a", "assistant")

    assert agent.name == "system:serviceaccount:team-a:assistant"
    assert agent.namespaces == {"team-a"}
    assert tenancy.decide(agent, "model.call", "Endpoint", "team-a").allowed
    assert not tenancy.decide(agent, "model.call", "Endpoint", "team-b").allowed


def test_cluster_scoped_kinds_are_read_by_all_and_written_by_administrators(
    tenancy: Tenancy,
) -> None:
    alice = _tenant("alice", "team-a")

    assert tenancy.decide(alice, "list", "Node", "").allowed
    assert not tenancy.decide(alice, "create", "DeviceClass", "").allowed
    assert tenancy.decide(LOCAL_OPERATOR, "create", "DeviceClass", "").allowed


def test_an_administrator_reaches_every_namespace_and_the_deciding_rule_is_named(
    tenancy: Tenancy,
) -> None:
    decision = tenancy.decide(LOCAL_OPERATOR, "delete", "Agent", "anyone")

    assert decision.allowed
    assert decision.policies == ("modelplane-system/tenancy#0 (administrators)",)


def test_a_group_that_only_looks_like_a_namespace_gives_none(tenancy: Tenancy) -> None:
    mallory = Principal(
        "mallory", frozenset({"modelplane:namespace:", "team-a", "namespace:team-a"})
    )

    assert mallory.namespaces == frozenset()
    assert not tenancy.decide(mallory, "get", "Model", "team-a").allowed


def test_a_list_across_namespaces_is_decided_once_per_namespace(
    tenancy: Tenancy, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    decide = tenancy.decide

    def counting(principal: Principal, action: str, kind: str, namespace: str) -> Decision:
        asked.append(namespace)
        return decide(principal, action, kind, namespace)

    monkeypatch.setattr(tenancy, "decide", counting)
    admits = tenancy.namespace_filter(_tenant("alice", "team-a"), "list", "Model")
    assert admits is not None

    objects = ["team-a"] * 500 + ["team-b"] * 500 + ["team-c"] * 500
    shown = [n for n in objects if admits(n)]

    assert shown == ["team-a"] * 500
    assert sorted(asked) == ["team-a", "team-b", "team-c"]
    assert tenancy.namespace_filter(LOCAL_OPERATOR, "list", "Model") is None


def test_the_engine_failing_is_a_deny() -> None:
    # a rule that errs on evaluation (a missing attribute) permits nothing
    erring = Tenancy("permit (principal, action, resource) when { principal.missing == 1 };")

    decision = erring.decide(_tenant("alice", "team-a"), "get", "Model", "team-a")

    assert not decision.allowed
    assert decision.reasons and decision.policies == ("modelplane-system/tenancy",)


def test_the_shipped_rules_are_the_ones_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "policy.md").read_text()
    assert TENANCY_CEDAR.strip() in doc
