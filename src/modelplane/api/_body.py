"""Request bodies: the one reading of "a JSON object" that every HTTP surface shares.

The REST API's agent routes, the gateway and the model workers all take a JSON object; each
refuses anything else with the same :class:`~modelplane.api.errors.BadRequest` sentence, and
renders it in its own protocol (a Kubernetes ``Status``, an OpenAI error).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from modelplane.api.errors import BadRequest, RequestEntityTooLarge


def json_object(
    raw: bytes, *, empty_is_object: bool = False, limit: int | None = None
) -> dict[str, Any]:
    """``raw`` parsed as a JSON object.

    ``empty_is_object``: an empty body means ``{}`` (actions whose fields are all optional).
    ``limit``: bodies longer than this many bytes are refused (413) before they are parsed.
    """
    if limit is not None and len(raw) > limit:
        raise RequestEntityTooLarge(
            f"the request body is {len(raw)} bytes; the limit is {limit}: send a shorter one"
        )
    if empty_is_object and not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not JSON ({exc}); send a JSON object") from None
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object")
    return value


def shown(value: str) -> str:
    """``value`` quoted for a message, cut short when a client sent something huge."""
    return repr(value if len(value) <= 80 else value[:77] + "...")


def query_count(query: Mapping[str, str], key: str) -> int | None:
    """A whole-number query parameter (at least 0); None when absent or empty. The REST API's
    ``limit``/``resourceVersion`` and the agent routes' ``limit``/``after`` read it alike."""
    value = query.get(key)
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise BadRequest(
            f"query parameter {key}={shown(value)} must be a whole number of at least 0"
        )
    return int(value)
