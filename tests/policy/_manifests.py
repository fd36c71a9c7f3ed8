"""Objects the policy tests write: an Endpoint of some size, and a Policy that caps its size."""

from __future__ import annotations

from typing import Any

GROUP = "modelplane.dev/v1alpha1"
#: refuses creating an Endpoint with more than 3 replicas
MAX_THREE = """
@id("max-replicas")
@reason("at most 3 replicas")
forbid(principal, action == Action::"create", resource)
when { resource is Endpoint && resource.spec.replicas.max > 3 };
"""


def endpoint(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Endpoint",
        "metadata": {"name": name},
        "spec": {"model": "llama", "replicas": {"min": 1, "max": replicas}},
    }


def max_three_policy(namespace: str = "team-a") -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Policy",
        "metadata": {"name": "replicas", "namespace": namespace},
        "spec": {"scope": "admission", "cedar": MAX_THREE},
    }


def runtime_policy(name: str, namespace: str, cedar: str) -> dict[str, Any]:
    """A ``scope: runtime`` Policy named ``name`` in ``namespace`` holding ``cedar``."""
    return {
        "apiVersion": GROUP,
        "kind": "Policy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scope": "runtime", "cedar": cedar},
    }
