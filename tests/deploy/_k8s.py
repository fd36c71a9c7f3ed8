"""Validation against the official Kubernetes OpenAPI schemas that ``kubernetes-validate`` ships.

``kubernetes-validate`` has no schemas of the Gateway API (``gateway.networking.k8s.io``) nor of
the Inference Extension (``inference.networking.k8s.io``), and their CRDs are not available
offline: objects of those groups are checked by Modelplane's own schemas of those kinds
(:mod:`modelplane.api`, which encode the CRDs' field names, types, enums, limits and rules),
strictly: a field those schemas do not know is a problem here (the schemas themselves keep such
fields, as a cluster's newer objects may have them)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
from kubernetes_validate.utils import all_versions, major_minor

from modelplane import api
from modelplane.api import errors
from modelplane.api._types import render_path, unknown_fields

#: the three newest minor versions the installed kubernetes-validate has schemas of
VERSIONS: tuple[str, ...] = tuple(
    sorted({major_minor(v) for v in all_versions()}, key=lambda v: tuple(map(int, v.split("."))))[
        -3:
    ]
)


#: groups kubernetes-validate has no schemas of
GATEWAY_API_GROUPS = (api.GATEWAY_GROUP, api.INFERENCE_GROUP)


def problems(obj: dict[str, Any]) -> list[str]:
    """What each of :data:`VERSIONS` finds wrong with ``obj`` (strict: unknown fields too)."""
    if str(obj.get("apiVersion", "")).split("/")[0] in GATEWAY_API_GROUPS:
        return _gateway_api_problems(obj)
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


def _gateway_api_problems(obj: dict[str, Any]) -> list[str]:
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    try:
        api.validate(obj)
    except errors.Invalid as exc:
        return [f"{where} {c.field}: {c.message}" for c in exc.causes]
    model = api.lookup(obj["kind"]).schema.model_validate(obj)
    return [f"{where} {render_path(path)}: {message}" for path, message in unknown_fields(model)]
