"""The ASGI app of the gateway: OpenAI's routes, request parsing and errors in OpenAI's shape.

Mounted at ``/v1`` (by ``modelplane up`` beside the REST API, or by ``modelplane gateway``), it
answers ``POST /chat/completions``, ``/completions``, ``/embeddings``, ``GET /models``, and
Modelplane's own ``GET /_modelplane/samples`` and ``/_modelplane/metrics``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from modelplane.api import json_object
from modelplane.api.errors import BadRequest
from modelplane.gateway._errors import GatewayError, error_body, error_response
from modelplane.gateway._table import EndpointRoute

if TYPE_CHECKING:
    from modelplane.gateway._gateway import Call, Gateway

log = logging.getLogger("modelplane.gateway")

_FIELDS = {
    "/chat/completions": "messages",
    "/completions": "prompt",
    "/embeddings": "input",
}


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


def _prompt_text(path: str, body: dict[str, Any]) -> str:
    if path == "/chat/completions":
        parts: list[str] = []
        for m in body["messages"]:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(
                    str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
                )
        return "\n".join(parts)
    value = body.get("prompt") if path == "/completions" else body.get("input")
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[0], str):
        return "\n".join(value)
    return ""


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_token_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_token(t) for t in value)


def _check_text_input(field: str, value: Any) -> None:
    """``prompt`` / ``input`` as OpenAI takes them: a string, or a non-empty array of strings, of
    token ids, or of non-empty arrays of token ids; one kind per array, as OpenAI requires."""
    if isinstance(value, str):
        return
    shape = (
        f"{field!r} must be a string, an array of strings, an array of token ids (integers) or an"
        " array of arrays of token ids"
    )
    if not isinstance(value, list):
        raise GatewayError(400, f"{shape}; it is {_kind(value)}.", code="invalid_type", param=field)
    first = value[0]
    fits = next((f for f in (_is_string, _is_token, _is_token_array) if f(first)), _is_token_array)
    for i, item in enumerate(value):
        if not fits(item):
            unlike = f", unlike {field}[0] ({_kind(first)})" if i else ""
            raise GatewayError(
                400,
                f"{shape}; {field}[{i}] is {_kind(item)}{unlike}.",
                code="invalid_type",
                param=field,
            )


def _kind(value: Any) -> str:
    """What a JSON value is, for a message."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer" if value >= 0 else "a negative integer"
    if isinstance(value, list):
        return "an array"
    return {str: "a string", float: "a number", dict: "an object"}.get(type(value), "null")


def parse_call(path: str, raw: bytes, session_header: str | None) -> tuple[str, Call]:
    """The model name and the parsed call, or a 400 GatewayError naming the bad field."""
    from modelplane.gateway._gateway import Call

    try:
        body = json_object(raw)
    except BadRequest as exc:
        raise GatewayError(400, exc.message, code="invalid_json") from None
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError(
            400,
            "Missing required parameter: 'model' (the name of an Endpoint or Graph).",
            code="missing_required_parameter",
            param="model",
        )
    field = _FIELDS[path]
    value = body.get(field)
    if path == "/chat/completions":
        if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
            raise GatewayError(
                400,
                "'messages' must be a non-empty array of message objects"
                ' ({"role": "user", "content": "..."}).',
                code="invalid_value",
                param="messages",
            )
    elif value is None or value == "" or value == []:
        raise GatewayError(
            400,
            f"Missing required parameter: {field!r}.",
            code="missing_required_parameter",
            param=field,
        )
    else:
        _check_text_input(field, value)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise GatewayError(
            400, "'stream' must be true or false.", code="invalid_type", param="stream"
        )
    if stream and path == "/embeddings":
        raise GatewayError(
            400, "Embeddings cannot be streamed.", code="invalid_value", param="stream"
        )
    for name in ("max_tokens", "max_completion_tokens"):
        limit = body.get(name)
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise GatewayError(
                400, f"{name!r} must be a positive integer.", code="invalid_value", param=name
            )
    user = body.get("user")
    user = user if isinstance(user, str) else ""
    call = Call(
        path=path,
        body=body,
        raw=raw,
        stream=stream,
        session=session_header or user or None,
        user=user,
        prompt=_prompt_text(path, body),
    )
    return model, call


def build_app(gateway: Gateway) -> Starlette:
    """The Starlette app serving ``gateway``; mount it at ``/v1``."""

    def openai_route(path: str) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                raw = await _read_body(request, gateway.max_body_bytes)
                model, call = parse_call(path, raw, request.headers.get("x-session-id"))
                return await gateway.handle(model, call)
            except GatewayError as exc:
                return error_response(exc)
            except Exception:
                log.exception("the gateway failed on %s", path)
                return Response(
                    error_body("The gateway failed on this request (see its log).", "server_error"),
                    status_code=500,
                    media_type="application/json",
                )

        return endpoint

    async def models(request: Request) -> Response:
        data = [
            {
                "id": route.name if route.namespace == "default" else route.key,
                "object": "model",
                "created": route.created,
                "owned_by": route.namespace,
                "modelplane": {"kind": "Endpoint" if isinstance(route, EndpointRoute) else "Graph"},
            }
            for route in gateway.table.routes().values()
        ]
        data.sort(key=lambda m: str(m["id"]))
        return Response(
            orjson.dumps({"object": "list", "data": data}), media_type="application/json"
        )

    async def samples(request: Request) -> Response:
        q = request.query_params
        namespace = q.get("namespace") or "default"
        endpoint = q.get("endpoint")
        if not endpoint:
            return error_response(
                GatewayError(
                    400,
                    "Give the endpoint: ?endpoint=NAME (and namespace, version, since).",
                    param="endpoint",
                )
            )
        try:
            since = float(q.get("since") or 0)
        except ValueError:
            return error_response(
                GatewayError(400, "'since' must be seconds since the epoch.", param="since")
            )
        version = q.get("version")
        versions = [version] if version else gateway.telemetry.versions(namespace, endpoint)
        out = {
            v: [
                {"t": t, "ttft_s": ttft, "tpot_s": tpot, "error": err}
                for (t, ttft, tpot, err) in gateway.telemetry.window(namespace, endpoint, v, since)
            ]
            for v in versions
        }
        body: dict[str, Any] = {"namespace": namespace, "endpoint": endpoint, "versions": out}
        if version:
            body["version"] = version
            body["samples"] = out[version]
        return Response(orjson.dumps(body), media_type="application/json")

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(
            gateway.telemetry.prometheus(), media_type="text/plain; version=0.0.4"
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        message = (
            f"Unknown path {request.url.path}; the OpenAI routes are /v1/chat/completions,"
            " /v1/completions, /v1/embeddings and /v1/models."
            if exc.status_code == 404
            else f"{request.method} is not allowed on {request.url.path}."
        )
        return Response(
            error_body(message, kind), status_code=exc.status_code, media_type="application/json"
        )

    routes = [Route(p, openai_route(p), methods=["POST"]) for p in _FIELDS]
    routes += [
        Route("/models", models, methods=["GET"]),
        Route("/_modelplane/samples", samples, methods=["GET"]),
        Route("/_modelplane/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})
