"""The worker's HTTP surface: a subset of the OpenAI API over an :class:`Engine`, plus health and metrics.

Routes: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (``stream: true`` answers
Server-Sent Events in OpenAI's chunk format, ending ``data: [DONE]``), ``POST /v1/embeddings``,
``GET /v1/models``, ``GET /health`` (JSON: model, digest, queue depth, running requests, idle
seconds) and ``GET /metrics`` (Prometheus text). Errors use OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``.

A non-streamed completion carries its timing in a ``Server-Timing`` header (W3C; durations in
milliseconds): ``ttft;dur=...`` (request received to first output) and, when more than one token
was generated, ``tpot;dur=...`` (mean time per output token after the first). The gateway cannot
see these itself: the whole answer reaches it at once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from modelplane.api import json_object, openai_error_body, openai_stream_error
from modelplane.api.errors import ModelplaneError
from modelplane.serving._engine import Delta, Engine, GenerationRequest
from modelplane.serving._errors import EngineError

MAX_BODY_BYTES = 4 << 20
DEFAULT_MAX_TOKENS = 256
_MAX_STOPS = 4
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_TPOT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class WorkerMetrics:
    """The per-replica metrics, in a registry of their own (several workers may share a process)."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        Gauge(
            "modelplane_worker_queue_depth", "Requests waiting to start.", registry=r
        ).set_function(lambda: engine.queue_depth)
        Gauge(
            "modelplane_worker_running_requests", "Requests being generated.", registry=r
        ).set_function(lambda: engine.running)
        Gauge(
            "modelplane_worker_kv_cache_usage_ratio",
            "Fraction of KV-cache capacity in use (tokens held by running requests).",
            registry=r,
        ).set_function(lambda: engine.kv_cache_usage)
        self.ttft = Histogram(
            "modelplane_worker_time_to_first_token_seconds",
            "From request received to its first generated text.",
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "modelplane_worker_time_per_output_token_seconds",
            "Mean time between output tokens of a request, after the first.",
            buckets=_TPOT_BUCKETS,
            registry=r,
        )
        self.generated = Counter(
            "modelplane_worker_generated_tokens", "Tokens generated.", registry=r
        )
        self.prompt = Counter("modelplane_worker_prompt_tokens", "Prompt tokens read.", registry=r)
        self.requests = Counter(
            "modelplane_worker_requests", "Requests finished, by outcome.", ["outcome"], registry=r
        )


@dataclass(slots=True)
class _Parsed:
    request: GenerationRequest
    model: str
    stream: bool
    include_usage: bool


def error_response(
    status: int, message: str, *, param: str | None = None, type_: str | None = None
) -> Response:
    """An error response in OpenAI's shape."""
    kind = type_ or ("invalid_request_error" if status < 500 else "server_error")
    code = {404: "not_found", 413: "request_too_large", 503: "unavailable"}.get(status)
    return Response(
        openai_error_body(message, kind, code=code, param=param),
        status_code=status,
        media_type="application/json",
    )


@dataclass(slots=True)
class _Worker:
    """What the endpoints of one worker app share, kept on ``app.state.worker``."""

    engine: Engine
    model_name: str
    digest: str
    max_body_bytes: int
    metrics: WorkerMetrics
    created: int
    last_request: float
    in_flight: int = 0


def create_worker_app(
    engine: Engine, *, model_name: str, digest: str = "", max_body_bytes: int = MAX_BODY_BYTES
) -> Starlette:
    """The worker's ASGI app serving ``engine`` as ``model_name`` (see the module docstring)."""
    app = Starlette(
        routes=ROUTES,
        # the one error mapping of this app: every endpoint raises, none renders its own
        exception_handlers={404: _not_found, EngineError: _refused},
    )
    app.state.worker = _Worker(
        engine,
        model_name,
        digest,
        max_body_bytes,
        WorkerMetrics(engine),
        created=int(time.time()),
        last_request=time.monotonic(),
    )
    return app


def _worker(request: Request) -> _Worker:
    worker: _Worker = request.app.state.worker
    return worker


# -- endpoints ------------------------------------------------------------------------------------


async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions``."""
    return await _generate(request, chat=True)


async def completions(request: Request) -> Response:
    """``POST /v1/completions``."""
    return await _generate(request, chat=False)


async def embeddings(request: Request) -> Response:
    """``POST /v1/embeddings``."""
    worker = _worker(request)
    data = await _read_json(worker, request)
    texts = data.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise EngineError("input must be a string or a list of strings", param="input")
    vectors, tokens = await worker.engine.embed(texts)
    return _json(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ],
            "model": str(data.get("model") or worker.model_name),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


async def models(request: Request) -> Response:
    """``GET /v1/models``: the one model this worker serves."""
    worker = _worker(request)
    model = {
        "id": worker.model_name,
        "object": "model",
        "created": worker.created,
        "owned_by": "modelplane",
    }
    return _json({"object": "list", "data": [model]})


async def health(request: Request) -> Response:
    """``GET /health``: model, digest, queue depth, running requests, idle seconds."""
    worker = _worker(request)
    idle = 0.0 if worker.in_flight else time.monotonic() - worker.last_request
    return _json(
        {
            "status": "ok",
            "model": worker.model_name,
            "digest": worker.digest,
            "queueDepth": worker.engine.queue_depth,
            "running": worker.engine.running,
            "inFlight": worker.in_flight,
            "idleSeconds": round(idle, 3),
        }
    )


async def prometheus(request: Request) -> Response:
    """``GET /metrics``: the replica's metrics in Prometheus text."""
    registry = _worker(request).metrics.registry
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")


ROUTES = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
    Route("/metrics", prometheus, methods=["GET"]),
]


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, f"no route {request.method} {request.url.path} on this worker")


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EngineError)
    return error_response(exc.status, exc.message, param=exc.param)


# -- reading a request ----------------------------------------------------------------------------


async def _read_json(worker: _Worker, request: Request) -> dict[str, Any]:
    try:
        return json_object(await request.body(), limit=worker.max_body_bytes)
    except ModelplaneError as exc:
        raise EngineError(exc.message, status=exc.code) from None


def _sampling(worker: _Worker, data: dict[str, Any], prompt: str) -> _Parsed:
    """The generation a request body asks for; an :class:`EngineError` naming a bad field."""
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens", DEFAULT_MAX_TOKENS))
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise EngineError("max_tokens must be a positive integer", param="max_tokens")
    # unset: what the model's generation config asks for (greedy for most instruct models)
    defaults = worker.engine.sampling_defaults
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
    if data.get("n", 1) not in (1, None):
        raise EngineError("n must be 1: this worker generates one choice", param="n")
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise EngineError("seed must be an integer", param="seed")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise EngineError("stream must be true or false", param="stream")
    options = data.get("stream_options") or {}
    model = data.get("model") or worker.model_name
    return _Parsed(
        GenerationRequest(prompt, max_tokens, float(temperature), float(top_p), stop, seed),
        str(model),
        stream,
        bool(isinstance(options, dict) and options.get("include_usage")),
    )


def _chat_prompt(engine: Engine, data: dict[str, Any]) -> str:
    """The prompt of a chat request: its ``messages`` rendered by the model's chat template."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise EngineError("messages must be a non-empty list of {role, content}", param="messages")
    plain: list[dict[str, str]] = []
    for i, message in enumerate(messages):
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
            raise EngineError(
                f"messages[{i}].content must be a string", param=f"messages[{i}].content"
            )
        plain.append({"role": message["role"], "content": content})
    return engine.render_chat(plain)


def _completion_prompt(data: dict[str, Any]) -> str:
    """The prompt of a completion request: one non-empty string (or a list of one)."""
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise EngineError("prompt must be a non-empty string", param="prompt")
    return prompt


# -- generating -----------------------------------------------------------------------------------


async def _generate(request: Request, chat: bool) -> Response:
    """A completion, counted in flight from the first byte read to the answer."""
    worker = _worker(request)
    worker.in_flight += 1
    try:
        data = await _read_json(worker, request)
        prompt = _chat_prompt(worker.engine, data) if chat else _completion_prompt(data)
        return await _run(worker, _sampling(worker, data, prompt), chat)
    finally:
        worker.in_flight -= 1
        worker.last_request = time.monotonic()


async def _run(worker: _Worker, parsed: _Parsed, chat: bool) -> Response:
    worker.last_request = time.monotonic()
    metrics = worker.metrics
    rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    timing = _Timing()
    stream = _timed(worker.engine, parsed.request, metrics, timing)
    if parsed.stream:
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            first = Delta("", finish_reason="stop")
        except EngineError:
            metrics.requests.labels("error").inc()
            raise
        body = _sse(rid, parsed, chat, created_now(), first, stream, metrics)
        return StreamingResponse(
            body,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    text: list[str] = []
    last = Delta("")
    try:
        async for delta in stream:
            text.append(delta.text)
            last = delta
    except EngineError:
        metrics.requests.labels("error").inc()
        raise
    metrics.requests.labels("ok").inc()
    content = "".join(text)
    message = {"message": {"role": "assistant", "content": content}} if chat else {"text": content}
    return _json(
        {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": created_now(),
            "model": parsed.model,
            "choices": [_choice(message, last.finish_reason)],
            "usage": _usage(last),
        },
        headers=timing.headers(),
    )


def _choice(content: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    """An OpenAI choice: index 0 (one choice is generated), its content, why it finished."""
    return {"index": 0, **content, "finish_reason": finish_reason, "logprobs": None}


def created_now() -> int:
    return int(time.time())


def _json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


@dataclass(slots=True)
class _Timing:
    """A request's time to first output and per output token, in seconds, once known."""

    ttft: float | None = None
    tpot: float | None = None

    def headers(self) -> dict[str, str]:
        parts = [
            f"{name};dur={value * 1000:.3f}"
            for name, value in (("ttft", self.ttft), ("tpot", self.tpot))
            if value is not None
        ]
        return {"Server-Timing": ", ".join(parts)} if parts else {}


def _usage(last: Delta) -> dict[str, int]:
    return {
        "prompt_tokens": last.prompt_tokens,
        "completion_tokens": last.completion_tokens,
        "total_tokens": last.prompt_tokens + last.completion_tokens,
    }


async def _timed(
    engine: Engine,
    request: GenerationRequest,
    metrics: WorkerMetrics,
    timing: _Timing,
) -> AsyncIterator[Delta]:
    """The engine's deltas, observing TTFT, TPOT and token counts on the way (into ``timing``
    too)."""
    start = time.monotonic()
    first_at: float | None = None
    gen = engine.generate(request)
    try:
        async for delta in gen:
            if first_at is None and (delta.text or delta.finish_reason):
                first_at = time.monotonic()
                timing.ttft = first_at - start
                metrics.ttft.observe(timing.ttft)
            if delta.finish_reason is not None:
                metrics.generated.inc(delta.completion_tokens)
                metrics.prompt.inc(delta.prompt_tokens)
                if first_at is not None and delta.completion_tokens > 1:
                    timing.tpot = (time.monotonic() - first_at) / (delta.completion_tokens - 1)
                    metrics.tpot.observe(timing.tpot)
            yield delta
    finally:
        await gen.aclose()  # type: ignore[attr-defined]


async def _sse(
    rid: str,
    parsed: _Parsed,
    chat: bool,
    created: int,
    first: Delta,
    rest: AsyncIterator[Delta],
    metrics: WorkerMetrics,
) -> AsyncIterator[bytes]:
    obj = "chat.completion.chunk" if chat else "text_completion"

    def chunk(delta: Delta, *, role: bool = False) -> bytes:
        content: dict[str, Any] = {"text": delta.text}
        if chat:
            body: dict[str, Any] = {"content": delta.text}
            if role:
                body = {"role": "assistant", "content": delta.text}
            content = {"delta": body if (delta.text or role) else {}}
        return event({"choices": [_choice(content, delta.finish_reason)]})

    def event(fields: dict[str, Any]) -> bytes:
        data = {"id": rid, "object": obj, "created": created, "model": parsed.model, **fields}
        return b"data: " + orjson.dumps(data) + b"\n\n"

    last = first
    outcome = "error"
    try:
        yield chunk(first, role=True)
        if first.finish_reason is None:
            try:
                async for delta in rest:
                    last = delta
                    yield chunk(delta)
            except EngineError as exc:
                yield openai_stream_error(exc.message, "server_error")
                return
        if parsed.include_usage:
            yield event({"choices": [], "usage": _usage(last)})
        yield b"data: [DONE]\n\n"
        outcome = "ok"
    finally:
        metrics.requests.labels(outcome).inc()
        await rest.aclose()  # type: ignore[attr-defined]
