"""``/openapi/v3`` and its group-version documents, as kube-apiserver serves them.

kubectl reads them to check that the server validates fields itself (``fieldValidation`` on the
PATCH operation of a kind), to map a kind to its schema (``x-kubernetes-group-version-kind``) and
for ``kubectl explain``; the ``kubernetes`` clients read them the same way. The root
(``/openapi/v3``) lists one document per group version, each at
``/openapi/v3/apis/{group}/{version}?hash=...``; a document is OpenAPI 3.0 with the kinds' schemas
under ``components.schemas``, named as kube-apiserver names custom resources
(``dev.modelplane.v1alpha1.Endpoint``: the group reversed, the version, the kind).

The schemas are the kinds' JSON Schemas (:func:`modelplane.api.json_schema`) written the way
Kubernetes' OpenAPI tooling reads them: ``anyOf`` with ``null`` becomes ``nullable``, ``const`` an
``enum`` of one value, an exclusive bound a ``minimum``/``maximum`` with a boolean
``exclusiveMinimum``/``exclusiveMaximum``, titles dropped. :mod:`modelplane.server._openapi` (``/openapi.json``, for
people and generic OpenAPI tools) stays as it is; :mod:`modelplane.server._openapi_v2` renders
the same operations as Swagger 2.0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

import modelplane
from modelplane.api import KindInfo, json_schema
from modelplane.api.errors import NotFound
from modelplane.server._bodies import (
    APPLY_PATCH_TYPE,
    JSON_PATCH_TYPE,
    JSON_TYPE,
    MERGE_PATCH_TYPE,
)
from modelplane.server._catalog import Catalog
from modelplane.server._context import context
from modelplane.server._responses import JSONResponse, dump_json

Schema = dict[str, Any]

#: the media types of a PATCH, as kube-apiserver lists them for a custom resource
PATCH_MEDIA = (JSON_PATCH_TYPE, MERGE_PATCH_TYPE, APPLY_PATCH_TYPE)
STATUS_NAME = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
DELETE_OPTIONS_NAME = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
PATCH_NAME = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
WATCH_EVENT_NAME = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"


def definition_name(info: KindInfo) -> str:
    """``dev.modelplane.v1alpha1.Endpoint``: how kube-apiserver names a custom kind's schema."""
    return ".".join([*reversed(info.group.split(".")), info.version, info.kind])


def gvk(info: KindInfo) -> dict[str, str]:
    return {"group": info.group, "version": info.version, "kind": info.kind}


_EXCLUSIVE = {"exclusiveMinimum": "minimum", "exclusiveMaximum": "maximum"}


def kube_schema(node: Any, *, nullable: bool) -> Any:
    """A JSON Schema as Kubernetes' OpenAPI tooling reads it (``nullable`` only in OpenAPI 3)."""
    if isinstance(node, list):
        return [kube_schema(item, nullable=nullable) for item in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key == "title" or (key == "default" and value is None):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in _EXCLUSIVE and not isinstance(value, bool):
            # JSON Schema's number is OpenAPI 3.0's (and Swagger's) bound plus a boolean flag
            out[_EXCLUSIVE[key]] = value
            out[key] = True
        elif key == "properties" and isinstance(value, dict):
            out[key] = {k: kube_schema(v, nullable=nullable) for k, v in value.items()}
        else:
            out[key] = kube_schema(value, nullable=nullable)
    choices = out.get("anyOf")
    if isinstance(choices, list):
        kept = [c for c in choices if not (isinstance(c, dict) and c.get("type") == "null")]
        if len(kept) < len(choices):
            del out["anyOf"]
            if len(kept) == 1 and isinstance(kept[0], dict):
                out = {**kept[0], **out}
            elif kept:
                out["anyOf"] = kept
            if nullable:
                out["nullable"] = True
    return out


# -- the operations, described once for both renderings ---------------------------------------


@dataclass(frozen=True)
class Operation:
    """One route of one kind: what kube-apiserver's ``x-kubernetes-action`` calls it."""

    path: str
    method: str
    action: str
    operation_id: str
    info: KindInfo
    #: query parameters, by name (see :data:`QUERY_PARAMETERS`)
    query: tuple[str, ...]
    #: the request body's schema name and media types; None without a body
    body: tuple[str, tuple[str, ...]] | None
    #: the 200/201 response's schema name
    response: str
    created: bool = False
    path_parameters: tuple[str, ...] = ()

    @property
    def produces(self) -> list[str]:
        """The media types of its response: a list may also stream watch events."""
        watch = ["application/json;stream=watch"] if self.action == "list" else []
        return ["application/json", "application/yaml", *watch]

    @property
    def ok(self) -> str:
        """The status code of success."""
        return "201" if self.created else "200"


#: query parameter -> (type, description)
QUERY_PARAMETERS: dict[str, tuple[str, str]] = {
    "fieldValidation": (
        "string",
        "Unknown metadata fields: Ignore, Warn (default: dropped with a Warning header) or"
        " Strict (refused).",
    ),
    "fieldManager": (
        "string",
        "The name of the actor making the change; required for server-side apply.",
    ),
    "force": (
        "boolean",
        "Server-side apply: take fields owned by other managers instead of a 409 Conflict.",
    ),
    "labelSelector": ("string", "Kubernetes label selector, e.g. `app=x,tier!=db`."),
    "fieldSelector": ("string", "`metadata.name` / `metadata.namespace` with = or !=."),
    "limit": ("integer", "Page size; 0 or absent: everything."),
    "continue": ("string", "The `metadata.continue` token of the previous page."),
    "watch": ("boolean", "Stream changes as newline-delimited watch events."),
    "resourceVersion": ("string", "List or watch from this version."),
    "resourceVersionMatch": ("string", "NotOlderThan or Exact."),
    "allowWatchBookmarks": ("boolean", "With watch: send BOOKMARK events."),
    "sendInitialEvents": ("boolean", "With watch: start with the existing objects."),
    "timeoutSeconds": ("integer", "With watch: end the stream after this long."),
}
_LIST_QUERY = (
    "labelSelector",
    "fieldSelector",
    "limit",
    "continue",
    "watch",
    "resourceVersion",
    "resourceVersionMatch",
    "allowWatchBookmarks",
    "sendInitialEvents",
    "timeoutSeconds",
)
_WRITE_QUERY = ("fieldValidation", "fieldManager")


def operations(info: KindInfo) -> list[Operation]:
    """Every route of ``info``'s kind."""
    kind, name = info.kind, definition_name(info)
    scope = "Namespaced" if info.namespaced else ""
    base = f"/apis/{info.group}/{info.version}"
    collection = (
        f"{base}/namespaces/{{namespace}}/{info.plural}"
        if info.namespaced
        else f"{base}/{info.plural}"
    )
    where = ("namespace",) if info.namespaced else ()
    item = f"{collection}/{{name}}"
    json_body = (name, (JSON_TYPE,))
    patch_body = (PATCH_NAME, PATCH_MEDIA)

    def op(path: str, method: str, action: str, op_id: str, **more: Any) -> Operation:
        params = where + (("name",) if "{name}" in path else ())
        defaults: dict[str, Any] = {"query": (), "body": None, "response": name}
        return Operation(
            path, method, action, op_id, info, path_parameters=params, **defaults | more
        )

    ops = [
        op(collection, "get", "list", f"list{scope}{kind}", query=_LIST_QUERY, response=f"{name}List"),
        op(collection, "post", "post", f"create{scope}{kind}", query=_WRITE_QUERY, body=json_body,
           created=True),
        op(item, "get", "get", f"read{scope}{kind}"),
        op(item, "put", "put", f"replace{scope}{kind}", query=_WRITE_QUERY, body=json_body),
        op(item, "patch", "patch", f"patch{scope}{kind}", query=(*_WRITE_QUERY, "force"),
           body=patch_body),
        op(item, "delete", "delete", f"delete{scope}{kind}", query=("resourceVersion",),
           body=(DELETE_OPTIONS_NAME, (JSON_TYPE,))),
        op(f"{item}/status", "get", "get", f"read{scope}{kind}Status"),
        op(f"{item}/status", "put", "put", f"replace{scope}{kind}Status", query=_WRITE_QUERY,
           body=json_body),
        op(f"{item}/status", "patch", "patch", f"patch{scope}{kind}Status",
           query=(*_WRITE_QUERY, "force"), body=patch_body),
    ]  # fmt: skip
    if info.namespaced:
        ops.append(
            Operation(
                f"{base}/{info.plural}",
                "get",
                "list",
                f"list{kind}ForAllNamespaces",
                info,
                query=_LIST_QUERY,
                body=None,
                response=f"{name}List",
            )
        )
    return ops


def list_schema(info: KindInfo, ref: str) -> Schema:
    return {
        "type": "object",
        "description": f"A list of {info.kind} objects.",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "items": {"type": "array", "items": {"$ref": ref + definition_name(info)}},
        },
        "x-kubernetes-group-version-kind": [
            {"group": info.group, "version": info.version, "kind": f"{info.kind}List"}
        ],
    }


def shared_schemas() -> dict[str, Schema]:
    """The meta.k8s.io schemas every document refers to."""
    open_object: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        STATUS_NAME: {
            **open_object,
            "description": "Why a request failed.",
            "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Status"}],
        },
        DELETE_OPTIONS_NAME: {**open_object, "description": "Options of a delete."},
        PATCH_NAME: {"type": "object", "description": "A patch, in the request's media type."},
        WATCH_EVENT_NAME: {**open_object, "description": "One event of a watch stream."},
    }


def kind_schema(info: KindInfo, *, nullable: bool) -> Schema:
    schema: Schema = kube_schema(json_schema(info.kind), nullable=nullable)
    return schema


# -- OpenAPI 3.0 -------------------------------------------------------------------------------

_REF3 = "#/components/schemas/"


def _parameter(name: str, where: str) -> Schema:
    if where == "path":
        return {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "uniqueItems": True},
            "description": f"The object's {name}.",
        }
    type_, description = QUERY_PARAMETERS[name]
    return {
        "name": name,
        "in": "query",
        "schema": {"type": type_, "uniqueItems": True},
        "description": description,
    }


def _operation_v3(op: Operation) -> Schema:
    out: Schema = {
        "operationId": op.operation_id,
        "tags": [op.info.api_version],
        "parameters": [_parameter(p, "query") for p in op.query],
        "responses": {
            op.ok: {
                "description": "OK",
                "content": {t: {"schema": {"$ref": _REF3 + op.response}} for t in op.produces},
            },
            "default": {
                "description": "a Status naming what failed",
                "content": {"application/json": {"schema": {"$ref": _REF3 + STATUS_NAME}}},
            },
        },
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": gvk(op.info),
    }
    if op.body is not None:
        name, media = op.body
        out["requestBody"] = {
            "required": op.method != "delete",
            "content": {t: {"schema": {"$ref": _REF3 + name}} for t in media},
        }
    return out


def paths_and_schemas(
    infos: Iterable[KindInfo],
    *,
    ref: str,
    nullable: bool,
    path_parameter: Callable[[str], Schema],
    operation: Callable[[Operation], Schema],
) -> tuple[dict[str, Schema], dict[str, Schema]]:
    """Every operation on ``infos`` by path, and the schemas they name; ``path_parameter`` and
    ``operation`` write them in one dialect (OpenAPI 3.0 here, Swagger 2.0 beside it)."""
    paths: dict[str, Schema] = {}
    schemas = shared_schemas()
    for info in infos:
        name = definition_name(info)
        schemas[name] = kind_schema(info, nullable=nullable)
        schemas[f"{name}List"] = list_schema(info, ref)
        for op in operations(info):
            entry = paths.setdefault(
                op.path, {"parameters": [path_parameter(p) for p in op.path_parameters]}
            )
            entry[op.method] = operation(op)
    return paths, schemas


def group_version_document(group: str, version: str, infos: Iterable[KindInfo]) -> Schema:
    """The OpenAPI 3.0 document of one group version."""
    paths, schemas = paths_and_schemas(
        infos,
        ref=_REF3,
        nullable=True,
        path_parameter=lambda p: _parameter(p, "path"),
        operation=_operation_v3,
    )
    return {
        "openapi": "3.0.0",
        "info": {"title": "Modelplane", "version": modelplane.__version__},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def document_hash(body: bytes) -> str:
    """What kube-apiserver puts in ``?hash=``: a digest of the document (clients cache by it)."""
    return hashlib.sha512(body).hexdigest().upper()


def root_document(urls: dict[str, str]) -> Schema:
    """``/openapi/v3``: each ``apis/{group}/{version}`` with the URL of its document."""
    return {"paths": {path: {"serverRelativeURL": url} for path, url in urls.items()}}


# -- the routes ---------------------------------------------------------------------------------


def _documents(catalog: Catalog) -> dict[str, bytes]:
    """Every group version's document, and the root listing them under ``""``."""
    out: dict[str, bytes] = {}
    urls: dict[str, str] = {}
    for group, versions in catalog.groups.items():
        for version in versions:
            path = f"apis/{group}/{version}"
            body = dump_json(
                group_version_document(group, version, catalog.group_version(group, version))
            )
            out[path] = body
            urls[path] = f"/openapi/v3/{path}?hash={document_hash(body)}"
    out[""] = dump_json(root_document(urls))
    return out


async def _cached(request: Request) -> dict[str, bytes]:
    ctx = context(request)
    if ctx.openapi_v3 is None:
        ctx.openapi_v3 = await run_in_threadpool(_documents, ctx.catalog)
    return ctx.openapi_v3


async def openapi_v3_root(request: Request) -> Response:
    """``GET /openapi/v3``."""
    return JSONResponse((await _cached(request))[""])


async def openapi_v3_group_version(request: Request) -> Response:
    """``GET /openapi/v3/apis/{group}/{version}``."""
    group, version = request.path_params["group"], request.path_params["version"]
    body = (await _cached(request)).get(f"apis/{group}/{version}")
    if body is None:
        context(request).catalog.group_version(group, version)  # raises NotFound naming them
        raise NotFound(f"no OpenAPI document for {group}/{version}")
    return JSONResponse(body)
