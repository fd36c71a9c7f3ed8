"""What every ASGI middleware of the server shares: HTTP requests are its business, anything else
(lifespan, websocket) passes through to the app untouched.

A middleware subclasses :class:`HTTPMiddleware` and writes :meth:`~HTTPMiddleware.handle`, which
sees HTTP scopes only.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class HTTPMiddleware:
    """Pure ASGI middleware over ``app`` whose :meth:`handle` is called for HTTP requests only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request; by default, pass it on to the app."""
        await self.app(scope, receive, send)
