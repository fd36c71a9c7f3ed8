"""Prometheus HTTP service discovery: every replica's and component's ``/metrics``.

Served at ``GET /prometheus/targets`` in the format of Prometheus' ``http_sd_configs``. The answer is a JSON list of target groups, ``[{"targets": ["host:port"], "labels": {...}}]``:

* the component that answers (``modelplane up`` or a ``modelplane server``), at the address the
  request reached it on (``modelplane_component="server"``);
* every Node whose node agent wrote its ``/metrics`` base URL in the annotation
  :data:`~modelplane.api.METRICS_URL_ANNOTATION` (``modelplane node`` does;
  ``modelplane_component="node"``, ``node``);
* every replica in an Endpoint's ``status.replicas`` with a ``url`` (``modelplane_component=
  "replica"``, ``namespace``, ``endpoint``, ``version``, ``replica``, ``node``): the worker serves
  ``/metrics`` beside its ``/v1``.

``__scheme__`` and ``__metrics_path__`` tell Prometheus how to scrape each. The route is
authenticated as every route of the server (Prometheus sends ``authorization.credentials`` as a
bearer token, on this request and on its scrapes), and answers each caller what it may read: the
replicas of the namespaces whose Endpoints it may list, the components and Nodes when it may list
Nodes (administrators see everything). Nothing in the answer is chosen by the client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelplane.api import METRICS_URL_ANNOTATION, Principal, principal_of
from modelplane.policy import Tenancy
from modelplane.store import Store

__all__ = ["TARGETS_PATH", "metrics_targets", "targets_openapi", "targets_route"]

JSON = dict[str, Any]
TARGETS_PATH = "/prometheus/targets"


def _group(url: str, labels: dict[str, str]) -> JSON | None:
    """A target group for the ``/metrics`` beside ``url`` (a base URL, maybe ending in ``/v1``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    prefix = parts.path.rstrip("/").removesuffix("/v1")
    return {
        "targets": [parts.netloc],
        "labels": {"__scheme__": parts.scheme, "__metrics_path__": f"{prefix}/metrics", **labels},
    }


def metrics_targets(
    store: Store,
    own_url: str,
    *,
    sees: Callable[[str, str], bool] = lambda kind, namespace: True,
) -> list[JSON]:
    """The target groups (see the module docstring) of ``store``'s Nodes and Endpoints and of
    the component at ``own_url``; ``sees(kind, namespace)``: whether the caller may list them."""
    groups: list[JSON] = []
    if sees("Node", ""):
        own = _group(own_url, {"modelplane_component": "server"})
        groups.extend([own] if own is not None else [])
        for node in store.list("Node").items:
            meta = node.get("metadata") or {}
            url = (meta.get("annotations") or {}).get(METRICS_URL_ANNOTATION)
            group = (
                _group(str(url), {"modelplane_component": "node", "node": meta["name"]})
                if url
                else None
            )
            groups.extend([group] if group is not None else [])
    for endpoint in store.list("Endpoint").items:
        meta = endpoint.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        if not sees("Endpoint", namespace):
            continue
        for replica in (endpoint.get("status") or {}).get("replicas") or []:
            if not replica.get("url"):
                continue
            labels = {
                "modelplane_component": "replica",
                "namespace": namespace,
                "endpoint": str(meta.get("name")),
                "version": str(replica.get("version") or ""),
                "replica": str(replica.get("name") or ""),
                "node": str(replica.get("node") or ""),
            }
            group = _group(str(replica["url"]), labels)
            groups.extend([group] if group is not None else [])
    return groups


def _seer(tenancy: Tenancy, principal: Principal) -> Callable[[str, str], bool]:
    def sees(kind: str, namespace: str) -> bool:
        return tenancy.decide(principal, "list", kind, namespace).allowed

    return sees


def targets_route(store: Store, tenancy: Tenancy) -> Route:
    """``GET /prometheus/targets``: :func:`metrics_targets` for the caller, as Prometheus'
    HTTP service discovery reads it (200 with a JSON list, ``[]`` when there is nothing)."""

    async def targets(request: Request) -> Response:
        sees = _seer(tenancy, principal_of(request.scope))
        own = f"{request.url.scheme}://{request.url.netloc}"
        groups = await run_in_threadpool(metrics_targets, store, own, sees=sees)
        return JSONResponse(groups)

    return Route(TARGETS_PATH, targets, methods=["GET"])


def targets_openapi() -> dict[str, Any]:
    """How :func:`targets_route` appears in ``/openapi.json``."""
    group = {
        "type": "object",
        "properties": {
            "targets": {"type": "array", "items": {"type": "string"}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    body = {"application/json": {"schema": {"type": "array", "items": group}}}
    status = {"application/json": {"schema": {"$ref": "#/components/schemas/v1.Status"}}}
    return {
        "paths": {
            TARGETS_PATH: {
                "get": {
                    "operationId": "prometheusTargets",
                    "summary": "Every replica's and component's /metrics, in the format of"
                    " Prometheus' http_sd_configs",
                    "tags": ["metrics"],
                    "responses": {
                        "200": {"description": "the target groups", "content": body},
                        "default": {"description": "the request failed", "content": status},
                    },
                }
            }
        }
    }
