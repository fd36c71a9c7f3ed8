"""A worker's reading of an OpenAI request body: the prompt, the sampling, and the optional
features (``response_format``, ``tools``/``tool_choice``, ``n``, ``logprobs``), each checked.

A field that is malformed, or that names a feature the engine does not implement (see
:attr:`~modelplane.serving._engine.Engine.features`), is refused with an :class:`EngineError`
naming it (a 400 in OpenAI's shape): never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelplane.serving._engine import Engine, GenerationRequest, SamplingDefaults
from modelplane.serving._errors import EngineError
from modelplane.serving._tools import (
    ToolChoice,
    call_schema,
    check_tool_choice,
    check_tools,
)

DEFAULT_MAX_TOKENS = 256
_MAX_STOPS = 4
#: choices per request (each one a sequence in the engine)
MAX_N = 8
#: alternatives per token: OpenAI's limits for chat (20) and completions (5)
_MAX_TOP_LOGPROBS = {True: 20, False: 5}


@dataclass(slots=True)
class Parsed:
    """What a request asks: the generation of each choice and how to answer."""

    request: GenerationRequest
    model: str
    stream: bool
    include_usage: bool
    n: int = 1
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: ToolChoice = field(default_factory=lambda: ToolChoice("none"))
    parallel_tool_calls: bool = True


def parse_request(engine: Engine, model: str, data: dict[str, Any], chat: bool) -> Parsed:
    """The request ``data`` (a chat or a completion body) asks ``engine`` for."""
    _check_features(engine, data)
    tools: list[dict[str, Any]] = []
    choice = ToolChoice("none")
    if chat:
        tools = check_tools(data.get("tools"))
        choice = check_tool_choice(data.get("tool_choice"), tools)
        prompt = chat_prompt(engine, data, tools if choice.mode != "none" else [])
    else:
        for name in ("tools", "tool_choice"):
            if data.get(name) is not None:
                raise EngineError(
                    f"{name} is for chat completions; send it to /v1/chat/completions", param=name
                )
        prompt = completion_prompt(data)
    parsed = _sampling(engine.sampling_defaults, model, data, prompt)
    parsed.request.logprobs = _logprobs(data, chat)
    parsed.request.json_schema = _response_schema(data.get("response_format"))
    if choice.constrained:
        if parsed.request.json_schema is not None:
            raise EngineError(
                "response_format and a required tool_choice both constrain the answer; use one",
                param="response_format",
            )
        parsed.request.json_schema = call_schema(tools, choice.function)
    parallel = data.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise EngineError("parallel_tool_calls must be true or false", param="parallel_tool_calls")
    parsed.tools, parsed.tool_choice, parsed.parallel_tool_calls = tools, choice, parallel
    return parsed


#: OpenAI options no engine here implements, with the value that means "not asked for"
_UNIMPLEMENTED: dict[str, Any] = {
    "logit_bias": {},
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "best_of": 1,
    "echo": False,
    "suffix": "",
    "prediction": {},
    "audio": {},
    "web_search_options": {},
}


def _check_features(engine: Engine, data: dict[str, Any]) -> None:
    """A 400 naming the first field that asks for a feature ``engine`` lacks, or for an option
    no engine here implements."""
    for name, neutral in _UNIMPLEMENTED.items():
        if data.get(name) not in (None, neutral):
            raise EngineError(
                f"{name} is not supported by Modelplane's model workers; drop it", param=name
            )
    asks = {
        "response_format": (data.get("response_format") or {"type": "text"}) != {"type": "text"},
        "tools": bool(data.get("tools")),
        # completions' logprobs: 0 asks for them too (0 == False, hence the identity test)
        "logprobs": data.get("logprobs") is not None and data.get("logprobs") is not False,
    }
    for feature, asked in asks.items():
        if asked and feature not in engine.features:
            raise EngineError(
                f"{feature} is not supported by this model's engine; drop {feature} or use a"
                " model served by the transformers engine",
                param=feature,
            )


def _sampling(defaults: SamplingDefaults, model: str, data: dict[str, Any], prompt: str) -> Parsed:
    """The sampling a request body asks for; an :class:`EngineError` naming a bad field."""
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens", DEFAULT_MAX_TOKENS))
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if not _is_int(max_tokens) or max_tokens < 1:
        raise EngineError("max_tokens must be a positive integer", param="max_tokens")
    # unset: what the model's generation config asks for (greedy for most instruct models)
    temperature = data.get("temperature")
    temperature = defaults.temperature if temperature is None else temperature
    if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        raise EngineError("temperature must be a number from 0 to 2", param="temperature")
    top_p = data.get("top_p")
    top_p = defaults.top_p if top_p is None else top_p
    if not isinstance(top_p, int | float) or not 0 < top_p <= 1:
        raise EngineError("top_p must be a number in (0, 1]", param="top_p")
    stop = data.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if (
        not isinstance(stop, list)
        or len(stop) > _MAX_STOPS
        or not all(isinstance(s, str) for s in stop)
    ):
        raise EngineError("stop must be a string or a list of up to 4 strings", param="stop")
    n = data.get("n")
    n = 1 if n is None else n
    if not _is_int(n) or not 1 <= n <= MAX_N:
        raise EngineError(f"n must be an integer from 1 to {MAX_N}", param="n")
    seed = data.get("seed")
    if seed is not None and not _is_int(seed):
        raise EngineError("seed must be an integer", param="seed")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise EngineError("stream must be true or false", param="stream")
    options = data.get("stream_options") or {}
    return Parsed(
        GenerationRequest(prompt, max_tokens, float(temperature), float(top_p), stop, seed),
        str(data.get("model") or model),
        stream,
        bool(isinstance(options, dict) and options.get("include_usage")),
        n=n,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _logprobs(data: dict[str, Any], chat: bool) -> int | None:
    """Alternatives per token to record (0 for none), or None when logprobs are not asked for.
    Chat: ``logprobs: true`` and ``top_logprobs``; completions: ``logprobs: N``."""
    value = data.get("logprobs")
    top = data.get("top_logprobs") if chat else value
    most = _MAX_TOP_LOGPROBS[chat]
    if chat and value is not None and not isinstance(value, bool):
        raise EngineError("logprobs must be true or false", param="logprobs")
    if top is not None and (not _is_int(top) or not 0 <= top <= most):
        name = "top_logprobs" if chat else "logprobs"
        raise EngineError(f"{name} must be an integer from 0 to {most}", param=name)
    if chat and top is not None and not value:
        raise EngineError("top_logprobs needs logprobs: true", param="top_logprobs")
    if chat:
        return int(top or 0) if value else None
    return None if value is None else int(value)


def _response_schema(value: Any) -> dict[str, Any] | None:
    """The JSON Schema ``response_format`` asks the answer to satisfy (None: free text)."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise EngineError(
                "response_format.json_schema.schema must be a JSON Schema object",
                param="response_format.json_schema.schema",
            )
        strict = spec.get("strict") if isinstance(spec, dict) else None
        if strict is not None and not isinstance(strict, bool):
            raise EngineError(
                "response_format.json_schema.strict must be true or false",
                param="response_format.json_schema.strict",
            )
        # strict or not, the schema is enforced: decoding cannot leave it
        return schema
    raise EngineError(
        'response_format.type must be "text", "json_object" or "json_schema"',
        param="response_format",
    )


def chat_prompt(engine: Engine, data: dict[str, Any], tools: list[dict[str, Any]]) -> str:
    """The prompt of a chat request: its ``messages`` (and ``tools``) rendered by the model's chat
    template."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise EngineError("messages must be a non-empty list of {role, content}", param="messages")
    checked = [_message(i, message) for i, message in enumerate(messages)]
    return engine.render_chat(checked, tools or None)


def _message(i: int, message: Any) -> dict[str, Any]:
    """One chat message: role, text content, and an assistant's ``tool_calls`` or a tool
    answer's ``tool_call_id`` when present."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise EngineError(
            f"messages[{i}] must be an object with a role", param=f"messages[{i}].role"
        )
    content = message.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise EngineError(f"messages[{i}].content must be a string", param=f"messages[{i}].content")
    plain: dict[str, Any] = {"role": message["role"], "content": content}
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list) or not all(_is_call(c) for c in calls):
            raise EngineError(
                f"messages[{i}].tool_calls must be a list of"
                ' {"id", "type": "function", "function": {"name", "arguments"}}',
                param=f"messages[{i}].tool_calls",
            )
        plain["tool_calls"] = calls
    if isinstance(message.get("tool_call_id"), str):
        plain["tool_call_id"] = message["tool_call_id"]
    return plain


def _is_call(call: Any) -> bool:
    function = call.get("function") if isinstance(call, dict) else None
    return (
        isinstance(function, dict)
        and isinstance(function.get("name"), str)
        and isinstance(function.get("arguments"), str | dict)
    )


def completion_prompt(data: dict[str, Any]) -> str:
    """The prompt of a completion request: one non-empty string (or a list of one)."""
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise EngineError("prompt must be a non-empty string", param="prompt")
    return prompt
