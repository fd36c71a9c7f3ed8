"""``/openapi/v2``: the Swagger 2.0 document kube-apiserver serves beside OpenAPI 3.

Clients that predate OpenAPI 3 (and kubectl, when ``/openapi/v3`` fails) read it. It is served as
JSON only: kubectl asks for the protobuf encoding first
(``application/com.github.proto-openapi.spec.v2@v1.0+protobuf``), which this server does not
speak, so a request that accepts nothing but protobuf gets 406 and a client may fall back; every
kubectl this server supports reads ``/openapi/v3`` first. The operations and schemas are those of
:mod:`modelplane.server._openapi_v3`, rendered in Swagger's words.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

import modelplane
from modelplane.api import KindInfo
from modelplane.api.errors import NotAcceptable
from modelplane.server._context import context
from modelplane.server._openapi_v3 import (
    QUERY_PARAMETERS,
    Operation,
    gvk,
    paths_and_schemas,
)
from modelplane.server._responses import JSONResponse, dump_json

Schema = dict[str, Any]
_REF2 = "#/definitions/"


def _query(name: str) -> Schema:
    type_, description = QUERY_PARAMETERS[name]
    return {
        "name": name,
        "in": "query",
        "type": type_,
        "uniqueItems": True,
        "description": description,
    }


def _operation(op: Operation) -> Schema:
    parameters = [_query(p) for p in op.query]
    consumes: list[str] = []
    if op.body is not None:
        name, media = op.body
        consumes = list(media)
        parameters.append(
            {
                "name": "body",
                "in": "body",
                "required": op.method != "delete",
                "schema": {"$ref": _REF2 + name},
            }
        )
    out: Schema = {
        "operationId": op.operation_id,
        "tags": [op.info.api_version],
        "produces": op.produces,
        "schemes": ["https", "http"],
        "parameters": parameters,
        "responses": {
            op.ok: {
                "description": "OK",
                "schema": {"$ref": _REF2 + op.response},
            },
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": gvk(op.info),
    }
    if consumes:
        out["consumes"] = consumes
    return out


def swagger_document(kinds: Iterable[KindInfo]) -> Schema:
    """The Swagger 2.0 document of every served kind."""
    paths, definitions = paths_and_schemas(
        kinds,
        ref=_REF2,
        nullable=False,
        path_parameter=lambda p: {"name": p, "in": "path", "required": True, "type": "string"},
        operation=_operation,
    )
    return {
        "swagger": "2.0",
        "info": {"title": "Modelplane", "version": modelplane.__version__},
        "paths": paths,
        "definitions": definitions,
    }


def _accepts_json(accept: str) -> bool:
    """Whether an Accept header admits JSON (no header at all does)."""
    if not accept.strip():
        return True
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in ("application/json", "application/*", "*/*"):
            return True
    return False


async def openapi_v2(request: Request) -> Response:
    """``GET /openapi/v2``: JSON, or 406 for a client that accepts only protobuf."""
    accept = request.headers.get("accept", "")
    if not _accepts_json(accept):
        raise NotAcceptable(
            f"/openapi/v2 is served as application/json only, not {accept!r}; ask for"
            " application/json, or read /openapi/v3"
        )
    ctx = context(request)
    if ctx.openapi_v2 is None:
        ctx.openapi_v2 = await run_in_threadpool(
            lambda: dump_json(swagger_document(ctx.catalog.kinds))
        )
    return JSONResponse(ctx.openapi_v2)
