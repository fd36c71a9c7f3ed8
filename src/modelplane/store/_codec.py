"""The stored form of objects: JSON text, and the :class:`Codec` that seals some kinds at rest.

A :class:`Codec` (the store opener gives :class:`~modelplane.store._encryption.SecretEncryption`)
transforms the objects of the kinds it applies to on their way to and from the database: rows and
events hold the sealed form, every caller (get, list, watch, the write methods' answers) gets the
plain one, and the object rules (equality, merge patch) work on the plain one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import orjson

from modelplane.api.errors import BadRequest
from modelplane.store._contract import JSON


class Codec(Protocol):
    """Transforms objects of some kinds between the form callers see and the stored form."""

    def applies(self, kind: str) -> bool: ...

    def seal(self, obj: JSON) -> JSON:
        """The stored form of ``obj`` (a new dict; ``obj`` is not changed)."""
        ...

    def open(self, obj: JSON) -> JSON:
        """The plain form of a stored object."""
        ...


def dumps(obj: JSON) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError as exc:
        raise BadRequest(f"the object cannot be stored as JSON: {exc}") from None


def loads(raw: str | bytes) -> JSON:
    obj: JSON = orjson.loads(raw)
    return obj


def opener(codec: Codec | None, kind: str | None) -> Callable[[str, str | bytes], JSON] | None:
    """How to read stored JSON of ``kind`` (None: every kind), or None when a plain parse will do
    (no codec, or one that never applies to ``kind``)."""
    if codec is None or (kind is not None and not codec.applies(kind)):
        return None

    def read(row_kind: str, raw: str | bytes) -> JSON:
        obj = loads(raw)
        return codec.open(obj) if codec.applies(row_kind) else obj

    return read
