"""What every handler of one app shares: the store, the catalog of kinds, the open watch streams."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from modelplane.policy import Admission, Relations, Tenancy
from modelplane.server._catalog import Catalog
from modelplane.server._watch import WatchStreams
from modelplane.store import Store


@dataclass
class ServerContext:
    store: Store
    catalog: Catalog
    #: None when ready, else why not (for /readyz)
    readiness: Callable[[], str | None] | None = None
    #: seconds without events after which a watch that allows bookmarks gets one
    bookmark_interval: float = 30.0
    #: whether requests need a bearer token (the OpenAPI document says so)
    auth: bool = False
    watch_streams: WatchStreams = field(default_factory=WatchStreams)
    #: the rendered /openapi.json, built on first request
    openapi: bytes | None = None
    #: ``/openapi/v3`` documents by path (``""`` the root, ``apis/{group}/{version}``), built once
    openapi_v3: dict[str, bytes] | None = None
    #: the rendered ``/openapi/v2`` (Swagger 2.0), built on first request
    openapi_v2: bytes | None = None
    #: what the routes mounted beside the API add to it (see ``_openapi.OpenAPIPart``)
    openapi_parts: Sequence[Mapping[str, Mapping[str, Any]]] = ()
    #: admission Policies every write passes (None: none are checked, as in unit tests of routes)
    admission: Admission | None = None
    #: Relationships resolved (who owns a namespace may relate within it); None: not followed
    relations: Relations | None = None
    #: the tenancy rules every read and write passes (namespaces are tenants)
    tenancy: Tenancy = field(default_factory=Tenancy)


def context(request: Request) -> ServerContext:
    """The context of the app serving ``request``."""
    ctx: ServerContext = request.app.state.context
    return ctx
