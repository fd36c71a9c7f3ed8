"""The OpenAPI description of the gateway's routes, for the server's ``/openapi.json``.

Request bodies say what :func:`~modelplane.gateway._call.parse_call` checks (and what OpenAI
documents): other fields pass through to the upstream unchanged, so bodies stay open. Every error
the gateway answers is in OpenAI's shape; the server in front of it answers 401 (no token) and
413 (body over the server's limit) as a Kubernetes ``Status``.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

ERROR = "openai.Error"
_REF = "#/components/schemas/"
#: how the server in front of the gateway refuses a request before it gets here
_SERVER_STATUS = "v1.Status"

_TOKENS: Schema = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
_TEXT_INPUT: Schema = {
    "description": "A string, or a non-empty array of strings, of token ids, or of arrays of"
    " token ids (one kind per array).",
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "minItems": 1, "items": {"type": "string"}},
        _TOKENS,
        {"type": "array", "minItems": 1, "items": _TOKENS},
    ],
}
_COMMON: Schema = {
    "model": {"type": "string", "minLength": 1, "description": "An Endpoint or Graph name."},
    "stream": {"type": "boolean"},
    "max_tokens": {"type": "integer", "minimum": 1},
    "max_completion_tokens": {"type": "integer", "minimum": 1},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "user": {"type": "string"},
}


def _ref(name: str) -> Schema:
    return {"$ref": _REF + name}


def _error_schema() -> Schema:
    return {
        "type": "object",
        "description": "An error in OpenAI's shape.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                },
            }
        },
    }


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors() -> Schema:
    return {
        "401": _json(_ref(_SERVER_STATUS), "no valid bearer token (the server's Status)"),
        "413": _json(
            {"anyOf": [_ref(ERROR), _ref(_SERVER_STATUS)]},
            "the body is over the gateway's or the server's limit",
        ),
        "default": _json(_ref(ERROR), "the request failed (OpenAI's error shape)"),
    }


def _request(required: list[str], **properties: Schema) -> Schema:
    schema: Schema = {
        "type": "object",
        "required": ["model", *required],
        "properties": {**_COMMON, **properties},
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _answer(description: str, *, streams: bool) -> Schema:
    content: Schema = {"application/json": {"schema": {"type": "object"}}}
    if streams:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    return {"description": description, "content": content}


def _post(op_id: str, summary: str, body: Schema, *, streams: bool) -> Schema:
    return {
        "post": {
            "operationId": op_id,
            "summary": summary,
            "tags": ["openai"],
            "requestBody": body,
            "responses": {"200": _answer(summary, streams=streams), **_errors()},
        }
    }


def _get(op_id: str, summary: str, ok: Schema, parameters: list[Schema] | None = None) -> Schema:
    operation: Schema = {
        "operationId": op_id,
        "summary": summary,
        "tags": ["openai"],
        "responses": {"200": ok, **_errors()},
    }
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _query(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def openapi_paths(prefix: str = "/v1") -> dict[str, Any]:
    """``{"paths": ..., "schemas": ...}`` describing the gateway mounted at ``prefix``."""
    message: Schema = {
        "type": "object",
        "properties": {"role": {"type": "string"}, "content": {}},
    }
    models: Schema = {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "object"],
                    "properties": {"id": {"type": "string"}, "object": {"const": "model"}},
                },
            },
        },
    }
    text = {"description": "Prometheus text", "content": {"text/plain": {"schema": {}}}}
    paths: dict[str, Schema] = {
        f"{prefix}/chat/completions": _post(
            "createChatCompletion",
            "A chat completion (SSE chunks with stream=true)",
            _request(
                ["messages"],
                messages={"type": "array", "minItems": 1, "items": message},
            ),
            streams=True,
        ),
        f"{prefix}/completions": _post(
            "createCompletion",
            "A text completion (SSE chunks with stream=true)",
            _request(["prompt"], prompt=_TEXT_INPUT),
            streams=True,
        ),
        f"{prefix}/embeddings": _post(
            "createEmbedding",
            "Embeddings of the input texts",
            _request(["input"], input=_TEXT_INPUT),
            streams=False,
        ),
        f"{prefix}/responses": _post(
            "createResponse",
            "A response (Responses API, served as a chat completion; response.* events with"
            " stream=true)",
            _request(
                ["input"],
                input={"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1}]},
                instructions={"type": "string"},
                max_output_tokens={"type": "integer", "minimum": 1},
            ),
            streams=True,
        ),
        f"{prefix}/models": _get(
            "listModels", "The Endpoints and Graphs served", _json(models, "the models")
        ),
        f"{prefix}/_modelplane/samples": _get(
            "gatewaySamples",
            "Recent per-version request samples of an Endpoint (canary analysis)",
            _json({"type": "object"}, "samples by version"),
            [
                _query("endpoint", {"type": "string"}, "The Endpoint's name.", required=True),
                _query("namespace", {"type": "string"}, "Its namespace (default `default`)."),
                _query("version", {"type": "string"}, "One version only."),
                _query("since", {"type": "number"}, "Seconds since the epoch."),
            ],
        ),
        f"{prefix}/_modelplane/metrics": _get(
            "gatewayMetrics", "The gateway's Prometheus metrics", text
        ),
    }
    return {"paths": paths, "schemas": {ERROR: _error_schema()}}
