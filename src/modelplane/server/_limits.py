"""The request body size limit: checked on ``Content-Length`` and again while the body streams in.

A body over the limit is answered with 413 ``RequestEntityTooLarge`` before any handler parses it.
The rest of the oversized body is read and dropped (up to :data:`DRAIN_FACTOR` times the limit)
before answering: closing a socket with unread input makes the kernel reset the connection, and the
client would then see "connection reset" instead of the 413.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelplane.api.errors import RequestEntityTooLarge
from modelplane.server._errors import status_response
from modelplane.server._middleware import HTTPMiddleware

#: how much of an oversized body is drained, as a multiple of the limit, before giving up on it
DRAIN_FACTOR = 8


def _too_large(limit: int) -> RequestEntityTooLarge:
    return RequestEntityTooLarge(
        f"the request body is larger than the server's limit of {limit} bytes; split the"
        " request, or start the server with a larger --max-body-bytes"
    )


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop the rest of the body, at most ``budget`` bytes."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class BodySizeLimit(HTTPMiddleware):
    """Refuse request bodies over ``max_bytes`` with a 413 ``Status``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_bytes
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            # A client waiting for "100 Continue" has not sent the body: refuse without asking
            # for it. Any other client is sending it now; drain it so the 413 reaches them.
            if headers.get("expect", "").lower() != "100-continue":
                await _drain(receive, DRAIN_FACTOR * limit)
            await status_response(_too_large(limit))(scope, receive, send)
            return

        received = 0
        responding = False

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request" and not responding:
                received += len(message.get("body", b""))
                if received > limit:
                    if message.get("more_body", False):
                        await _drain(receive, DRAIN_FACTOR * limit)
                    # raised into the handler reading the body; the exception handlers answer
                    raise _too_large(limit)
            return message

        async def send_noting_start(message: Message) -> None:
            nonlocal responding
            if message["type"] == "http.response.start":
                responding = True
            await send(message)

        await self.app(scope, receive_within_limit, send_noting_start)
