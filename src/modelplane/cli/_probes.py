"""The probes of the scaled-out processes: ``/metrics`` in Prometheus' text format, and for a
process without the REST API (``modelplane node``, ``agent-worker --port``) ``/healthz`` and ``/readyz`` as the API
server answers them (``ok``; 503 with the reason while not ready)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: ``{"name{label=\"v\"}": value}``: one sample per key, the name before ``{`` its metric
Gauges = Callable[[], Mapping[str, float]]


def render_gauges(samples: Mapping[str, float]) -> str:
    """Prometheus text exposition of gauges, one ``# TYPE`` line per metric name."""
    lines: list[str] = []
    typed: set[str] = set()
    for key, value in samples.items():
        name = key.split("{", 1)[0]
        if name not in typed:
            typed.add(name)
            lines.append(f"# TYPE {name} gauge")
        lines.append(f"{key} {value:g}")
    return "\n".join(lines) + "\n"


def metrics_route(gauges: Gauges, registries: Sequence[CollectorRegistry] = ()) -> Route:
    """``/metrics``: ``gauges``, prometheus_client's process-wide registry (the controllers',
    work queues', REST requests' and policy decisions' series) and ``registries`` (the
    accelerators' telemetry, :func:`modelplane.drivers.accelerator_registry`)."""

    def render() -> str:
        from prometheus_client import REGISTRY, generate_latest

        parts = [render_gauges(gauges()), generate_latest(REGISTRY).decode()]
        parts.extend(generate_latest(r).decode() for r in registries)
        return "".join(parts)

    async def metrics(request: Request) -> Response:
        text = await run_in_threadpool(render)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return Route("/metrics", metrics, methods=["GET"])


def probe_routes(
    readiness: Callable[[], str | None],
    gauges: Gauges,
    registries: Sequence[CollectorRegistry] = (),
) -> list[Route]:
    """``/healthz``, ``/readyz`` and ``/metrics`` of a process that serves nothing else."""

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        reason = await run_in_threadpool(readiness)
        if reason is None:
            return PlainTextResponse("ok")
        return PlainTextResponse(f"not ready: {reason}", status_code=503)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        metrics_route(gauges, registries),
    ]


def serve_probes_in_thread(
    readiness: Callable[[], str | None],
    gauges: Gauges,
    host: str,
    port: int,
    on_started: Callable[[str], None],
) -> threading.Thread:
    """:func:`probe_routes` served by uvicorn in a daemon thread (for a process whose main thread
    is its own: ``agent-worker``); ``on_started(url)`` once it listens. The process's own signal
    handling stays as it is: the thread ends with the process."""
    import uvicorn
    from starlette.applications import Starlette

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                bound = self.servers[0].sockets[0].getsockname()
                on_started(f"http://{bound[0]}:{bound[1]}")

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield  # signals are the main thread's

    app = Starlette(routes=probe_routes(readiness, gauges))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    thread = threading.Thread(target=_Server(config).run, name="probes", daemon=True)
    thread.start()
    return thread


def metrics_openapi() -> dict[str, Any]:
    """How :func:`metrics_route` appears in ``/openapi.json`` (a part, as the platform's)."""
    text = {"text/plain": {"schema": {"type": "string"}}}
    status = {"application/json": {"schema": {"$ref": "#/components/schemas/v1.Status"}}}
    return {
        "paths": {
            "/metrics": {
                "get": {
                    "operationId": "processMetrics",
                    "summary": "This process's gauges (leader of the controllers, started), in"
                    " Prometheus' text format",
                    "tags": ["metrics"],
                    "responses": {
                        "200": {"description": "the gauges", "content": text},
                        "default": {"description": "the request failed", "content": status},
                    },
                }
            }
        }
    }
