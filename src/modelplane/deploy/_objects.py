"""What every rendered object shares: the labels Kubernetes recommends, and metadata."""

from __future__ import annotations

from typing import Any

#: rendered objects, in the order they are applied
Objects = list[dict[str, Any]]

PART_OF = "modelplane"


def labels(component: str | None = None) -> dict[str, str]:
    """``app.kubernetes.io/*`` labels; with a component, the ones its selector matches."""
    out = {"app.kubernetes.io/part-of": PART_OF}
    if component is not None:
        out["app.kubernetes.io/name"] = f"modelplane-{component}"
        out["app.kubernetes.io/component"] = component
    return out


def meta(name: str, namespace: str | None, component: str | None = None) -> dict[str, Any]:
    """``metadata`` of a rendered object (``namespace`` None: cluster-scoped)."""
    out: dict[str, Any] = {"name": name}
    if namespace is not None:
        out["namespace"] = namespace
    out["labels"] = labels(component)
    return out
