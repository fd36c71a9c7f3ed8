"""Manifests and URLs the server tests share."""

from __future__ import annotations

from typing import Any

from modelplane.api import Principal

GROUP = "modelplane.dev/v1alpha1"
DRA = "resource.k8s.io/v1"


def models_url(namespace: str | None = "default", name: str | None = None, sub: str = "") -> str:
    """The URL of the models collection (all namespaces when ``namespace`` is None) or one model."""
    url = f"/apis/{GROUP}/namespaces/{namespace}/models" if namespace else f"/apis/{GROUP}/models"
    if name is not None:
        url += f"/{name}"
    return url + (f"/{sub}" if sub else "")


def nodes_url(name: str | None = None, sub: str = "") -> str:
    url = f"/apis/{GROUP}/nodes"
    if name is not None:
        url += f"/{name}"
    return url + (f"/{sub}" if sub else "")


def model(
    name: str,
    namespace: str | None = None,
    *,
    labels: dict[str, str] | None = None,
    versions: tuple[str, ...] = ("v1",),
    **metadata: Any,
) -> dict[str, Any]:
    """A valid Model served by an upstream OpenAI-compatible API (no artifact, no digest)."""
    meta: dict[str, Any] = {"name": name, **metadata}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": GROUP,
        "kind": "Model",
        "metadata": meta,
        "spec": {
            "versions": [
                {"name": v, "source": "https://api.example.com/v1", "format": "upstream"}
                for v in versions
            ]
        },
    }


def node(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
    }


def assert_status(response: Any, code: int, reason: str) -> dict[str, Any]:
    """The response is a Kubernetes Status with this code and reason; returns it."""
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    status: dict[str, Any] = response.json()
    assert status["kind"] == "Status"
    assert status["apiVersion"] == "v1"
    assert status["status"] == "Failure"
    assert status["code"] == code
    assert status["reason"] == reason, status
    assert isinstance(status["message"], str) and status["message"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return status


#: a tenant of the namespace ``default`` (the one the tests write in)
ALICE = Principal("alice", frozenset({"modelplane:namespace:default", "system:authenticated"}))
