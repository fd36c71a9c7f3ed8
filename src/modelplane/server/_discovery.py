"""API discovery, as Kubernetes serves it: ``/apis`` (APIGroupList), ``/apis/{group}`` (APIGroup),
``/apis/{group}/{version}`` (APIResourceList with each kind's plural, verbs and short names)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from modelplane.api import KindInfo
from modelplane.api.errors import NotFound
from modelplane.server._catalog import Catalog
from modelplane.server._context import context
from modelplane.server._responses import JSONResponse

VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
STATUS_VERBS = ["get", "patch", "update"]


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def _resources(infos: list[KindInfo]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for info in infos:
        out.append(
            {
                "name": info.plural,
                "singularName": info.singular,
                "namespaced": info.namespaced,
                "kind": info.kind,
                "verbs": VERBS,
                "shortNames": list(info.short_names),
            }
        )
        out.append(
            {
                "name": f"{info.plural}/status",
                "singularName": "",
                "namespaced": info.namespaced,
                "kind": info.kind,
                "verbs": STATUS_VERBS,
            }
        )
    return out


def _catalog(request: Request) -> Catalog:
    return context(request).catalog


async def api_groups(request: Request) -> Response:
    groups = _catalog(request).groups
    return JSONResponse(
        {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [_group(name, versions) for name, versions in groups.items()],
        }
    )


async def api_group(request: Request) -> Response:
    name = request.path_params["group"]
    versions = _catalog(request).groups.get(name)
    if versions is None:
        served = ", ".join(_catalog(request).groups)
        raise NotFound(f"the server has no API group {name!r}; it serves {served}")
    return JSONResponse({"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)})


async def api_resources(request: Request) -> Response:
    group, version = request.path_params["group"], request.path_params["version"]
    infos = _catalog(request).group_version(group, version)
    return JSONResponse(
        {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}",
            "resources": _resources(infos),
        }
    )
