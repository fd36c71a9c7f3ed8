"""RFC 6902 JSON patch (``application/json-patch+json``): a list of operations on the object.

kubectl sends one when it hands the fields of client-side apply over to server-side apply
(``kubectl apply --server-side`` on an object ``kubectl apply`` created), and ``kubectl patch
--type=json`` sends what the user wrote. Operations: ``add``, ``remove``, ``replace``, ``move``,
``copy``, ``test``; paths are JSON pointers (RFC 6901). A failed ``test`` is a 409 (the object
changed), any other failure a 400 naming the operation.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from modelplane.api.errors import BadRequest, Conflict
from modelplane.server._bodies import check_plain

_OPS = ("add", "remove", "replace", "move", "copy", "test")


def decode_json_patch(body: bytes) -> list[dict[str, Any]]:
    """The operations of a JSON patch body."""
    try:
        ops = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"the JSON patch is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise BadRequest(
            'a JSON patch is a list of operations: [{"op": "replace", "path": "/spec/x",'
            ' "value": ...}]'
        )
    check_plain({"operations": ops})
    return ops


def _pointer(op: dict[str, Any], key: str, index: int) -> list[str]:
    raw = op.get(key)
    if not isinstance(raw, str) or (raw and not raw.startswith("/")):
        raise BadRequest(f"JSON patch operation {index}: {key!r} must be a JSON pointer ('/a/b')")
    return [p.replace("~1", "/").replace("~0", "~") for p in raw.split("/")[1:]]


def _parent(doc: Any, parts: list[str], index: int) -> Any:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise BadRequest(f"JSON patch operation {index}: the path /{'/'.join(parts)} is absent")
    return node


def _get(doc: Any, parts: list[str], index: int) -> Any:
    if not parts:
        return doc
    parent, last = _parent(doc, parts, index), parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise BadRequest(f"JSON patch operation {index}: the path /{'/'.join(parts)} is absent")


def _remove(doc: Any, parts: list[str], index: int) -> Any:
    value = _get(doc, parts, index)
    parent, last = _parent(doc, parts, index), parts[-1]
    if isinstance(parent, dict):
        del parent[last]
    else:
        del parent[int(last)]
    return value


def _add(doc: Any, parts: list[str], value: Any, index: int, *, replace: bool = False) -> None:
    if replace:
        _get(doc, parts, index)  # replace needs the target to exist
    parent, last = _parent(doc, parts, index), parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise BadRequest(f"JSON patch operation {index}: index {last!r} is out of range")
    else:
        raise BadRequest(f"JSON patch operation {index}: the parent of the path is not a container")


def apply_json_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """``doc`` with ``ops`` applied (``doc`` is not changed)."""
    out = copy.deepcopy(doc)
    for index, op in enumerate(ops):
        name = op.get("op")
        if name not in _OPS:
            raise BadRequest(f"JSON patch operation {index}: op must be one of {', '.join(_OPS)}")
        path = _pointer(op, "path", index)
        if not path and name != "test":
            raise BadRequest(f"JSON patch operation {index}: cannot {name} the whole object")
        if name in ("add", "replace", "test") and "value" not in op:
            raise BadRequest(f"JSON patch operation {index}: {name} needs a value")
        if name == "add":
            _add(out, path, copy.deepcopy(op["value"]), index)
        elif name == "replace":
            _add(out, path, copy.deepcopy(op["value"]), index, replace=True)
        elif name == "remove":
            _remove(out, path, index)
        elif name in ("move", "copy"):
            source = _pointer(op, "from", index)
            value = (
                _remove(out, source, index)
                if name == "move"
                else copy.deepcopy(_get(out, source, index))
            )
            _add(out, path, value, index)
        elif _get(out, path, index) != op["value"]:
            raise Conflict(
                f"JSON patch operation {index}: test of /{'/'.join(path)} failed (the object"
                " changed); read it again and send a new patch"
            )
    return out
