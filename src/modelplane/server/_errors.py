"""Every failure leaves the server as a Kubernetes ``Status`` object, never as a traceback.

* :class:`~modelplane.api.errors.ModelplaneError` (raised by the store, validation or this package)
  becomes its own ``Status``, with the HTTP status of its ``code``; ``Unavailable`` adds
  ``Retry-After`` and ``Unauthorized`` adds ``WWW-Authenticate: Bearer``.
* Starlette's routing errors (no route: 404, wrong method: 405) become NotFound / MethodNotAllowed.
* Anything else is a bug: :class:`CatchAll` logs it here, with its traceback, and answers a 500
  ``Status`` with a generic message.
"""

from __future__ import annotations

import dataclasses
import logging

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from modelplane.api.errors import (
    MethodNotAllowed,
    ModelplaneError,
    NotFound,
    Unauthorized,
    Unavailable,
)
from modelplane.server._middleware import HTTPMiddleware
from modelplane.server._responses import JSONResponse

logger = logging.getLogger("modelplane.server")

#: seconds a client is asked to wait when the store is unavailable and the error did not say
DEFAULT_RETRY_AFTER = 1

_INTERNAL = ModelplaneError(
    "the server failed to handle this request (an internal error, logged on the server);"
    " retry, and report it to the operator if it persists"
)


def status_response(exc: ModelplaneError) -> JSONResponse:
    """The ``Status`` response for ``exc``."""
    headers: dict[str, str] = {}
    if isinstance(exc, Unavailable) and exc.retry_after is None:
        exc = dataclasses.replace(exc, retry_after=DEFAULT_RETRY_AFTER)
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="modelplane"'
    return JSONResponse(exc.to_status(), status_code=exc.code, headers=headers)


async def _modelplane_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelplaneError)
    return status_response(exc)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        return status_response(
            NotFound(
                f"the server has no route for {where}; objects live under /apis (GET /apis lists"
                " the groups, GET /openapi.json describes every route)"
            )
        )
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        response = status_response(
            MethodNotAllowed(f"{where} is not allowed; this path accepts {allowed or 'nothing'}")
        )
        if allowed:
            response.headers["Allow"] = allowed
        return response
    # Starlette raises no other codes on our routes; keep its code and a plain message anyway.
    error = ModelplaneError(exc.detail or "the request failed")
    response = status_response(error)
    response.status_code = exc.status_code
    return response


#: for ``Starlette(exception_handlers=...)``: both run inside Starlette's ExceptionMiddleware
EXCEPTION_HANDLERS = {ModelplaneError: _modelplane_error, HTTPException: _http_exception}


class CatchAll(HTTPMiddleware):
    """Turn any exception that escaped the handlers into a logged bug and a 500 ``Status``.

    Starlette's own outermost error middleware re-raises after answering (so servers log it twice
    and test clients raise); this one answers once and keeps the traceback in the server log.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except ClientDisconnect:
            return  # nobody left to answer
        except ModelplaneError as exc:  # raised by middleware, outside the exception handlers
            if not started:
                await status_response(exc)(scope, receive, send)
        except Exception:
            logger.exception("internal error serving %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await status_response(_INTERNAL)(scope, receive, send)
