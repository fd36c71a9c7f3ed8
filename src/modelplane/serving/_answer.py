"""The worker's answers in OpenAI's shapes: a whole completion, or a stream of chunks.

A request's ``n`` choices are ``n`` sequences in the engine; :func:`merged` interleaves their
deltas as they come. Each choice is shaped by a :class:`ChoiceShaper`: its text as ``content``
(or ``text``), its calls as ``tool_calls`` (``finish_reason: "tool_calls"``), its tokens'
log-probabilities in the chat shape (``logprobs.content[]``) or the completions shape
(``tokens``, ``token_logprobs``, ``top_logprobs``, ``text_offset``). Streamed, a choice's text
is sent as it grows, except what may be a tool call: held back until the choice ends, then sent
as ``delta.tool_calls``, one whole call per chunk (the ``openai`` client assembles them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from modelplane.api import openai_stream_error
from modelplane.serving._engine import Delta, TokenLogprob, safe_prefix_length
from modelplane.serving._errors import EngineError
from modelplane.serving._request import Parsed
from modelplane.serving._tools import CALL_OPEN, ToolCall, parse_calls


class ChoiceShaper:
    """One choice of an answer: what to send of its deltas, in OpenAI's shape."""

    def __init__(self, index: int, parsed: Parsed, chat: bool) -> None:
        self.index = index
        self.parsed = parsed
        self.chat = chat
        self.text = ""
        self.sent = 0
        self.offset = 0  # characters covered by the log-probabilities sent (text_offset)
        self.last = Delta("")
        self.role_sent = False

    @property
    def _tools(self) -> bool:
        return self.chat and self.parsed.tool_choice.mode != "none"

    def whole(self, deltas: list[Delta]) -> dict[str, Any]:
        """The choice of a non-streamed answer, from all its deltas."""
        self.text = "".join(d.text for d in deltas)
        self.last = deltas[-1] if deltas else Delta("", finish_reason="stop")
        entries = [e for d in deltas for e in d.logprobs]
        content, calls = self._split(self.text)
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if calls:
                message["content"] = content or None
                message["tool_calls"] = [c.openai(i) for i, c in enumerate(calls)]
            body: dict[str, Any] = {"message": message}
        else:
            body = {"text": content}
        reason = "tool_calls" if calls else self.last.finish_reason
        return self._choice(body, reason, self._logprobs(entries))

    def chunks(self, delta: Delta) -> list[dict[str, Any]]:
        """The stream chunks' choices for ``delta`` (none when all of it is held back)."""
        self.text += delta.text
        self.last = delta
        end = len(self.text)
        if self._tools:
            at = self.text.find(CALL_OPEN, self.sent)
            end = at if at >= 0 else safe_prefix_length(self.text, [CALL_OPEN])
            if self.parsed.tool_choice.constrained:
                end = self.sent
        out: list[dict[str, Any]] = []
        piece = self.text[self.sent : end] if delta.finish_reason is None else ""
        calls: list[ToolCall] = []
        if delta.finish_reason is not None:
            piece, calls = self._split(self.text[self.sent :])
        self.sent = max(self.sent, end)
        if piece or delta.logprobs or (delta.finish_reason and not calls):
            body: dict[str, Any] = (
                {"delta": {"content": piece} if piece else {}} if self.chat else {"text": piece}
            )
            reason = None if calls else delta.finish_reason
            out.append(self._choice(body, reason, self._logprobs(list(delta.logprobs))))
        if calls:
            for i, call in enumerate(calls):
                last = i == len(calls) - 1
                call_body = {"delta": {"tool_calls": [call.openai(i)]}}
                out.append(self._choice(call_body, "tool_calls" if last else None, None))
        if self.chat and out and not self.role_sent:  # a choice's first chunk names the role
            out[0]["delta"] = {"role": "assistant", **out[0]["delta"]}
            self.role_sent = True
        return out

    def _split(self, text: str) -> tuple[str, list[ToolCall]]:
        if not self._tools:
            return text, []
        return parse_calls(text, self.parsed.tool_choice, self.parsed.parallel_tool_calls)

    def _choice(
        self, body: dict[str, Any], reason: str | None, logprobs: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {"index": self.index, **body, "finish_reason": reason, "logprobs": logprobs}

    def _logprobs(self, entries: list[TokenLogprob]) -> dict[str, Any] | None:
        if self.parsed.request.logprobs is None:
            return None
        if self.chat:
            return {"content": [_chat_logprob(e) for e in entries], "refusal": None}
        offsets = []
        for e in entries:
            offsets.append(self.offset)
            self.offset += len(e.token)
        return {
            "tokens": [e.token for e in entries],
            "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [dict(e.top) for e in entries],
            "text_offset": offsets,
        }


def _chat_logprob(entry: TokenLogprob) -> dict[str, Any]:
    return {
        "token": entry.token,
        "logprob": entry.logprob,
        "bytes": list(entry.token.encode()),
        "top_logprobs": [
            {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in entry.top
        ],
    }


def usage(finals: list[Delta]) -> dict[str, int]:
    """Usage of an answer from its choices' last deltas: the prompt read once, every choice's
    tokens counted."""
    prompt = max((d.prompt_tokens for d in finals), default=0)
    completion = sum(d.completion_tokens for d in finals)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def merged(streams: list[AsyncIterator[Delta]]) -> AsyncIterator[tuple[int, Delta]]:
    """The deltas of several choices as they come, each with its choice's index; closing this
    closes them all."""
    if len(streams) == 1:
        async for delta in streams[0]:
            yield 0, delta
        return
    queue: asyncio.Queue[tuple[int, Delta | Exception | None]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[Delta]) -> None:
        try:
            async for delta in stream:
                queue.put_nowait((index, delta))
        except Exception as exc:
            queue.put_nowait((index, exc))
        finally:
            queue.put_nowait((index, None))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        live = len(tasks)
        while live:
            index, item = await queue.get()
            if item is None:
                live -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def sse(
    rid: str,
    parsed: Parsed,
    chat: bool,
    created: int,
    deltas: AsyncIterator[tuple[int, Delta]],
    finished: Callable[[str], None],
) -> AsyncIterator[bytes]:
    """The answer as Server-Sent Events: each choice's chunks (the first naming the role), the
    usage chunk when asked for, ``[DONE]``; ``finished`` hears the outcome ("ok" or "error")."""
    obj = "chat.completion.chunk" if chat else "text_completion"

    def event(fields: dict[str, Any]) -> bytes:
        data = {"id": rid, "object": obj, "created": created, "model": parsed.model, **fields}
        return b"data: " + orjson.dumps(data) + b"\n\n"

    shapers = [ChoiceShaper(i, parsed, chat) for i in range(parsed.n)]
    outcome = "error"
    try:
        try:
            async for index, delta in deltas:
                for choice in shapers[index].chunks(delta):
                    yield event({"choices": [choice]})
        except EngineError as exc:
            yield openai_stream_error(exc.message, "server_error")
            return
        if parsed.include_usage:
            yield event({"choices": [], "usage": usage([s.last for s in shapers])})
        yield b"data: [DONE]\n\n"
        outcome = "ok"
    finally:
        finished(outcome)
        await deltas.aclose()  # type: ignore[attr-defined]
