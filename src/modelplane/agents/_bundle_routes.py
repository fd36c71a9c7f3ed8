"""``/bundles/sha256:<hex>``: upload and fetch agent bundles by digest.

``PUT`` stores the request body (a bundle made by :func:`~modelplane.agents._bundles.pack`) under
its digest, after checking that the bytes hash to it and unpack safely; 201 when it is new, 200
when the server had it. Uploading code is admitted by policy: until Policy governs it, only
administrators may (:attr:`~modelplane.api.Principal.is_admin`; a server without authentication
serves its local operator, an administrator); others get 403. ``GET`` (and ``HEAD``) returns a
bundle's bytes, so ``modelplane apply`` can skip an upload and agent workers elsewhere can fetch
the code they run (and verify it by its digest).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelplane.agents._bundles import BundleStore
from modelplane.agents.errors import BundleError
from modelplane.api import principal_of
from modelplane.api.errors import (
    BadRequest,
    Forbidden,
    ModelplaneError,
    NotFound,
    RequestEntityTooLarge,
)

MEDIA_TYPE = "application/gzip"

T = TypeVar("T")


def _error(exc: BundleError) -> ModelplaneError:
    if exc.reason == "BundleTooLarge":
        return RequestEntityTooLarge(exc.message)
    if exc.reason == "BundleNotFound":
        return NotFound(exc.message)
    return BadRequest(exc.message)


async def _in_store(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` on the bundle store, off the event loop; a :class:`BundleError` leaves as
    the :class:`ModelplaneError` the server renders (the one error mapping of its app)."""
    try:
        return await run_in_threadpool(call, *args)
    except BundleError as exc:
        raise _error(exc) from None


def routes(bundles: BundleStore) -> list[BaseRoute]:
    """The bundle routes over ``bundles`` (the server's home)."""
    endpoints = _BundleEndpoints(bundles)
    return [
        Route("/bundles/{digest}", endpoints.upload, methods=["PUT"]),
        Route("/bundles/{digest}", endpoints.download, methods=["GET", "HEAD"]),
    ]


class _BundleEndpoints:
    """The bundle endpoints over one store. They raise
    :class:`~modelplane.api.errors.ModelplaneError`; the app they are mounted in renders it."""

    def __init__(self, bundles: BundleStore) -> None:
        self.bundles = bundles

    async def upload(self, request: Request) -> Response:
        """``PUT``: store the body under its digest (administrators only)."""
        digest = request.path_params["digest"]
        principal = principal_of(request.scope)
        if not principal.is_admin:
            raise Forbidden(
                f"{principal.name} may not upload agent code: until a Policy admits it, only"
                " administrators (group system:masters) upload bundles; ask one to apply the"
                " Agent's folder"
            )
        data = await request.body()
        created = await _in_store(self.bundles.put, digest, data)
        body = orjson.dumps({"digest": digest, "size": len(data), "created": created})
        return Response(body, 201 if created else 200, media_type="application/json")

    async def download(self, request: Request) -> Response:
        """``GET``/``HEAD``: a bundle's bytes, its digest as the ETag."""
        digest = request.path_params["digest"]
        data = await _in_store(self.bundles.read, digest)
        if data is None:
            raise NotFound(f"bundle {digest} has not been uploaded; apply the Agent's folder")
        return Response(data, media_type=MEDIA_TYPE, headers={"ETag": f'"{digest}"'})


def openapi_paths(prefix: str = "/bundles") -> dict[str, Any]:
    """``{"paths": ..., "schemas": ...}`` describing the bundle routes mounted at ``prefix``."""
    status = {
        "description": "the request failed: a Kubernetes Status",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/v1.Status"}}},
    }
    digest = {
        "name": "digest",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
        "description": "The bundle's digest, `sha256:` and 64 lowercase hex digits.",
    }
    stored = {
        "type": "object",
        "required": ["digest", "size", "created"],
        "properties": {
            "digest": {"type": "string"},
            "size": {"type": "integer"},
            "created": {"type": "boolean"},
        },
    }
    gzip = {MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}

    def stored_as(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": stored}}}

    return {
        "paths": {
            f"{prefix}/{{digest}}": {
                "parameters": [digest],
                "put": {
                    "operationId": "uploadAgentBundle",
                    "summary": "Upload an agent bundle (administrators only)",
                    "tags": ["agents"],
                    # the bytes of the .tar.gz, whatever Content-Type names them
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            }
                        },
                    },
                    "responses": {
                        "201": stored_as("stored"),
                        "200": stored_as("already stored"),
                        "default": status,
                    },
                },
                "get": {
                    "operationId": "readAgentBundle",
                    "summary": "Download an agent bundle by its digest",
                    "tags": ["agents"],
                    "responses": {
                        "200": {"description": "the bundle", "content": gzip},
                        "default": status,
                    },
                },
            }
        },
        "schemas": {},
    }
