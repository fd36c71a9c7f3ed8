"""``Secret``: a small amount of sensitive data (an API key), shaped as Kubernetes' core Secret.

Top-level ``type`` (default ``Opaque``), ``data`` (values base64-encoded) and ``stringData``
(plain text values, write-only: on every write they are encoded and merged into ``data``, a
``stringData`` value winning over a ``data`` value of the same key, and ``stringData`` itself is
never stored). Keys are Kubernetes' secret keys: letters, digits, ``-``, ``_`` and ``.``, at most
253 characters, not ``.`` or ``..``.

Validation messages never repeat a value: they name the key and what is wrong with it. The store
keeps ``data`` encrypted, and the API shows values only to principals who may read secrets
(see :mod:`modelplane.store._encryption` and ``docs/gateway.md``).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from modelplane.api._meta import Resource
from modelplane.api._types import Problems

_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
#: the most a Secret's values may hold together, as in Kubernetes (1 MiB)
MAX_DATA_BYTES = 1024 * 1024


def check_secret_key(key: str) -> str | None:
    """Why ``key`` is not a valid secret key, or None (Kubernetes' IsConfigMapKey)."""
    if not key:
        return "a key must not be empty"
    if len(key) > 253:
        return "a key must be at most 253 characters"
    if not _KEY.fullmatch(key):
        return "a key must consist of letters, digits, '-', '_' or '.'"
    if key in (".", ".."):
        return f"a key must not be {key!r}"
    return None


class Secret(Resource):
    """Sensitive values (API keys, passwords), encrypted at rest and shown only to those allowed."""

    type: str = Field(
        default="Opaque",
        min_length=1,
        description="How the data is used; `Opaque` (the default) for arbitrary keys and values.",
    )
    data: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Keys and base64-encoded values. Values are encrypted at rest and shown only to"
            " principals who may read secrets."
        ),
    )
    string_data: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Keys and plain-text values, for writing only: merged into `data` (encoded) on"
            " every write, never stored or shown."
        ),
    )
    PLURAL: ClassVar[str] = "secrets"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (("TYPE", "type"),)

    @field_validator("data", "string_data", mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        # pydantic's own message would quote the value, and values are secret
        if value is not None and not isinstance(value, dict):
            raise ValueError("must be a mapping of keys to values (YAML 'key: value' lines)")
        return value

    @model_validator(mode="after")
    def _merge(self) -> Secret:
        problems = Problems()
        data: dict[str, Any] = {}
        size = 0
        for field, values in (("data", self.data), ("stringData", self.string_data or {})):
            for key, value in values.items():
                why = check_secret_key(key)
                if why:
                    problems.add((field, key), why)
                    continue
                if not isinstance(value, str):
                    problems.add((field, key), "the value must be a string")
                    continue
                if field == "data":
                    try:
                        raw = base64.b64decode(value, validate=True)
                    except (binascii.Error, ValueError):
                        problems.add(
                            (field, key),
                            "the value must be base64-encoded (or put the plain text in"
                            " stringData)",
                        )
                        continue
                    data[key] = value
                else:
                    raw = value.encode()
                    data[key] = base64.b64encode(raw).decode()
                size += len(raw)
        if size > MAX_DATA_BYTES:
            problems.add(("data",), f"the values hold {size} bytes; at most {MAX_DATA_BYTES}")
        problems.raise_any()
        self.data = data
        self.string_data = None
        return self
