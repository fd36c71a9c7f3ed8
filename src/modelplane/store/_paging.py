"""Paging a list: continue tokens.

Paging (``limit`` + ``continue_token``) is by key: the token holds the last (namespace, name)
returned and the resourceVersion of the first page. Every page reports that first version, so
watching from it after the last page misses nothing (changes made while paging are replayed). A
token stays valid while that version is inside the kept history; afterwards it is Expired (the
store checks that). The token is opaque to callers: URL-safe base64 of a small JSON document that
also names the kind and namespace it pages, so it cannot be passed to another list.
"""

from __future__ import annotations

import base64
import binascii

import orjson

from modelplane.api.errors import BadRequest


def encode_token(rv: int, kind: str, namespace: str | None, after: tuple[str, str]) -> str:
    raw = orjson.dumps({"v": 1, "rv": rv, "k": kind, "ns": namespace, "a": list(after)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, kind: str, namespace: str | None) -> tuple[int, tuple[str, str]]:
    """(the list's resourceVersion, the last key returned); BadRequest for a token that is not
    one of ours or belongs to another list."""
    invalid = BadRequest(
        f"continue token {token[:40]!r} is not valid: pass the continue value of the previous page"
        " of the same list unchanged, or list again without it"
    )
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        rv, after = data["rv"], data["a"]
        valid = (
            data.get("v") == 1
            and isinstance(rv, int)
            and isinstance(after, list)
            and len(after) == 2
            and all(isinstance(x, str) for x in after)
        )
    except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError):
        raise invalid from None
    if not valid:
        raise invalid
    if data.get("k") != kind or data.get("ns") != namespace:
        raise BadRequest(
            f"continue token belongs to a list of {data.get('k')} (namespace"
            f" {data.get('ns') or 'all'}), not of {kind} (namespace {namespace or 'all'}):"
            " pass the token only to the list it came from"
        )
    return rv, (after[0], after[1])
