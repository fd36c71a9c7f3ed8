"""Validation against the official Kubernetes OpenAPI schemas that ``kubernetes-validate`` ships."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
from kubernetes_validate.utils import all_versions, major_minor

#: the three newest minor versions the installed kubernetes-validate has schemas of
VERSIONS: tuple[str, ...] = tuple(
    sorted({major_minor(v) for v in all_versions()}, key=lambda v: tuple(map(int, v.split("."))))[
        -3:
    ]
)


def problems(obj: dict[str, Any]) -> list[str]:
    """What each of :data:`VERSIONS` finds wrong with ``obj`` (strict: unknown fields too)."""
    found = []
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            found.append(
                f"{version} {obj['kind']}/{obj['metadata']['name']} {where}: {exc.message}"
            )
    return found
