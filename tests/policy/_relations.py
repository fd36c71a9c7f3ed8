"""Relationship objects for the ReBAC tests."""

from __future__ import annotations

from typing import Any

from modelplane import api

GROUP = "modelplane.dev/v1alpha1"


def relationship(
    name: str,
    subject: dict[str, Any],
    relation: str,
    obj: dict[str, Any],
    namespace: str = "modelplane-system",
) -> dict[str, Any]:
    """A valid Relationship, as the store holds it."""
    return api.validate(
        {
            "apiVersion": GROUP,
            "kind": "Relationship",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"subject": subject, "relation": relation, "object": obj},
        }
    )


def member(name: str, kind: str, who: str, group: str) -> dict[str, Any]:
    """``<kind> who member-of Group group``."""
    return relationship(
        name, {"kind": kind, "name": who}, "member-of", {"kind": "Group", "name": group}
    )


def endpoint(name: str, namespace: str = "team-a") -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Endpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": "llama", "replicas": {"min": 1, "max": 1}},
    }
