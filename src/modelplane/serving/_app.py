"""The worker's HTTP surface: a subset of the OpenAI API over an :class:`Engine`, plus health and metrics.

Routes: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (``stream: true`` answers
Server-Sent Events in OpenAI's chunk format, ending ``data: [DONE]``), ``POST /v1/embeddings``,
``GET /v1/models``, ``GET /health`` (JSON: model, digest, queue depth, running requests, idle
seconds) and ``GET /metrics`` (Prometheus text). Errors use OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``.

LoRA adapters (:mod:`modelplane.serving._adapters`): a request whose ``model`` is a registered
adapter's name, or ``<served name>:<adapter>``, is generated with that adapter. The node agent
manages them with ``GET /adapters``, ``PUT /adapters/{name}`` (JSON ``{"digest": "sha256:..."}``,
optional ``"load": true``) and ``DELETE /adapters/{name}``, each with ``Authorization: Bearer
<token>``, the token the agent gave the worker (``MODELPLANE_WORKER_TOKEN``); without a token the
routes answer 403. ``/health`` lists ``adapters`` (resident) and ``registeredAdapters``.

A non-streamed completion carries its timing in a ``Server-Timing`` header (W3C; durations in
milliseconds): ``ttft;dur=...`` (request received to first output) and, when more than one token
was generated, ``tpot;dur=...`` (mean time per output token after the first). The gateway cannot
see these itself: the whole answer reaches it at once.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from modelplane.api import PRIORITY_VALUE_HEADER, json_object, openai_error_body
from modelplane.api.errors import ModelplaneError
from modelplane.serving._adapters import AdapterSet
from modelplane.serving._answer import ChoiceShaper, merged, sse, usage
from modelplane.serving._engine import Delta, Engine, GenerationRequest
from modelplane.serving._errors import EngineError
from modelplane.serving._request import Parsed, parse_request

MAX_BODY_BYTES = 4 << 20
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

    def watch_adapters(self, adapters: AdapterSet) -> None:
        r = self.registry
        Gauge(
            "modelplane_worker_adapters_resident", "LoRA adapters loaded now.", registry=r
        ).set_function(lambda: len(adapters.resident))
        Gauge(
            "modelplane_worker_adapter_loads", "LoRA adapter loads since start.", registry=r
        ).set_function(lambda: adapters.loads)


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
    adapters: AdapterSet | None = None
    token: str = ""


def create_worker_app(
    engine: Engine,
    *,
    model_name: str,
    digest: str = "",
    max_body_bytes: int = MAX_BODY_BYTES,
    adapters: AdapterSet | None = None,
    token: str = "",
) -> Starlette:
    """The worker's ASGI app serving ``engine`` as ``model_name`` (see the module docstring);
    ``adapters``: the LoRA adapters it may load, managed with ``token``."""
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
        adapters=adapters,
        token=token,
    )
    if adapters is not None:
        app.state.worker.metrics.watch_adapters(adapters)
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
            "adapters": list(worker.adapters.resident) if worker.adapters else [],
            "registeredAdapters": sorted(worker.adapters.registered) if worker.adapters else [],
        }
    )


def _adapter_set(request: Request) -> AdapterSet:
    """The worker's adapters, once the caller showed the agent's token (403 otherwise)."""
    worker = _worker(request)
    given = request.headers.get("authorization", "")
    if not worker.token or not hmac.compare_digest(
        given.encode(), f"Bearer {worker.token}".encode()
    ):
        raise EngineError("adapter routes need the node agent's token", status=403)
    if worker.adapters is None:
        raise EngineError("this worker cannot load adapters", status=404)
    return worker.adapters


async def list_adapters(request: Request) -> Response:
    """``GET /adapters``: every registered adapter, resident or not, and its users."""
    adapters = _adapter_set(request)
    return _json({"data": [_adapter_json(a) for a in adapters.describe()]})


async def put_adapter(request: Request) -> Response:
    """``PUT /adapters/{name}``: register an adapter by digest (loaded on first use, or now)."""
    adapters = _adapter_set(request)
    name = str(request.path_params["name"])
    data = await _read_json(_worker(request), request)
    digest = data.get("digest")
    if not isinstance(digest, str):
        raise EngineError("digest must be 'sha256:<64 hex>'", param="digest")
    adapters.register(name, digest)
    if data.get("load") is True:
        await adapters.acquire(name)
        adapters.release(name)
    info = next(a for a in adapters.describe() if a.name == name)
    return _json(_adapter_json(info))


async def delete_adapter(request: Request) -> Response:
    """``DELETE /adapters/{name}``: unload and forget an adapter (409 while requests use it)."""
    name = str(request.path_params["name"])
    if not await _adapter_set(request).unregister(name):
        raise EngineError(f"no adapter {name} is registered", status=404)
    return _json({"name": name, "deleted": True})


def _adapter_json(info: Any) -> dict[str, Any]:
    return {
        "name": info.name,
        "digest": info.digest,
        "resident": info.resident,
        "inUse": info.in_use,
    }


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
    Route("/adapters", list_adapters, methods=["GET"]),
    Route("/adapters/{name}", put_adapter, methods=["PUT"]),
    Route("/adapters/{name}", delete_adapter, methods=["DELETE"]),
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


# -- generating -----------------------------------------------------------------------------------


async def _generate(request: Request, chat: bool) -> Response:
    """A completion, counted in flight from the first byte read to the answer."""
    worker = _worker(request)
    worker.in_flight += 1
    try:
        data = await _read_json(worker, request)
        parsed = parse_request(worker.engine, worker.model_name, data, chat)
        priority = _priority(request)
        if priority:
            parsed = replace(parsed, request=replace(parsed.request, priority=priority))
        asked = data.get("model")
        if worker.adapters is not None and isinstance(asked, str):
            adapter = worker.adapters.resolve(asked, worker.model_name)
            if adapter is not None:
                # pinned once per choice: each choice's generator releases its pin when it ends
                await worker.adapters.acquire(adapter, parsed.n)
                parsed.request.adapter = adapter
        return await _run(worker, parsed, chat)
    finally:
        worker.in_flight -= 1
        worker.last_request = time.monotonic()


def _priority(request: Request) -> int:
    """The priority the gateway gave the request (its header; 0 without one or when unreadable)."""
    try:
        return int(request.headers.get(PRIORITY_VALUE_HEADER, "0"))
    except ValueError:
        return 0


async def _run(worker: _Worker, parsed: Parsed, chat: bool) -> Response:
    """Generate the request's ``n`` choices (``n`` sequences in the engine) and answer them."""
    worker.last_request = time.monotonic()
    metrics = worker.metrics
    rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    timings = [_Timing() for _ in range(parsed.n)]
    requests = [
        replace(
            parsed.request, seed=None if parsed.request.seed is None else parsed.request.seed + i
        )
        for i in range(parsed.n)
    ]
    deltas = merged(
        [
            _timed(worker.engine, r, metrics, t, worker.adapters)
            for r, t in zip(requests, timings, strict=True)
        ]
    )
    if parsed.stream:
        try:
            first = await anext(deltas)
        except StopAsyncIteration:
            first = (0, Delta("", finish_reason="stop"))
        except EngineError:
            metrics.requests.labels("error").inc()
            raise
        body = sse(rid, parsed, chat, created_now(), _after(first, deltas), _outcome(metrics))
        return StreamingResponse(
            body,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    per_choice: list[list[Delta]] = [[] for _ in range(parsed.n)]
    try:
        async for index, delta in deltas:
            per_choice[index].append(delta)
    except EngineError:
        metrics.requests.labels("error").inc()
        raise
    metrics.requests.labels("ok").inc()
    shapers = [ChoiceShaper(i, parsed, chat) for i in range(parsed.n)]
    return _json(
        {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": created_now(),
            "model": parsed.model,
            "choices": [s.whole(d) for s, d in zip(shapers, per_choice, strict=True)],
            "usage": usage([s.last for s in shapers]),
        },
        headers=timings[0].headers(),
    )


def _outcome(metrics: WorkerMetrics) -> Callable[[str], None]:
    return lambda outcome: metrics.requests.labels(outcome).inc()


async def _after(
    first: tuple[int, Delta], rest: AsyncIterator[tuple[int, Delta]]
) -> AsyncIterator[tuple[int, Delta]]:
    """``first``, then ``rest`` (closing this closes ``rest``)."""
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()  # type: ignore[attr-defined]


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


async def _timed(
    engine: Engine,
    request: GenerationRequest,
    metrics: WorkerMetrics,
    timing: _Timing,
    adapters: AdapterSet | None = None,
) -> AsyncIterator[Delta]:
    """The engine's deltas, observing TTFT, TPOT and token counts on the way (into ``timing``
    too); releases the request's adapter pin when it ends."""
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
        if adapters is not None and request.adapter is not None:
            adapters.release(request.adapter)
        await gen.aclose()  # type: ignore[attr-defined]
