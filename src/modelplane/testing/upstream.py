"""A fake OpenAI-compatible upstream: the stand-in for a hosted provider in tests and benchmarks.

It is a raw :mod:`asyncio` protocol (no framework) so that, in a benchmark, it costs as little as
possible next to the gateway it serves. It speaks just enough HTTP/1.1: keep-alive, requests with
``Content-Length`` bodies, responses with ``Content-Length`` or chunked streaming.

Behaviour is set through attributes, changeable while it runs (tests flip them):

* ``mode``: ``"ok"``; ``"fail"`` (500 before any byte); ``"drop"`` (close the connection without
  an answer); ``"hang"`` (never answer); ``"break"`` (stream the first chunk, then close the
  connection mid-stream);
* ``delay``: seconds before the first byte of an answer;
* ``done_gap``: when set, a stream's ``data: [DONE]`` (and the end of its body) is written this
  many seconds after the events before it, in a write of its own, as providers often send it;
* ``reply``: the answer's text; when None, ``"<name>: <last user message>"`` (an echo);
* ``queue_depth``, ``running``, ``kv_cache``: the figures served at ``/metrics``.

``python -m modelplane.testing.upstream`` runs one until killed and prints its base URL.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import threading
import time
from typing import Any

import orjson

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 500: b"Internal Server Error"}
_MAX_HEADER = 64 * 1024


class FakeUpstream:
    """An OpenAI-compatible server on ``127.0.0.1`` in a thread of its own; ``url`` ends in /v1."""

    def __init__(
        self,
        name: str = "fake",
        *,
        reply: str | None = "Hello from the fake upstream.",
        chunks: int = 4,
        port: int = 0,
    ) -> None:
        self.name = name
        self.reply = reply
        self.chunks = chunks
        self.port = port
        self.mode = "ok"
        self.delay = 0.0
        self.done_gap: float | None = None
        self.queue_depth = 0.0
        self.running = 0.0
        self.kv_cache = 0.0
        #: requests answered or refused, by path
        self.requests: collections.Counter[str] = collections.Counter()
        #: the last bodies received (parsed), newest last
        self.bodies: collections.deque[dict[str, Any]] = collections.deque(maxlen=64)
        self.headers: collections.deque[dict[str, str]] = collections.deque(maxlen=64)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/v1"

    def start(self) -> FakeUpstream:
        self._thread = threading.Thread(target=self._run, name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake upstream did not start within 10 s")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(
            loop.create_server(lambda: _Protocol(self), "127.0.0.1", self.port, backlog=1024)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def serve_forever(self) -> None:
        """Serve in the running loop (for ``python -m``); ``port`` 0 picks a free one."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        server = await loop.create_server(
            lambda: _Protocol(self), "127.0.0.1", self.port, backlog=4096
        )
        self.port = server.sockets[0].getsockname()[1]
        print(self.url, flush=True)
        await server.serve_forever()

    # -- answers ------------------------------------------------------------------------------

    def text_for(self, body: dict[str, Any]) -> str:
        if self.reply is not None:
            return self.reply
        last = ""
        messages = body.get("messages")
        if isinstance(messages, list):
            for m in messages:
                if isinstance(m, dict) and m.get("role") == "user":
                    last = str(m.get("content", ""))
        elif "prompt" in body:
            last = str(body["prompt"])
        return f"{self.name}: {last}"

    def metrics_text(self) -> bytes:
        return (
            f"modelplane_worker_queue_depth {self.queue_depth}\n"
            f"modelplane_worker_running_requests {self.running}\n"
            f"modelplane_worker_kv_cache_usage_ratio {self.kv_cache}\n"
        ).encode()


def _split_words(text: str, parts: int) -> list[str]:
    words = text.split(" ")
    parts = max(1, min(parts, len(words)))
    size = -(-len(words) // parts)
    out = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [w if i == 0 else " " + w for i, w in enumerate(out)]


class _Protocol(asyncio.Protocol):
    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def _next(self) -> None:
        while self.transport is not None and not self.busy:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEADER:
                    self.transport.close()
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            method, path, _ = [*head[0].split(" "), "", "", ""][:3]
            headers: dict[str, str] = {}
            for line in head[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self._handle(method, path.split("?", 1)[0], headers, body)

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        fake = self.fake
        fake.requests[path] += 1
        if method == "GET":
            if path == "/metrics":
                self._send(200, fake.metrics_text(), b"text/plain; version=0.0.4")
            elif path == "/health":
                self._send(200, b"ok", b"text/plain")
            elif path == "/v1/models":
                data = {"object": "list", "data": [{"id": fake.name, "object": "model"}]}
                self._send(200, orjson.dumps(data))
            else:
                self._send(404, b'{"error":{"message":"not found"}}')
            return
        try:
            parsed = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            self._send(400, b'{"error":{"message":"bad json"}}')
            return
        fake.bodies.append(parsed)
        fake.headers.append(headers)
        mode = fake.mode
        if mode == "hang":
            self.busy = True  # never answers; the client must time out
            return
        if mode == "drop":
            assert self.transport is not None
            self.transport.close()
            return
        if fake.delay > 0:
            self.busy = True
            loop = asyncio.get_running_loop()
            loop.call_later(fake.delay, self._answer, path, parsed, mode)
        else:
            self._answer(path, parsed, mode)

    def _answer(self, path: str, body: dict[str, Any], mode: str) -> None:
        self.busy = False
        if self.transport is None:
            return
        if mode == "fail":
            self._send(
                500, b'{"error":{"message":"the fake upstream failed","type":"server_error"}}'
            )
        elif path == "/v1/embeddings":
            inputs = body.get("input")
            count = len(inputs) if isinstance(inputs, list) else 1
            data = [
                {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1)] * 8}
                for i in range(count)
            ]
            usage = {"prompt_tokens": 3 * count, "total_tokens": 3 * count}
            self._send(200, orjson.dumps({"object": "list", "data": data, "usage": usage}))
        elif path in ("/v1/chat/completions", "/v1/completions"):
            chat = path == "/v1/chat/completions"
            text = self.fake.text_for(body)
            if body.get("stream"):
                self._stream(text, chat, body, mode)
            else:
                self._send(200, _completion(self.fake.name, text, chat))
        else:
            self._send(404, b'{"error":{"message":"not found"}}')
        if not self.busy:
            self._next()

    def _send(self, status: int, payload: bytes, ctype: bytes = b"application/json") -> None:
        assert self.transport is not None
        reason = _REASONS.get(status, b"Error")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
            % (status, reason, ctype, len(payload), payload)
        )

    def _stream(self, text: str, chat: bool, body: dict[str, Any], mode: str) -> None:
        assert self.transport is not None
        parts = _split_words(text, self.fake.chunks)
        created = int(time.time())
        events: list[bytes] = []
        if chat:
            events.append(_chunk(self.fake.name, created, {"role": "assistant", "content": ""}))
        for part in parts:
            events.append(_chunk(self.fake.name, created, part, chat=chat))
        events.append(_chunk(self.fake.name, created, None, chat=chat, finish="stop"))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            words = len(text.split())  # counted as the non-streamed answer counts them
            usage = {"prompt_tokens": 5, "completion_tokens": words, "total_tokens": 5 + words}
            events.append(
                b"data: "
                + orjson.dumps(
                    {"id": "fake", "object": "chat.completion.chunk", "choices": [], "usage": usage}
                )
                + b"\n\n"
            )
        events.append(b"data: [DONE]\n\n")
        out = [
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        ]
        if mode == "break":
            first = events[0]
            out.append(b"%x\r\n%s\r\n" % (len(first), first))
            self.transport.write(b"".join(out))
            self.transport.close()
            return
        gap = self.fake.done_gap
        done = events.pop() if gap is not None else None
        for event in events:
            out.append(b"%x\r\n%s\r\n" % (len(event), event))
        if done is None:
            out.append(b"0\r\n\r\n")
            self.transport.write(b"".join(out))
            return
        self.transport.write(b"".join(out))
        self.busy = True  # the next request on this connection waits for the end of this one
        asyncio.get_running_loop().call_later(gap or 0.0, self._finish, done)

    def _finish(self, done: bytes) -> None:
        self.busy = False
        if self.transport is None:
            return
        self.transport.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
        self._next()


def _chunk(
    name: str, created: int, delta: Any, *, chat: bool = True, finish: str | None = None
) -> bytes:
    if chat:
        content = (
            delta if isinstance(delta, dict) else ({} if delta is None else {"content": delta})
        )
        choice: dict[str, Any] = {"index": 0, "delta": content, "finish_reason": finish}
        kind = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": delta or "", "finish_reason": finish}
        kind = "text_completion"
    data = {"id": "fake", "object": kind, "created": created, "model": name, "choices": [choice]}
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _completion(name: str, text: str, chat: bool) -> bytes:
    words = len(text.split())
    usage = {"prompt_tokens": 5, "completion_tokens": words, "total_tokens": 5 + words}
    if chat:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        kind = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "finish_reason": "stop"}
        kind = "text_completion"
    data = {
        "id": "fake",
        "object": kind,
        "created": int(time.time()),
        "model": name,
        "choices": [choice],
        "usage": usage,
    }
    return orjson.dumps(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible upstream.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=4)
    args = parser.parse_args(argv)
    fake = FakeUpstream(chunks=args.chunks, port=args.port)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(fake.serve_forever())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
