"""JSON Schema of each kind, self-contained, for OpenAPI documents and CustomResourceDefinitions."""

from __future__ import annotations

import copy
from typing import Any

from modelplane.api._registry import lookup


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a whole object of ``kind`` (any name :func:`lookup` accepts).

    References are inlined (no ``$defs``), as CRD schemas require; structures that keep unknown
    fields (DRA, metadata, status) carry ``x-kubernetes-preserve-unknown-fields: true``; quantities
    carry ``x-kubernetes-int-or-string: true``. ``apiVersion`` and ``kind`` are enums of the values
    accepted on input. For a CRD, replace ``properties.metadata`` with ``{"type": "object"}``
    (the API server owns the metadata schema).
    """
    info = lookup(kind)
    raw = info.schema.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    schema: dict[str, Any] = _inline(raw, definitions, ())
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {
        "type": "string",
        "enum": [info.api_version, *info.also_accepted],
        "description": "Group and version of the kind.",
    }
    properties["kind"] = {"type": "string", "enum": [info.kind], "description": "The kind."}
    schema["x-kubernetes-group-version-kind"] = [
        {"group": info.group, "version": info.version, "kind": info.kind}
    ]
    return schema


def _inline(node: Any, definitions: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(item, definitions, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in seen:  # a recursive type: describe it as an open object
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        target = copy.deepcopy(definitions[name])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _inline({**target, **extra}, definitions, (*seen, name))
    out = {key: _inline(value, definitions, seen) for key, value in node.items()}
    if out.get("additionalProperties") is True and "properties" in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out
