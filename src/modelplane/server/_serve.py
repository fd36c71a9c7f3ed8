"""Running the app: uvicorn on a socket bound here, stopped cleanly by a signal or an event.

The socket is bound before uvicorn starts, so a busy port is a clear error instead of uvicorn's
exit, and port 0 is resolved to the real port for ``on_started``. On shutdown the open watch
streams are ended first (they would otherwise hold their connections open forever), then uvicorn
drains the remaining requests.

With a certificate and its private key (:class:`TLS`, kube-apiserver's ``--tls-cert-file`` and
``--tls-private-key-file``) the socket serves HTTPS only and the URL given to ``on_started`` is
``https://``. The files are loaded before the socket is bound, so a wrong file is a clear error.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from modelplane.api import Principal
from modelplane.api.errors import BadRequest, Unavailable
from modelplane.policy import AuditSink, Relations
from modelplane.server._app import DEFAULT_MAX_BODY_BYTES, create_app
from modelplane.server._context import ServerContext
from modelplane.server._oidc import JWTVerifier
from modelplane.server._openapi import OpenAPIPart
from modelplane.server._service_accounts import ServiceAccountTokens
from modelplane.store import Store

#: seconds uvicorn waits for requests still running at shutdown before cancelling them
_GRACEFUL_SECONDS = 10


@dataclass(frozen=True)
class TLS:
    """The server's certificate (PEM, with any intermediates after it) and its private key."""

    cert_file: str
    key_file: str

    def check(self) -> None:
        """Raise BadRequest, saying which file and why, unless the pair loads."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except FileNotFoundError as exc:
            raise BadRequest(
                f"cannot read {exc.filename or self.cert_file}: no such file; pass"
                " --tls-cert-file and --tls-private-key-file with readable PEM files"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise BadRequest(
                f"cannot use the certificate {self.cert_file} with the key {self.key_file}"
                f" ({getattr(exc, 'reason', None) or exc}); both must be PEM, and the key the"
                " certificate's own"
            ) from None


def serve(
    store: Store,
    *,
    host: str = "127.0.0.1",
    port: int = 8470,
    tokens: Mapping[str, str | Principal] | None = None,
    oidc: JWTVerifier | None = None,
    service_accounts: ServiceAccountTokens | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    readiness: Callable[[], str | None] | None = None,
    on_started: Callable[[str], None] | None = None,
    install_signal_handlers: bool = True,
    stop: threading.Event | None = None,
    access_log: bool = False,
    routes: Sequence[BaseRoute] = (),
    openapi: Sequence[OpenAPIPart] = (),
    tls: TLS | None = None,
    audit: AuditSink | None = None,
    relations: Relations | None = None,
) -> None:
    """Serve the REST API over ``store`` until Ctrl-C, SIGTERM or ``stop`` is set.

    Blocks. ``on_started(url)`` is called once the server listens (with the real port when
    ``port`` is 0). With ``install_signal_handlers`` (and in the main thread) SIGINT and SIGTERM
    stop the server; then, or when ``stop`` is set, it ends open watch streams, finishes running
    requests and returns. A port already in use raises
    :class:`~modelplane.api.errors.Unavailable`. Admission decisions are appended to ``audit``;
    ``relations`` and ``service_accounts`` as in :func:`create_app`.
    """
    app = create_app(
        store,
        tokens=tokens,
        oidc=oidc,
        service_accounts=service_accounts,
        max_body_bytes=max_body_bytes,
        readiness=readiness,
        routes=routes,
        openapi=openapi,
        audit=audit,
        relations=relations,
    )
    run_app(
        app,
        host=host,
        port=port,
        on_started=on_started,
        install_signal_handlers=install_signal_handlers,
        stop=stop,
        access_log=access_log,
        tls=tls,
    )


def run_app(
    app: Starlette,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    on_started: Callable[[str], None] | None = None,
    install_signal_handlers: bool = False,
    stop: threading.Event | None = None,
    access_log: bool = False,
    tls: TLS | None = None,
) -> None:
    """As :func:`serve`, for an app made by :func:`create_app`."""
    if tls is not None:
        tls.check()
    sock = _bind(host, port)
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if sock.family == socket.AF_INET6 else bound[0]
    config = uvicorn.Config(
        app,
        # pinned, not "auto": with httptools installed (the standalone gateway uses it) uvicorn
        # would refuse an unknown method itself with plain text, where we promise a Status
        http="h11",
        loop="asyncio",
        log_level="warning",
        access_log=access_log,
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
        ssl_certfile=tls.cert_file if tls else None,
        ssl_keyfile=tls.key_file if tls else None,
    )
    server = _Server(
        config,
        context=app.state.context,
        url=f"{'https' if tls else 'http'}://{shown}:{bound[1]}",
        on_started=on_started,
        install_signal_handlers=install_signal_handlers,
        stop=stop,
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise Unavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = (
            "; another process is using it: stop it or choose another port (--port)"
            if exc.errno in (98, 48, 10048)  # EADDRINUSE on Linux, macOS, Windows
            else ""
        )
        raise Unavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, with our start notice, stop event, signal handling and stream shutdown."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        context: ServerContext,
        url: str,
        on_started: Callable[[str], None] | None,
        install_signal_handlers: bool,
        stop: threading.Event | None,
    ) -> None:
        super().__init__(config)
        self._context = context
        self._url = url
        self._on_started = on_started
        self._install_signal_handlers = install_signal_handlers
        self._stop = stop

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_started is not None:
            self._on_started(self._url)

    async def on_tick(self, counter: int) -> bool:
        if self._stop is not None and self._stop.is_set():
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._context.watch_streams.end_all()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn re-raises the captured signal after shutdown, which would kill the process
        # (SIGTERM) or raise KeyboardInterrupt in the caller; serve() returns instead.
        if (
            not self._install_signal_handlers
            or threading.current_thread() is not threading.main_thread()
        ):
            yield
            return
        previous: dict[int, Any] = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
