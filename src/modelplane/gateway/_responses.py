"""OpenAI's Responses API (``POST /v1/responses``), served as a chat completion.

A Responses request is translated into a chat-completions body (``input`` and ``instructions``
into ``messages``, ``max_output_tokens`` into ``max_tokens``, ``text.format`` into
``response_format``, function ``tools`` and ``tool_choice`` into theirs), parsed into a
:class:`~modelplane.gateway._call.Call` and handed to the gateway's one request path, so limits,
budgets, routing, fallbacks and telemetry apply as to any chat call. The chat answer is
translated back: a ``response`` object whose ``output`` holds a ``message`` item (the text) and
``function_call`` items; streamed, the chat chunks become the ``response.*`` events the
``openai`` client reads (``response.created``, ``response.output_item.added``,
``response.output_text.delta``, ``response.function_call_arguments.done``, ...,
``response.completed``).

Nothing is stored: ``previous_response_id``, ``conversation``, ``background`` and built-in
(non-function) tools answer 400 naming the field, as does any other field the translation does
not carry (see ``_REFUSED``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from modelplane.gateway._errors import GatewayError

#: Responses fields served by the translation
_CARRIED = {
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "temperature",
    "top_p",
    "text",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "stream",
    "user",
    "metadata",
    "store",
}
#: fields that need state or features the gateway does not keep, each with why
_REFUSED = {
    "previous_response_id": "responses are not stored; send the whole conversation as input",
    "conversation": "conversations are not stored; send the whole conversation as input",
    "background": "background responses are not supported; call without background",
    "reasoning": "reasoning options are not supported by the models served here",
    "include": "extra output (include) is not supported",
}


def chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body a Responses request ``body`` asks for; a 400 GatewayError
    naming the field the translation cannot carry."""
    for name in body:
        if name in _REFUSED and body[name] not in (None, [], False):
            raise _bad(f"{name!r}: {_REFUSED[name]}.", name)
        if name not in _CARRIED and name not in _REFUSED and body[name] is not None:
            raise _bad(f"{name!r} is not supported by this gateway's /v1/responses.", name)
    if body.get("store"):
        raise _bad("responses are not stored here; send store: false or leave it out.", "store")
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise _bad("'max_output_tokens' must be a positive integer.", "max_output_tokens")
    chat: dict[str, Any] = {"model": body.get("model"), "messages": _messages(body)}
    for ours, theirs in (
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("user", "user"),
    ):
        if body.get(ours) is not None:
            chat[theirs] = body[ours]
    text_format = _text_format(body.get("text"))
    if text_format is not None:
        chat["response_format"] = text_format
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError(400, message, code="invalid_value", param=param)


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _bad("'instructions' must be a string.", "instructions")
        messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise _bad("'input' must be a string or a non-empty array of input items.", "input")
    for i, item in enumerate(items):
        messages.append(_message(i, item, messages))
    return [m for m in messages if m]


def _message(i: int, item: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """One input item as a chat message (an empty dict when it was merged into the last)."""
    kind = item.get("type", "message") if isinstance(item, dict) else None
    if kind == "message" and isinstance(item.get("role"), str):
        role = "system" if item["role"] == "developer" else item["role"]
        return {"role": role, "content": _text(i, item.get("content"))}
    if kind == "function_call":
        call = {
            "id": item.get("call_id") or item.get("id"),
            "type": "function",
            "function": {"name": item.get("name"), "arguments": item.get("arguments", "{}")},
        }
        last = messages[-1] if messages else None
        if last and last.get("role") == "assistant" and "tool_calls" in last:
            last["tool_calls"].append(call)  # parallel calls: one assistant turn
            return {}
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    if kind == "function_call_output":
        output = item.get("output")
        return {
            "role": "tool",
            "tool_call_id": item.get("call_id"),
            "content": output if isinstance(output, str) else orjson.dumps(output).decode(),
        }
    raise _bad(
        f"input[{i}] must be a message ({{role, content}}), a function_call or a"
        " function_call_output item.",
        f"input[{i}]",
    )


def _text(i: int, content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in ("input_text", "output_text", "text"):
                raise _bad(
                    f"input[{i}].content: only text parts are supported (got {kind!r}).",
                    f"input[{i}].content",
                )
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise _bad(f"input[{i}].content must be a string or a list of parts.", f"input[{i}].content")


def _text_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind in ("text", "json_object"):
        return None if fmt is None else {"type": kind}
    if kind == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": spec}
    raise _bad("'text.format.type' must be 'text', 'json_object' or 'json_schema'.", "text.format")


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("'tools' must be an array of function tools.", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _bad(
                f"tools[{i}]: only function tools are supported (got {kind!r}).",
                f"tools[{i}].type",
            )
        function = {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    if choice in ("auto", "none", "required"):
        return choice
    raise _bad(
        "'tool_choice' must be 'auto', 'none', 'required' or {type: function, name}.",
        "tool_choice",
    )


# -- answers --------------------------------------------------------------------------------------


def response_object(request: dict[str, Any], chat: dict[str, Any]) -> dict[str, Any]:
    """The Responses ``response`` for a chat completion ``chat`` answering ``request``."""
    choice = (chat.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    if message.get("content"):
        output.append(_message_item(_id("msg"), str(message["content"])))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(
            _call_item(_id("fc"), call.get("id"), function.get("name"), function.get("arguments"))
        )
    incomplete = choice.get("finish_reason") == "length"
    return _response(request, output, chat.get("usage"), incomplete)


def _response(
    request: dict[str, Any],
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete: bool,
    status: str | None = None,
    rid: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    return {
        "id": rid or _id("resp"),
        "object": "response",
        "created_at": created or int(time.time()),
        "status": status or ("incomplete" if incomplete else "completed"),
        "model": request.get("model"),
        "output": output,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "temperature": request.get("temperature"),
        "top_p": request.get("top_p"),
        "tools": request.get("tools") or [],
        "tool_choice": request.get("tool_choice") or "auto",
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "text": request.get("text") or {"format": {"type": "text"}},
        "metadata": request.get("metadata") or {},
        "usage": _usage(usage),
    }


def _usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    # an item being streamed gets its part by an event of its own
    part = {"type": "output_text", "text": text, "annotations": []}
    content = [] if status == "in_progress" else [part]
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _call_item(item_id: str, call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id or _id("call"),
        "name": name,
        "arguments": arguments or "",
        "status": "completed",
    }


class _Events:
    """The ``response.*`` events of one streamed response, numbered in order."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.request = request
        self.rid = _id("resp")
        self.created = int(time.time())
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.text: dict[str, Any] | None = None  # the message item being streamed
        self.pieces: list[str] = []  # its text so far
        self.calls: dict[int, dict[str, Any]] = {}  # function_call items by the chat's index
        self.usage: dict[str, Any] | None = None
        self.finish: str | None = None

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def response(self, status: str) -> dict[str, Any]:
        incomplete = self.finish == "length"
        return _response(
            self.request,
            self.output,
            self.usage,
            incomplete,
            status=status if status != "completed" or not incomplete else "incomplete",
            rid=self.rid,
            created=self.created,
        )

    def start(self) -> list[bytes]:
        response = self.response("in_progress")
        return [
            self.event("response.created", response=response),
            self.event("response.in_progress", response=response),
        ]

    def content(self, piece: str) -> list[bytes]:
        out = []
        if self.text is None:
            self.text = _message_item(_id("msg"), "", status="in_progress")
            self.output.append(self.text)
            part = {"type": "output_text", "text": "", "annotations": []}
            out += [
                self.event(
                    "response.output_item.added", output_index=self._at(self.text), item=self.text
                ),
                self._part("response.content_part.added", self.text, part=part),
            ]
        self.pieces.append(piece)
        out.append(self._part("response.output_text.delta", self.text, delta=piece, logprobs=[]))
        return out

    def _part(self, kind: str, item: dict[str, Any], **fields: Any) -> bytes:
        """An event about the one text part of the message ``item``."""
        return self.event(
            kind, item_id=item["id"], output_index=self._at(item), content_index=0, **fields
        )

    def call(self, delta: dict[str, Any]) -> list[bytes]:
        out = []
        index = int(delta.get("index", 0))
        function = delta.get("function") or {}
        item = self.calls.get(index)
        if item is None:
            item = _call_item(_id("fc"), delta.get("id"), function.get("name"), "")
            item["status"] = "in_progress"
            self.calls[index] = item
            self.output.append(item)
            out.append(
                self.event("response.output_item.added", output_index=self._at(item), item=item)
            )
        piece = function.get("arguments") or ""
        if piece:
            item["arguments"] += piece
            out.append(
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._at(item),
                    delta=piece,
                )
            )
        return out

    def end(self) -> list[bytes]:
        out = []
        for at, item in enumerate(self.output):
            item["status"] = "completed"
            if item["type"] == "message":
                text = "".join(self.pieces)
                part = {"type": "output_text", "text": text, "annotations": []}
                item["content"] = [part]
                out += [
                    self._part("response.output_text.done", item, text=text, logprobs=[]),
                    self._part("response.content_part.done", item, part=part),
                ]
            else:
                out.append(
                    self.event(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=at,
                        arguments=item["arguments"],
                    )
                )
            out.append(self.event("response.output_item.done", output_index=at, item=item))
        done = self.response("completed")
        kind = "response.incomplete" if done["status"] == "incomplete" else "response.completed"
        out.append(self.event(kind, response=done))
        return out

    def _at(self, item: dict[str, Any]) -> int:
        return next(i for i, o in enumerate(self.output) if o is item)


async def response_events(
    request: dict[str, Any], chunks: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """The ``response.*`` events of a streamed chat answer's ``chunks`` (Server-Sent Events)."""
    events = _Events(request)
    buffer = b""
    try:
        for e in events.start():
            yield e
        async for chunk in chunks:
            buffer += chunk if isinstance(chunk, bytes) else str(chunk).encode()
            while b"\n\n" in buffer:
                raw, buffer = buffer.split(b"\n\n", 1)
                for e in _translate(events, raw):
                    yield e
                    if e.startswith(b"event: error"):
                        return
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def _translate(events: _Events, raw: bytes) -> list[bytes]:
    data = b"".join(line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:"))
    if not data:
        return []
    if data == b"[DONE]":
        return events.end()
    chunk = orjson.loads(data)
    if "error" in chunk:
        error = chunk["error"] or {}
        return [
            events.event(
                "error",
                code=error.get("code"),
                message=error.get("message"),
                param=error.get("param"),
            )
        ]
    if chunk.get("usage"):
        events.usage = chunk["usage"]
    out: list[bytes] = []
    for choice in chunk.get("choices") or []:
        if choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        if delta.get("content"):
            out += events.content(delta["content"])
        for call in delta.get("tool_calls") or []:
            out += events.call(call)
        if choice.get("finish_reason"):
            events.finish = choice["finish_reason"]
    return out
