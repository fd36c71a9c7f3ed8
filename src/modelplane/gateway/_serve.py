"""Where the gateway runs: mounted at ``/v1`` beside the REST API, or alone (``modelplane gateway``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Callable, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from modelplane.api import principal_of
from modelplane.egress import EgressRules
from modelplane.gateway._app import require_admin
from modelplane.gateway._errors import GatewayError, error_body, error_response
from modelplane.gateway._gateway import Gateway
from modelplane.gateway._telemetry import TraceContext
from modelplane.policy import AuditSink, Relations, RuntimePolicies, Tenancy
from modelplane.store import Store


def mount(
    store: Store,
    *,
    egress: EgressRules | None = None,
    audit: AuditSink | None = None,
    tenancy: Tenancy | None = None,
) -> Mount:
    """``Mount("/v1", ...)`` serving a :class:`Gateway` over ``store``.

    Its informers start with the first request (so nothing runs if the server never listens) and
    are daemon threads that live as long as the process (``modelplane up``). ``egress``: the
    rules for upstream hosts (see :class:`~modelplane.egress.EgressRules`); ``audit``: where its
    model-access decisions are recorded; ``tenancy``: who may call a namespace's models (give
    the API's, which follows Relationships). Model calls pass the ``scope: runtime`` Policies.
    """
    runtime = RuntimePolicies(store)
    gateway = Gateway(store, egress=egress, audit=audit, runtime=runtime, tenancy=tenancy)
    return Mount("/v1", app=TraceContext(gateway.app))


def standalone_app(gateway: Gateway, middleware: Sequence[Middleware] = ()) -> Starlette:
    """The gateway alone: ``/v1`` plus ``/healthz``, ``/readyz`` (table synced) and ``/metrics``,
    behind ``middleware`` (authentication, given by whoever runs it)."""

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        if gateway.table.wait_for_sync(0):
            return PlainTextResponse("ok")
        return PlainTextResponse("the routing table has not loaded from the store yet", 503)

    async def metrics(request: Request) -> Response:
        try:
            require_admin(principal_of(request.scope))
        except GatewayError as exc:
            return error_response(exc)
        return PlainTextResponse(
            gateway.telemetry.prometheus(), media_type="text/plain; version=0.0.4"
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gateway.client()  # opens the connection pool and starts scraping replica metrics
        yield
        await gateway.aclose()

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Mount("/v1", app=TraceContext(gateway.app)),
        ],
        middleware=list(middleware),
        lifespan=lifespan,
    )


def serve_gateway(
    store: Store,
    *,
    host: str = "127.0.0.1",
    port: int = 8480,
    egress: EgressRules | None = None,
    on_started: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    middleware: Sequence[Middleware] = (),
    tls_files: tuple[str, str] | None = None,
    audit: AuditSink | None = None,
    shared_limits: bool = True,
) -> None:
    """Run the gateway alone until Ctrl-C, SIGTERM or ``stop``; blocks. ``middleware`` wraps
    every route (authentication); ``tls_files`` (certificate, private key): serve HTTPS.

    As under ``up``: who may call a namespace's models follows the store's Relationships, model
    calls pass the ``scope: runtime`` Policies, and their decisions are recorded in ``audit``.
    Rate limits and budgets hold across every gateway on the store (several may share it), unless
    ``shared_limits`` is False (then per process)."""
    relations, runtime = Relations(store), RuntimePolicies(store)
    tenancy = Tenancy(relations=relations)
    gateway = Gateway(
        store,
        egress=egress,
        audit=audit,
        runtime=runtime,
        tenancy=tenancy,
        shared_limits=shared_limits,
    ).start()
    http, loop = _http_protocol(), _loop()
    config = uvicorn.Config(
        standalone_app(gateway, middleware),
        ssl_certfile=tls_files[0] if tls_files else None,
        ssl_keyfile=tls_files[1] if tls_files else None,
        host=host,
        port=port,
        http=http,
        loop=loop,
        log_level="warning",
        access_log=False,
    )
    server = _Server(config, on_started=on_started, stop=stop)
    try:
        server.run()
    finally:
        gateway.stop()
        runtime.stop()
        relations.stop()


class _Server(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        *,
        on_started: Callable[[str], None] | None,
        stop: threading.Event | None,
    ) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._stop = stop

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets)  # type: ignore[arg-type]
        if self.started and self._on_started is not None:
            port = self.servers[0].sockets[0].getsockname()[1] if self.servers else self.config.port
            scheme = "https" if self.config.ssl_certfile else "http"
            self._on_started(f"{scheme}://{self.config.host}:{port}")

    async def on_tick(self, counter: int) -> bool:
        if self._stop is not None and self._stop.is_set():
            self.should_exit = True
        return await super().on_tick(counter)


def server_stack() -> str:
    """What :func:`serve_gateway` runs on here: ``uvicorn+httptools+uvloop`` when both import."""
    http = "httptools" if _http_protocol() is not _H11 else "h11"
    return f"uvicorn+{http}+{_loop()}"


_H11 = "h11"


@functools.cache
def _http_protocol() -> type[asyncio.Protocol] | str:
    """uvicorn's C ``httptools`` parser when it imports (its 400s OpenAI-shaped), else ``h11``.

    ``httptools`` roughly halves what a request costs the gateway and keeps its p99 within goal;
    only the standalone gateway takes it. The REST API stays on ``h11``: ``httptools`` refuses an
    unknown method (``FOO /apis/``) itself, where the REST API promises a ``Status`` object.
    """
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return _H11

    class _OpenAIHttpToolsProtocol(HttpToolsProtocol):
        """A request the parser refuses (bad request line, bad header) gets an OpenAI error."""

        def send_400_response(self, msg: str) -> None:
            body = error_body(f"malformed HTTP request: {msg}", "invalid_request_error")
            head = [b"HTTP/1.1 400 Bad Request\r\n"]
            for name, value in self.server_state.default_headers:
                head.append(name + b": " + value + b"\r\n")
            head.append(
                b"content-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n" % len(body)
            )
            self.transport.write(b"".join(head) + body)
            self.transport.close()

    return _OpenAIHttpToolsProtocol


def _loop() -> str:
    """``uvloop`` when it imports (not on Windows), else the stock ``asyncio`` loop."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"
