"""One OpenAI request, parsed once: the :class:`Call` every part of the gateway passes along.

Below the app (which parses a client's request into it), the gateway (which serves it) and the
Graph runner (which builds one per step), so that none of them imports another for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import Span

from modelplane.api import LOCAL_OPERATOR, Principal, json_object
from modelplane.api.errors import BadRequest
from modelplane.gateway._errors import GatewayError
from modelplane.gateway._matches import RequestFacts
from modelplane.gateway._routing import prompt_blocks

#: the OpenAI routes served, each with the field that carries its input
FIELDS = {
    "/chat/completions": "messages",
    "/completions": "prompt",
    "/embeddings": "input",
}


@dataclass(slots=True)
class Call:
    """One OpenAI request, parsed once."""

    path: str  # "/chat/completions", "/completions" or "/embeddings"
    body: dict[str, Any]
    raw: bytes
    stream: bool = False
    session: str | None = None
    #: OpenAI's end-user id, as the client sent it: passed through, never a tenant or identity
    user: str = ""
    #: who is calling (the server's authentication): limits, budgets, audit and model access key
    #: on it, never on the body
    principal: Principal = LOCAL_OPERATOR
    prompt: str = ""
    #: the request class the client named (``x-modelplane-priority``), None when it named none
    priority: str | None = None
    #: the priority flow control gave it (None: the endpoint has no classes), sent to the replica
    priority_value: int | None = None
    # the Graph step this call serves (its name, else its endpoint), shown on its span
    step: str | None = None
    #: the client's HTTP request (path, method, Host, headers, query) for HTTPRoute matches and
    #: an Endpoint's header routes; None for a Graph's steps
    facts: RequestFacts | None = None
    # the request's trace span; a streamed answer's relay takes it over (and sets this to None)
    span: Span | None = field(default=None, repr=False)
    _blocks: list[int] | None = field(default=None, repr=False)

    def blocks(self, block_chars: int) -> list[int]:
        if self._blocks is None:
            self._blocks = prompt_blocks(self.prompt, block_chars) if self.prompt else []
        return self._blocks


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
    field = FIELDS[path]
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
