"""``GET /openapi.json``: an OpenAPI 3.1 document of every route, built from the served kinds.

Each kind's JSON Schema comes from :func:`modelplane.api.json_schema` (self-contained: no
``$defs``, so it sits in ``components.schemas`` as it is); ``{Kind}List``, ``v1.Status`` and
``v1.WatchEvent`` are described here. Routes mounted beside the API (the gateway under ``/v1``,
the agent runtime under ``/agents``) bring their own part, an :data:`OpenAPIPart`: their paths,
and schemas they add to ``components.schemas`` (they may refer to ``v1.Status``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import modelplane
from modelplane.api import KindInfo, json_schema
from modelplane.server._bodies import (
    APPLY_PATCH_TYPE,
    JSON_PATCH_TYPE,
    MERGE_PATCH_TYPE,
    OBJECT_TYPES,
)

OPENAPI_VERSION = "3.1.0"
STATUS = "v1.Status"
WATCH_EVENT = "v1.WatchEvent"
_REF = "#/components/schemas/"

Schema = dict[str, Any]
#: what a mounted set of routes adds: ``{"paths": {...}, "schemas": {...}}``
OpenAPIPart = Mapping[str, Mapping[str, Any]]


def _ref(name: str) -> Schema:
    return {"$ref": _REF + name}


def _status_schema() -> Schema:
    cause = {
        "type": "object",
        "properties": {
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "field": {"type": "string", "description": "Path of the offending field."},
            "location": {"type": "string", "description": "file:line[:column] it came from."},
        },
    }
    return {
        "type": "object",
        "description": "Why a request failed (Kubernetes `Status`).",
        "required": ["kind", "apiVersion", "status", "message", "reason", "code"],
        "properties": {
            "kind": {"const": "Status"},
            "apiVersion": {"const": "v1"},
            "metadata": {"type": "object"},
            "status": {"const": "Failure"},
            "message": {"type": "string"},
            "reason": {"type": "string"},
            "code": {"type": "integer"},
            "details": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "group": {"type": "string"},
                    "kind": {"type": "string"},
                    "causes": {"type": "array", "items": cause},
                    "retryAfterSeconds": {"type": "integer"},
                },
            },
        },
    }


def _watch_event_schema() -> Schema:
    return {
        "type": "object",
        "description": "One line of a watch stream (`application/json;stream=watch`).",
        "required": ["type", "object"],
        "properties": {
            "type": {"enum": ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]},
            "object": {
                "type": "object",
                "description": "The object; a Status for ERROR; only kind, apiVersion and"
                " metadata.resourceVersion for BOOKMARK.",
            },
        },
    }


def _list_schema(info: KindInfo) -> Schema:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "items"],
        "properties": {
            "apiVersion": {"const": info.api_version},
            "kind": {"const": f"{info.kind}List"},
            "metadata": {
                "type": "object",
                "properties": {
                    "resourceVersion": {"type": "string"},
                    "continue": {"type": "string", "description": "Token for the next page."},
                },
            },
            "items": {"type": "array", "items": _ref(info.kind)},
        },
    }


def _param(name: str, where: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


_STRING = {"type": "string"}
_INTEGER = {"type": "integer", "minimum": 0}
_BOOLEAN = {"type": "boolean"}
#: the API's name rules (check_dns_label / check_dns_subdomain)
_DNS_LABEL = {"type": "string", "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}
_DNS_SUBDOMAIN = {
    "type": "string",
    "maxLength": 253,
    "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
}
_NAMESPACE = _param("namespace", "path", _DNS_LABEL, "The namespace (tenant).")
_NAME = _param("name", "path", _DNS_SUBDOMAIN, "The object's name.")
_FIELD_VALIDATION = _param(
    "fieldValidation",
    "query",
    {"enum": ["Ignore", "Warn", "Strict"]},
    "Unknown metadata fields: drop silently, drop with a Warning header (default), or refuse.",
)
_LIST_PARAMS = [
    _param("labelSelector", "query", _STRING, "Kubernetes label selector, e.g. `app=x,tier!=db`."),
    _param(
        "fieldSelector", "query", _STRING, "`metadata.name` / `metadata.namespace` with = or !=."
    ),
    _param("limit", "query", _INTEGER, "Page size; 0 or absent: everything."),
    _param("continue", "query", _STRING, "The `metadata.continue` token of the previous page."),
    _param("watch", "query", _BOOLEAN, "Stream changes as newline-delimited watch events."),
    _param(
        "resourceVersion",
        "query",
        _STRING,
        "With watch: changes after this version; absent or 0: the existing objects first.",
    ),
    _param(
        "resourceVersionMatch",
        "query",
        {"enum": ["NotOlderThan", "Exact"]},
        "How resourceVersion applies (list; on a watch NotOlderThan with sendInitialEvents).",
    ),
    _param("allowWatchBookmarks", "query", _BOOLEAN, "With watch: send BOOKMARK events."),
    _param(
        "sendInitialEvents",
        "query",
        _BOOLEAN,
        "With watch and resourceVersionMatch=NotOlderThan: start with the existing objects.",
    ),
    _param("timeoutSeconds", "query", _INTEGER, "With watch: end the stream after this long."),
]
_ERRORS = {"default": {"$ref": "#/components/responses/Status"}}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object_body(info: KindInfo) -> Schema:
    return {
        "required": True,
        "content": {media: {"schema": _ref(info.kind)} for media in sorted(OBJECT_TYPES)},
    }


def _patch_body() -> Schema:
    patch: Schema = {"type": "object", "description": "RFC 7386 JSON merge patch."}
    return {
        "required": True,
        "content": {MERGE_PATCH_TYPE: {"schema": patch}, "application/json": {"schema": patch}},
    }


def _object_patch_body() -> Schema:
    """PATCH of an object: merge patch, JSON patch, or server-side apply."""
    body = _patch_body()
    body["content"][APPLY_PATCH_TYPE] = {
        "schema": {
            "type": "object",
            "description": "Server-side apply: the applied configuration (needs fieldManager).",
        }
    }
    body["content"][JSON_PATCH_TYPE] = {
        "schema": {
            "type": "array",
            "description": "RFC 6902 JSON patch.",
            "items": {
                "type": "object",
                "required": ["op", "path"],
                "properties": {
                    "op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
                    "path": {"type": "string"},
                    "from": {"type": "string"},
                    "value": {},
                },
            },
        }
    }
    return body


_FIELD_MANAGER = _param(
    "fieldManager",
    "query",
    {"type": "string", "maxLength": 128},
    "Who makes the change (required for server-side apply).",
)
_FORCE = _param("force", "query", _BOOLEAN, "Server-side apply: take fields other managers own.")


def _operation(op_id: str, summary: str, tag: str, responses: Schema, **extra: Any) -> Schema:
    return {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        **extra,
        "responses": responses,
    }


@dataclass(frozen=True)
class _KindOperations:
    """The operations of one kind, named the way Kubernetes names them (``listNamespacedModel``,
    ``readNamespacedModelStatus``) and tagged with the kind's apiVersion."""

    info: KindInfo

    def _op(
        self, verb: str, summary: str, responses: Schema, *, status: bool = False, **extra: Any
    ) -> Schema:
        scope = "Namespaced" if self.info.namespaced else ""
        op_id = f"{verb}{scope}{self.info.kind}{'Status' if status else ''}"
        return _operation(op_id, summary, self.info.api_version, responses, **extra)

    def _one(self) -> Schema:
        return _json(_ref(self.info.kind), self.info.kind)

    def listing(self, op_id: str, summary: str) -> Schema:
        kind = self.info.kind
        listing = {
            "description": f"{kind}List, or watch events with watch=true",
            "content": {
                "application/json": {"schema": _ref(f"{kind}List")},
                "application/json;stream=watch": {"schema": _ref(WATCH_EVENT)},
            },
        }
        return _operation(
            op_id,
            summary,
            self.info.api_version,
            {"200": listing, **_ERRORS},
            parameters=_LIST_PARAMS,
        )

    def collection(self) -> dict[str, Schema]:
        """GET (list or watch) and POST (create) of the kind's collection."""
        kind = self.info.kind
        scope = "Namespaced" if self.info.namespaced else ""
        return {
            "get": self.listing(f"list{scope}{kind}", f"List or watch {kind} objects"),
            "post": self._op(
                "create",
                f"Create a {kind}",
                {"201": _json(_ref(kind), f"the created {kind}"), **_ERRORS},
                parameters=[_FIELD_VALIDATION],
                requestBody=_object_body(self.info),
            ),
        }

    def item(self) -> dict[str, Schema]:
        """GET, PUT, PATCH and DELETE of one object."""
        kind, one = self.info.kind, self._one()
        return {
            "get": self._op("read", f"Read a {kind}", {"200": one, **_ERRORS}),
            "put": self._op(
                "replace",
                f"Replace a {kind} (optimistic concurrency on metadata.resourceVersion)",
                {"200": one, **_ERRORS},
                parameters=[_FIELD_VALIDATION],
                requestBody=_object_body(self.info),
            ),
            "patch": self._op(
                "patch",
                f"Merge-patch, JSON-patch or server-side apply a {kind}",
                {"200": one, "201": _json(_ref(kind), f"the {kind} apply created"), **_ERRORS},
                parameters=[_FIELD_VALIDATION, _FIELD_MANAGER, _FORCE],
                requestBody=_object_patch_body(),
            ),
            "delete": self._op(
                "delete",
                f"Delete a {kind} (or mark it, while finalizers remain)",
                {"200": one, **_ERRORS},
                parameters=[
                    _param("resourceVersion", "query", _STRING, "Delete only this version.")
                ],
            ),
        }

    def status(self) -> dict[str, Schema]:
        """GET, PUT and PATCH of one object's status."""
        kind, ok = self.info.kind, {"200": self._one(), **_ERRORS}
        return {
            "get": self._op("read", f"Read a {kind}'s status", ok, status=True),
            "put": self._op(
                "replace",
                f"Replace a {kind}'s status",
                ok,
                status=True,
                requestBody=_object_body(self.info),
            ),
            "patch": self._op(
                "patch",
                f"Merge-patch a {kind}'s status",
                ok,
                status=True,
                requestBody=_patch_body(),
            ),
        }


def _kind_paths(info: KindInfo) -> dict[str, Schema]:
    base = f"/apis/{info.group}/{info.version}"
    collection = (
        f"{base}/namespaces/{{namespace}}/{info.plural}"
        if info.namespaced
        else (f"{base}/{info.plural}")
    )
    path_params = [_NAMESPACE] if info.namespaced else []
    operations = _KindOperations(info)
    paths: dict[str, Schema] = {
        collection: {"parameters": path_params, **operations.collection()},
        f"{collection}/{{name}}": {"parameters": [*path_params, _NAME], **operations.item()},
        f"{collection}/{{name}}/status": {
            "parameters": [*path_params, _NAME],
            **operations.status(),
        },
    }
    if info.namespaced:
        paths[f"{base}/{info.plural}"] = {
            "get": operations.listing(
                f"list{info.kind}ForAllNamespaces",
                f"List or watch {info.kind} objects in every namespace",
            )
        }
    return paths


def _server_paths(kinds: Iterable[KindInfo]) -> dict[str, Schema]:
    text = {"description": "ok", "content": {"text/plain": {"schema": _STRING}}}
    untagged = "server"

    def discovery(op_id: str, summary: str, document: str) -> Schema:
        """A GET answering one JSON document about the server."""
        ok = _json({"type": "object"}, document)
        return {"get": _operation(op_id, summary, untagged, {"200": ok, **_ERRORS})}

    paths: dict[str, Schema] = {
        "/healthz": {
            "get": _operation("healthz", "Liveness", untagged, {"200": text}, security=[])
        },
        "/readyz": {
            "get": _operation(
                "readyz",
                "Readiness: the store answers and the controllers run",
                untagged,
                {"200": text, **_ERRORS},
                security=[],
            )
        },
        "/version": discovery("version", "Server and store versions", "versions"),
        "/openapi.json": discovery("openapi", "This document", "OpenAPI 3.1"),
        "/apis": discovery("apiGroups", "APIGroupList", "APIGroupList"),
    }
    for group in dict.fromkeys(i.group for i in kinds):
        paths[f"/apis/{group}"] = discovery(f"group.{group}", f"APIGroup {group}", "APIGroup")
    for group, version in dict.fromkeys((i.group, i.version) for i in kinds):
        paths[f"/apis/{group}/{version}"] = discovery(
            f"resources.{group}.{version}",
            f"APIResourceList of {group}/{version}",
            "APIResourceList",
        )
    return paths


def build_openapi(
    kinds: Iterable[KindInfo], *, auth: bool, parts: Iterable[OpenAPIPart] = ()
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``kinds`` and the mounted ``parts``; ``auth`` adds the bearer
    security scheme."""
    infos = list(kinds)
    schemas: dict[str, Schema] = {STATUS: _status_schema(), WATCH_EVENT: _watch_event_schema()}
    for info in infos:
        schemas[info.kind] = json_schema(info.kind)
        schemas[f"{info.kind}List"] = _list_schema(info)
    paths = _server_paths(infos)
    for info in infos:
        paths.update(_kind_paths(info))
    for part in parts:
        paths.update(part.get("paths", {}))
        schemas.update(part.get("schemas", {}))
    components: dict[str, Any] = {
        "schemas": schemas,
        "responses": {"Status": _json(_ref(STATUS), "the request failed: a Kubernetes Status")},
    }
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Modelplane API",
            "version": modelplane.__version__,
            "description": "Declarative objects in the Kubernetes shape; errors are `Status`"
            " objects.",
        },
        "paths": paths,
        "components": components,
    }
    if auth:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document
