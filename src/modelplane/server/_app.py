"""The application factory: routes, middleware and the server's own endpoints.

Middleware, outermost first: :class:`~modelplane.server._errors.CatchAll` (bugs become a logged 500
``Status``), :class:`~modelplane.server._auth.BearerAuth` (when tokens are given),
:class:`~modelplane.server._limits.BodySizeLimit`; Starlette's exception middleware inside them
renders every :class:`~modelplane.api.errors.ModelplaneError` as its ``Status``.
"""

from __future__ import annotations

import logging
import platform
import re
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

import modelplane
from modelplane.api import Principal, kinds
from modelplane.api.errors import ModelplaneError, Unavailable
from modelplane.policy import Admission, AuditSink, Relations, Tenancy
from modelplane.server._auth import BearerAuth
from modelplane.server._catalog import Catalog
from modelplane.server._context import ServerContext, context
from modelplane.server._discovery import api_group, api_groups, api_resources
from modelplane.server._errors import EXCEPTION_HANDLERS, CatchAll, status_response
from modelplane.server._limits import BodySizeLimit
from modelplane.server._metrics import RequestMetrics
from modelplane.server._oidc import JWTVerifier
from modelplane.server._openapi import OpenAPIPart, build_openapi
from modelplane.server._openapi_v2 import openapi_v2
from modelplane.server._openapi_v3 import openapi_v3_group_version, openapi_v3_root
from modelplane.server._resources import Collection, Item, StatusItem
from modelplane.server._responses import JSONResponse, dump_json
from modelplane.server._reviews import openapi_part as review_openapi
from modelplane.server._reviews import routes as review_routes
from modelplane.server._service_accounts import ServiceAccountTokens
from modelplane.store import Store

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

logger = logging.getLogger("modelplane.server")

DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024


async def healthz(request: Request) -> Response:
    """Liveness: the process serves HTTP."""
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    """Readiness: the store answers and ``readiness()`` (controllers started...) does not object."""
    ctx = context(request)
    try:
        await run_in_threadpool(ctx.store.current_resource_version)
    except ModelplaneError as exc:
        return status_response(Unavailable(f"the store is not answering: {exc.message}"))
    except Exception:
        logger.exception("readiness check of the store failed")
        return status_response(Unavailable("the store is not answering (see the server log)"))
    if ctx.readiness is not None:
        reason = await run_in_threadpool(ctx.readiness)
        if reason:
            return status_response(Unavailable(f"not ready: {reason}"))
    return PlainTextResponse("ok")


def _store_name(url: str) -> str:
    scheme = urlsplit(url).scheme.split("+", 1)[0]
    return "postgresql" if scheme in ("postgres", "postgresql") else scheme


def _kubernetes_version(version: str) -> dict[str, str]:
    """The fields of Kubernetes' ``version.Info`` (kubectl and clients read ``gitVersion``),
    saying which Modelplane this is; a Kubernetes version it is not."""
    numbers = re.findall(r"\d+", version)
    major, minor = [*numbers, "0", "0"][:2]
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{version}",
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": "",
        "compiler": "",
        "platform": f"{sys.platform}/{platform.machine().lower()}",
    }


async def version(request: Request) -> Response:
    store = context(request).store
    return JSONResponse(
        {
            "version": modelplane.__version__,
            "store": _store_name(store.url),
            **_kubernetes_version(modelplane.__version__),
        }
    )


async def openapi(request: Request) -> Response:
    ctx = context(request)
    if ctx.openapi is None:
        ctx.openapi = await run_in_threadpool(
            lambda: dump_json(
                build_openapi(ctx.catalog.kinds, auth=ctx.auth, parts=ctx.openapi_parts)
            )
        )
    return JSONResponse(ctx.openapi)


def _routes() -> list[Route]:
    namespaced = "/apis/{group}/{version}/namespaces/{namespace}/{plural}"
    cluster = "/apis/{group}/{version}/{plural}"
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/openapi/v2", openapi_v2, methods=["GET"]),
        Route("/openapi/v3", openapi_v3_root, methods=["GET"]),
        Route("/openapi/v3/apis/{group}/{version}", openapi_v3_group_version, methods=["GET"]),
        # before the object routes: their {group}/{version}/{plural} would match these too
        *review_routes(),
        Route("/apis", api_groups, methods=["GET"]),
        Route("/apis/{group}", api_group, methods=["GET"]),
        Route("/apis/{group}/{version}", api_resources, methods=["GET"]),
        # namespaced routes first: their literal "namespaces" segment must win over {plural}
        Route(namespaced, Collection),
        Route(namespaced + "/{name}", Item),
        Route(namespaced + "/{name}/status", StatusItem),
        Route(cluster, Collection),
        Route(cluster + "/{name}", Item),
        Route(cluster + "/{name}/status", StatusItem),
    ]


def create_app(
    store: Store,
    *,
    tokens: Mapping[str, str | Principal] | None = None,
    oidc: JWTVerifier | None = None,
    service_accounts: ServiceAccountTokens | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    readiness: Callable[[], str | None] | None = None,
    watch_bookmark_interval: float = 30.0,
    routes: Sequence[BaseRoute] = (),
    openapi: Sequence[OpenAPIPart] = (),
    registry: CollectorRegistry | None = None,
    audit: AuditSink | None = None,
    relations: Relations | None = None,
) -> Starlette:
    """The REST API over ``store`` as an ASGI application.

    ``tokens`` maps bearer tokens to principals, or to user names (principals in no group but
    ``system:authenticated``; see :func:`load_tokens`); ``oidc`` verifies JWTs of an OpenID
    Connect issuer; ``service_accounts`` verifies the tokens the platform's own components send
    as an Agent's service account (with tokens or oidc only). With neither, authentication is off, and every
    request is then :data:`~modelplane.api.LOCAL_OPERATOR`'s. Request bodies over ``max_body_bytes`` are refused with 413.
    ``readiness()`` returns None when the process is ready (its controllers started...), else the
    reason ``/readyz`` answers 503 with. A watch stream that allows bookmarks gets one after
    ``watch_bookmark_interval`` seconds without events. ``routes`` are mounted beside the API
    (the OpenAI-compatible gateway under ``/v1``, the agent runtime...); they share the
    authentication and body limits but render their own errors. ``openapi`` describes them in
    ``/openapi.json`` (one part per mounted set of routes). Every write passes the admission
    Policies (:mod:`modelplane.policy`), followed from the store while the app runs; their
    decisions are counted in ``registry`` when one is given, and appended to ``audit``.
    ``relations``: the Relationships tenancy and admission follow (none: the app makes its own);
    pass the one :func:`modelplane.platform.routes` was given, so that the gateway and the agent
    routes decide membership as the API does.
    """
    middleware = [Middleware(CatchAll), Middleware(RequestMetrics)]
    if tokens is not None or oidc is not None:
        middleware.append(
            Middleware(BearerAuth, tokens=tokens, oidc=oidc, service_accounts=service_accounts)
        )
    middleware.append(Middleware(BodySizeLimit, max_bytes=max_body_bytes))
    if relations is None:
        relations = Relations(store)  # Relationship parents of principals; follows on first use
    admission = Admission(store, registry=registry, audit=audit, relations=relations)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # the informer starts on the first write (so an app used without a lifespan works too)
        # and stops with the server
        try:
            yield
        finally:
            await run_in_threadpool(admission.stop)
            await run_in_threadpool(relations.stop)

    app = Starlette(
        routes=[*_routes(), *routes],
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.context = ServerContext(
        store=store,
        catalog=Catalog.of(kinds()),
        readiness=readiness,
        bookmark_interval=watch_bookmark_interval,
        auth=tokens is not None or oidc is not None,
        openapi_parts=(review_openapi(), *openapi),
        admission=admission,
        relations=relations,
        tenancy=Tenancy(relations=relations),
    )
    return app
