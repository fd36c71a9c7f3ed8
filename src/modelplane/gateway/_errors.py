"""The gateway's errors: :class:`GatewayError`, answered in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``, and the upstream client's failures
(:class:`UpstreamError` and its kinds), which the gateway turns into one."""

from __future__ import annotations

from starlette.responses import Response

from modelplane.api import openai_error_body
from modelplane.egress import EgressRefused


class GatewayError(Exception):
    """A request the gateway answers with an error; rendered by :func:`error_response`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after = retry_after

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.code, self.param)


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> bytes:
    return openai_error_body(message, type, code=code, param=param)


def error_response(error: GatewayError) -> Response:
    headers = {}
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, round(error.retry_after + 0.499)))
    return Response(
        error.body(), status_code=error.status, media_type="application/json", headers=headers
    )


def unavailable(message: str, retry_after: float = 1.0) -> GatewayError:
    return GatewayError(
        503,
        message,
        type="service_unavailable",
        code="upstream_unavailable",
        retry_after=retry_after,
    )


class UpstreamError(Exception):
    """The connection failed, or the answer was not HTTP we understand."""


class UpstreamTimeout(UpstreamError):
    """No connection within the connect timeout, or silence past the read timeout."""


class UpstreamRefused(UpstreamError):
    """The egress rules refuse the upstream's address; nothing was sent (see ``refusal``)."""

    def __init__(self, refused: EgressRefused) -> None:
        super().__init__(str(refused))
        self.refusal = refused.refusal
