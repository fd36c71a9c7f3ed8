"""The ASGI app of the gateway: OpenAI's routes, request parsing and errors in OpenAI's shape.

Mounted at ``/v1`` (by ``modelplane up`` beside the REST API, or by ``modelplane gateway``), it
answers ``POST /chat/completions``, ``/completions``, ``/embeddings``, ``/responses`` (the
Responses API, translated to a chat completion), ``GET /models``, and
Modelplane's own ``GET /_modelplane/samples`` and ``/_modelplane/metrics``.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from modelplane.api import PRIORITY_HEADER, Principal, json_object, principal_of
from modelplane.api.errors import BadRequest
from modelplane.gateway._call import FIELDS, Call, parse_call
from modelplane.gateway._errors import GatewayError, error_body, error_response
from modelplane.gateway._flow import OBJECTIVE_HEADER
from modelplane.gateway._httproutes import HTTPRouteTable
from modelplane.gateway._matches import RequestFacts
from modelplane.gateway._responses import chat_body, response_events, response_object
from modelplane.gateway._table import EndpointRoute, RoutingTable
from modelplane.gateway._table import Route as ModelRoute
from modelplane.gateway._telemetry import Telemetry
from modelplane.policy import Tenancy


class Served(Protocol):
    """What the app serves: the :class:`~modelplane.gateway.Gateway` (declared here, below it,
    so that the gateway builds its app without the app importing the gateway back)."""

    max_body_bytes: int
    table: RoutingTable
    http_routes: HTTPRouteTable
    telemetry: Telemetry
    tenancy: Tenancy

    async def handle(self, model: str, call: Call) -> Response: ...

    def callable_routes(self, principal: Principal) -> list[ModelRoute]: ...


log = logging.getLogger("modelplane.gateway")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413,
        f"The request body is larger than {limit} bytes; send a shorter prompt.",
        code="request_too_large",
    )


class _OpenAIRoute:
    """``POST`` of one OpenAI path: parse the call once and hand it to the gateway."""

    def __init__(self, gateway: Served, path: str) -> None:
        self.gateway = gateway
        self.path = path

    async def endpoint(self, request: Request) -> Response:
        raw = await _read_body(request, self.gateway.max_body_bytes)
        return await self._serve(request, raw, self.path)

    async def _serve(self, request: Request, raw: bytes, path: str) -> Response:
        model, call = parse_call(path, raw, request.headers.get("x-session-id"))
        call.principal = principal_of(request.scope)
        call.facts = _facts(request)
        call.priority = request.headers.get(PRIORITY_HEADER) or request.headers.get(
            OBJECTIVE_HEADER
        )
        try:
            return await self.gateway.handle(model, call)
        except GatewayError:
            raise  # the app's error mapping answers it
        except Exception:
            # answered here, in OpenAI's shape: Starlette's own 500 handler re-raises the error
            log.exception("the gateway failed on %s", self.path)
            return Response(
                error_body("The gateway failed on this request (see its log).", "server_error"),
                status_code=500,
                media_type="application/json",
            )


class _ResponsesRoute(_OpenAIRoute):
    """``POST /responses``: the Responses API, served as the chat completion it translates to
    (:mod:`modelplane.gateway._responses`), through the same path as any chat call."""

    def __init__(self, gateway: Served) -> None:
        super().__init__(gateway, "/responses")

    async def endpoint(self, request: Request) -> Response:
        raw = await _read_body(request, self.gateway.max_body_bytes)
        try:
            body = json_object(raw)
        except BadRequest as exc:
            raise GatewayError(400, exc.message, code="invalid_json") from None
        chat = orjson.dumps(chat_body(body))
        answer = await self._serve(request, chat, "/chat/completions")
        if answer.status_code != 200:
            return answer  # an error, already in OpenAI's shape
        headers = {k: v for k, v in answer.headers.items() if k.startswith("x-modelplane-")}
        if isinstance(answer, StreamingResponse):
            events = response_events(body, answer.body_iterator)  # type: ignore[arg-type]
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        response = response_object(body, orjson.loads(answer.body))
        return Response(orjson.dumps(response), media_type="application/json", headers=headers)


def _facts(request: Request) -> RequestFacts:
    """What HTTPRoute matches and header routes look at (header names lowercase, as Starlette
    gives them; a repeated header counts with its last value)."""
    host = (request.headers.get("host") or "").rsplit(":", 1)[0].lower()
    return RequestFacts(
        path=request.url.path,
        method=request.method,
        host=host,
        headers=dict(request.headers.items()),
        query=dict(request.query_params.items()),
    )


def _served(request: Request) -> Served:
    gateway: Served = request.app.state.gateway
    return gateway


async def _models(request: Request) -> Response:
    served = _served(request)
    principal = principal_of(request.scope)
    models = {
        route.name if route.namespace == "default" else route.key: {
            "id": route.name if route.namespace == "default" else route.key,
            "object": "model",
            "created": route.created,
            "owned_by": route.namespace,
            "modelplane": {"kind": "Endpoint" if isinstance(route, EndpointRoute) else "Graph"},
        }
        for route in served.callable_routes(principal)
    }
    # an HTTPRoute serves its names (and shadows an Endpoint or Graph of the same name)
    for key, namespace in served.http_routes.model_names().items():
        if served.tenancy.decide(principal, "model.call", "Endpoint", namespace).allowed:
            name = key.partition("/")[2] if namespace == "default" else key
            models[name] = {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": namespace,
                "modelplane": {"kind": "HTTPRoute"},
            }
    data = sorted(models.values(), key=lambda m: str(m["id"]))
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


async def _samples(request: Request) -> Response:
    q = request.query_params
    namespace = q.get("namespace") or "default"
    endpoint = q.get("endpoint")
    if not endpoint:
        raise GatewayError(
            400,
            "Give the endpoint: ?endpoint=NAME (and namespace, version, since).",
            param="endpoint",
        )
    try:
        since = float(q.get("since") or 0)
    except ValueError:
        raise GatewayError(400, "'since' must be seconds since the epoch.", param="since") from None
    served = _served(request)
    # decided on the namespace, as reads of the API are: a tenant reads only its own endpoints'
    if not served.tenancy.decide(principal_of(request.scope), "get", "Endpoint", namespace).allowed:
        raise GatewayError(
            404,
            f"No endpoint {namespace}/{endpoint} whose samples you may read.",
            code="model_not_found",
            param="endpoint",
        )
    telemetry = served.telemetry
    version = q.get("version")
    versions = [version] if version else telemetry.versions(namespace, endpoint)
    out = {
        v: [
            {"t": s.t, "ttft_s": s.ttft, "tpot_s": s.tpot, "error": s.error, "score": s.score}
            for s in telemetry.window(namespace, endpoint, v, since)
        ]
        for v in versions
    }
    body: dict[str, Any] = {"namespace": namespace, "endpoint": endpoint, "versions": out}
    if version:
        body["version"] = version
        body["samples"] = out[version]
    return Response(orjson.dumps(body), media_type="application/json")


def require_admin(principal: Principal) -> None:
    """The gateway's metrics cover every tenant's endpoints: administrators only (403)."""
    if not principal.is_admin:
        raise GatewayError(
            403,
            f"The gateway's metrics cover every tenant; {principal.name!r} is not an"
            " administrator (system:masters). Ask an operator, or read your own endpoints'"
            " samples at /v1/_modelplane/samples.",
            type="permission_error",
            code="forbidden",
        )


async def _metrics(request: Request) -> Response:
    require_admin(principal_of(request.scope))
    return PlainTextResponse(
        _served(request).telemetry.prometheus(), media_type="text/plain; version=0.0.4"
    )


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
    message = (
        f"Unknown path {request.url.path}; the OpenAI routes are /v1/chat/completions,"
        " /v1/completions, /v1/embeddings, /v1/responses and /v1/models."
        if exc.status_code == 404
        else f"{request.method} is not allowed on {request.url.path}."
    )
    return Response(
        error_body(message, kind), status_code=exc.status_code, media_type="application/json"
    )


def build_app(gateway: Served) -> Starlette:
    """The Starlette app serving ``gateway``; mount it at ``/v1``. Errors are answered in
    OpenAI's shape by the app's one error mapping (a GatewayError, or Starlette's 404/405)."""
    routes = [Route(p, _OpenAIRoute(gateway, p).endpoint, methods=["POST"]) for p in FIELDS]
    routes += [
        Route("/responses", _ResponsesRoute(gateway).endpoint, methods=["POST"]),
        Route("/models", _models, methods=["GET"]),
        Route("/_modelplane/samples", _samples, methods=["GET"]),
        Route("/_modelplane/metrics", _metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, GatewayError: _gateway_error},
    )
    app.state.gateway = gateway
    return app
