"""Request bodies: content types, JSON and YAML decoding, and the shape every body must have.

A body is one JSON object (``application/json``; ``application/yaml`` too for create and replace;
``application/merge-patch+json`` for PATCH, and ``application/apply-patch+yaml``, YAML or JSON, for
server-side apply). What it decodes to must also be storable by either
backend: plain JSON values only, nested at most :data:`MAX_DEPTH` deep, strings without NUL
characters or lone surrogates, integers within 64 bits, finite numbers. Anything else is a 400 that
says where (``line 3, column 7`` for syntax, a field path for values); a content type the route does
not take is a 415.

YAML is read with the safe loader, with timestamps kept as strings (``2024-01-01`` stays text, as in
Kubernetes), and anchors/aliases bounded by :data:`MAX_VALUES` so that a few hundred bytes cannot
expand into gigabytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from typing import Any

import orjson
import yaml
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from modelplane.api.errors import BadRequest, UnsupportedMediaType

JSON_TYPE = "application/json"
MERGE_PATCH_TYPE = "application/merge-patch+json"
#: server-side apply: the body is the applied configuration (YAML or JSON)
APPLY_PATCH_TYPE = "application/apply-patch+yaml"
#: RFC 6902 JSON patch: a list of operations
JSON_PATCH_TYPE = "application/json-patch+json"
#: Kubernetes' strategic merge patch: refused (415) for our kinds, as for custom resources
STRATEGIC_MERGE_PATCH_TYPE = "application/strategic-merge-patch+json"
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
#: what create and replace accept
OBJECT_TYPES = frozenset({JSON_TYPE, *YAML_TYPES})
#: what PATCH accepts (RFC 7386 merge patch; plain JSON is read as one too)
PATCH_TYPES = frozenset({MERGE_PATCH_TYPE, JSON_TYPE})
#: what PATCH of an object accepts: merge patch and server-side apply
OBJECT_PATCH_TYPES = frozenset({*PATCH_TYPES, APPLY_PATCH_TYPE})
#: bodies read as YAML (JSON is YAML too)
_YAML_SYNTAX = frozenset({*YAML_TYPES, APPLY_PATCH_TYPE})

#: deepest nesting of objects and arrays a body may have
MAX_DEPTH = 100
#: most values a body may decode to (guards against YAML alias expansion)
MAX_VALUES = 1_000_000
#: bodies up to this size are decoded on the event loop; larger ones in a worker thread
_INLINE_BYTES = 64 * 1024

_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader, with timestamps left as the strings they were written as."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_str)


def media_type(request: Request) -> str:
    """The request's media type without parameters; JSON when the client did not say."""
    value = request.headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower() or JSON_TYPE


async def read_object(request: Request, accepted: Collection[str]) -> dict[str, Any]:
    """Decode the request body as one object, refusing media types outside ``accepted``."""
    kind = media_type(request)
    if kind not in accepted:
        raise UnsupportedMediaType(
            f"Content-Type {kind!r} is not accepted by {request.method} on this path;"
            f" send one of: {', '.join(sorted(accepted))}"
        )
    body = await request.body()
    if not body.strip():
        raise BadRequest("the request body is empty; send the object as JSON (or YAML)")
    if len(body) <= _INLINE_BYTES:
        return decode_object(body, yaml_syntax=kind in _YAML_SYNTAX)
    return await run_in_threadpool(decode_object, body, yaml_syntax=kind in _YAML_SYNTAX)


async def read_optional_object(request: Request) -> dict[str, Any] | None:
    """The JSON body of a request whose body may be empty (DELETE options)."""
    body = await request.body()
    if not body.strip():
        return None
    kind = media_type(request)
    if kind not in OBJECT_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {kind!r} is not accepted by {request.method} on this path;"
            f" send one of: {', '.join(sorted(OBJECT_TYPES))}"
        )
    return decode_object(body, yaml_syntax=kind in YAML_TYPES)


def decode_object(body: bytes, *, yaml_syntax: bool = False) -> dict[str, Any]:
    """Parse ``body`` (JSON, or YAML when ``yaml_syntax``) into a dict of plain JSON values."""
    if not yaml_syntax:
        data = _parse_json(body)
    else:
        data = _as_json(body)
        if data is None:
            data = _parse_yaml(body)
    if not isinstance(data, dict):
        raise BadRequest(
            f"the request body must be one object ({{...}}), not {_describe(data)}; to send several"
            " objects, send one request per object"
        )
    check_plain(data)
    return data


def _as_json(body: bytes) -> Any:
    """A body of a YAML media type that is a JSON object, read as JSON; None when it is not.

    YAML 1.1 reads some JSON differently (``1e-05`` is a string to it), and clients send JSON to
    apply (the Kubernetes clients and ``modelplane apply`` do)."""
    if body.lstrip()[:1] != b"{":
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # flow-style YAML, or broken: the YAML reader says which


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno}, column"
            f" {exc.colno}"
        ) from None


def _parse_yaml(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"the request body is not UTF-8 text: byte {exc.start} ({body[exc.start]:#04x}) cannot"
            " be decoded; save the manifest as UTF-8"
        ) from None
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: constructs plain data only
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # PyYAML splits its sentences: "expected a single document" + "but found another"
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "cannot be parsed"
        raise BadRequest(f"the request body is not valid YAML: {problem}{where}") from None
    except yaml.YAMLError as exc:
        raise BadRequest(f"the request body is not valid YAML: {exc}") from None
    except RecursionError:
        raise BadRequest(
            f"the request body is nested too deeply; at most {MAX_DEPTH} levels are accepted"
        ) from None


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def _path(chain: tuple[Any, ...] | None) -> str:
    """``spec.versions[0].name`` from a (key, parent-chain) linked list."""
    parts: list[str] = []
    while chain is not None:
        key, chain = chain
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    text = "".join(reversed(parts)).lstrip(".")
    return text or "the body"


def check_plain(data: dict[str, Any]) -> None:
    """Refuse values either backend cannot store, naming the field; iterative, so depth is safe."""
    visited = 0
    stack: list[tuple[Any, int, tuple[Any, ...] | None]] = [(data, 1, None)]
    while stack:
        value, depth, chain = stack.pop()
        visited += 1
        if visited > MAX_VALUES:
            raise BadRequest(
                f"the request body expands to more than {MAX_VALUES} values (YAML aliases?);"
                " send the object without anchors and aliases"
            )
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                raise BadRequest(
                    f"{_path(chain)}: nested deeper than {MAX_DEPTH} levels; flatten the object"
                )
            for key, item in value.items():
                if not isinstance(key, str):
                    raise BadRequest(
                        f"{_path(chain)}: the key {key!r} is not a string; quote it (in YAML,"
                        " keys like 1, true or null are not strings)"
                    )
                if _BAD_CHARS.search(key):
                    raise BadRequest(
                        f"{_path(chain)}: a key contains a NUL character or a lone surrogate,"
                        " which cannot be stored; remove it"
                    )
                stack.append((item, depth + 1, (key, chain)))
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                raise BadRequest(
                    f"{_path(chain)}: nested deeper than {MAX_DEPTH} levels; flatten the object"
                )
            stack.extend((item, depth + 1, (i, chain)) for i, item in enumerate(value))
        elif isinstance(value, str):
            if _BAD_CHARS.search(value):
                raise BadRequest(
                    f"{_path(chain)}: the string contains a NUL character or a lone surrogate,"
                    " which cannot be stored; remove it"
                )
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            if not _INT_MIN <= value <= _INT_MAX:
                raise BadRequest(
                    f"{_path(chain)}: the integer {value} does not fit in 64 bits; write it as a"
                    " string"
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise BadRequest(
                    f"{_path(chain)}: {value} is not a finite number; JSON has no NaN or infinity"
                )
        else:
            raise BadRequest(
                f"{_path(chain)}: a {type(value).__name__} value cannot be stored; use a string,"
                " number, boolean, null, list or mapping"
            )
