"""OpenAI's wire shapes that the gateway and the model workers both speak.

One builder for the error body ``{"error": {"message", "type", "param", "code"}}`` and for the
event that ends a stream which failed after it started (OpenAI sends the error as one more
``data:`` event, then ``data: [DONE]``): a client sees the same shape whichever process answered.
"""

from __future__ import annotations

from typing import Any

import orjson

#: the end of every OpenAI stream
STREAM_DONE = b"data: [DONE]\n\n"


def openai_error(
    message: str,
    type: str = "invalid_request_error",
    *,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error object: ``message`` for a person, ``type`` and ``code`` for a program, and
    ``param`` naming the request field at fault (``messages[0].content``), when there is one."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def openai_error_body(
    message: str,
    type: str = "invalid_request_error",
    *,
    code: str | None = None,
    param: str | None = None,
) -> bytes:
    """:func:`openai_error` as the JSON bytes of a response body."""
    return orjson.dumps(openai_error(message, type, code=code, param=param))


def openai_stream_error(message: str, type: str, *, code: str | None = None) -> bytes:
    """The last two events of a stream that failed after it started: the error, then ``[DONE]``."""
    return b"data: " + openai_error_body(message, type, code=code) + b"\n\n" + STREAM_DONE
