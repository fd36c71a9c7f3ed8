"""Relationship: a tuple of subject, relation and object; a wrong tuple is refused at its field."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane import api
from modelplane.api import errors

from . import _objects


def _with(**spec: Any) -> dict[str, Any]:
    obj = _objects.relationship()
    obj["spec"].update(spec)
    return obj


def test_relationship_is_namespaced_admin_only_and_found_by_its_names() -> None:
    info = api.lookup("rel")
    assert info.kind == "Relationship" and api.lookup("relationships") is info
    assert info.namespaced and info.admin_only
    assert info.api_version == "modelplane.dev/v1alpha1"


def test_a_valid_relationship_is_normalised_into_its_namespace() -> None:
    # given a tuple written without a namespace
    obj = _objects.relationship()
    del obj["metadata"]["namespace"]
    # when validated
    out = api.validate(obj, default_namespace="team-b")
    # then it lands in the default namespace with its tuple unchanged
    assert out["metadata"]["namespace"] == "team-b"
    assert out["spec"]["relation"] == "can-use"
    assert out["spec"]["object"] == {"kind": "Endpoint", "name": "chat", "namespace": "team-a"}


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"relation": "likes"}, "spec.relation", "'owner-of'"),
        (
            {"relation": "member-of"},
            "spec.object.kind",
            "member-of relates to Group, Namespace, not Endpoint",
        ),
        (
            {"relation": "delegated-to", "object": {"kind": "User", "name": "alice"}},
            "spec.subject.kind",
            "only an Agent or a ServiceAccount",
        ),
        (
            {"relation": "delegated-to", "subject": {"kind": "Agent", "name": "helper"}},
            "spec.subject.namespace",
            "needs `namespace: NS`",
        ),
        (
            {"subject": {"kind": "User", "name": "alice", "namespace": "team-a"}},
            "spec.subject.namespace",
            "not namespaced",
        ),
        (
            {"object": {"kind": "Namespace", "name": "team-a", "namespace": "team-a"}},
            "spec.object.namespace",
            "not namespaced",
        ),
        ({"subject": {"kind": "Robot", "name": "r2"}}, "spec.subject.kind", "'User'"),
        ({"subject": {"kind": "User", "name": ""}}, "spec.subject.name", "must not be empty"),
    ],
)
def test_a_wrong_tuple_is_refused_at_its_field(
    spec: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(errors.Invalid) as caught:
        api.validate(_with(**spec))
    causes = {c.field: c.message for c in caught.value.causes}
    assert field in causes, causes
    assert words in causes[field]


def test_explain_describes_the_tuple_fields() -> None:
    text = api.explain("relationship.spec")
    for word in ("subject", "relation", "object", "delegated-to"):
        assert word in text
