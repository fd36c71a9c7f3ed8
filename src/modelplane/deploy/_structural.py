"""Structural schemas: our JSON Schemas rewritten as ``apiextensions.k8s.io/v1`` accepts them.

A CustomResourceDefinition's ``openAPIV3Schema`` must be *structural*: no ``$ref``, a ``type`` on
every node (or ``x-kubernetes-int-or-string`` / ``x-kubernetes-preserve-unknown-fields``), no
``type``, ``description``, ``default`` or ``nullable`` inside ``anyOf``/``allOf``/``oneOf``/``not``,
``additionalProperties`` never ``false`` nor beside ``properties``, ``items`` on every array, and
OpenAPI 3.0's boolean ``exclusiveMinimum``. :func:`structural` turns pydantic's JSON Schema into
that form; :func:`structural_problems` lists what breaks those rules (the tests hold every
generated CRD to it, as kube-apiserver would on create).
"""

from __future__ import annotations

from typing import Any

#: the keys of Kubernetes' JSONSchemaProps that a structural CRD schema may use
ALLOWED_KEYS = frozenset(
    {
        "description",
        "type",
        "format",
        "default",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "multipleOf",
        "enum",
        "maxProperties",
        "minProperties",
        "required",
        "items",
        "allOf",
        "oneOf",
        "anyOf",
        "not",
        "properties",
        "additionalProperties",
        "nullable",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
    }
)
#: formats kube-apiserver knows (others are dropped rather than warned about on every create)
KNOWN_FORMATS = frozenset(
    {"date-time", "date", "duration", "uri", "email", "hostname", "ipv4", "ipv6", "uuid", "byte"}
)
_FREE = "x-kubernetes-preserve-unknown-fields"
_INT_OR_STRING = "x-kubernetes-int-or-string"
_JUNCTORS = ("anyOf", "allOf", "oneOf", "not")
_X = (_FREE, _INT_OR_STRING, "x-kubernetes-embedded-resource", "x-kubernetes-list-type")
# what Go's RE2 (kube-apiserver's regexp engine) cannot compile
_NOT_RE2 = ("(?=", "(?!", "(?<=", "(?<!")


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (self-contained, references inlined) in the structural form CRDs require."""
    return _node(schema)


def _node(node: dict[str, Any]) -> dict[str, Any]:
    node = _unwrap(node)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _node(child) for name, child in value.items()}
        elif key == "items":
            out[key] = _node(value) if isinstance(value, dict) else {_FREE: True}
        elif key == "additionalProperties":
            if isinstance(value, dict) and "properties" not in node:
                out[key] = _node(value)
            elif value is not False:  # open objects: keep what is unknown, as we do
                out[_FREE] = True
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out[key.replace("exclusiveM", "m")] = value
            out[key] = True
        elif key == "default":
            if _plain_default(value):
                out[key] = value
        elif key == "format":
            if value in KNOWN_FORMATS:
                out[key] = value
        elif key == "pattern":
            if not any(token in value for token in _NOT_RE2):
                out[key] = value
        elif key == "const":
            out["enum"] = [value]
        elif key in ALLOWED_KEYS and key not in _JUNCTORS:
            out[key] = value
    return _typed(out)


def _unwrap(node: dict[str, Any]) -> dict[str, Any]:
    """One schema for ``X | None`` (nullable), ``allOf: [X]`` and int-or-string unions."""
    node = dict(node)
    if node.get(_INT_OR_STRING):
        node.pop("anyOf", None)
        node.pop("oneOf", None)
        return node
    for junctor in ("anyOf", "oneOf", "allOf"):
        branches = node.pop(junctor, None)
        if branches is None:
            continue
        typed = [b for b in branches if b.get("type") != "null"]
        if len(typed) < len(branches):
            node["nullable"] = True
        if len(typed) == 1:
            inner = _unwrap(typed[0])
            outer = {k: v for k, v in node.items() if k not in ("title",)}
            node = {**inner, **outer}
        elif {b.get("type") for b in typed} == {"integer", "string"}:
            node[_INT_OR_STRING] = True
        elif typed and all(b.get("type") == "object" for b in typed):
            merged: dict[str, Any] = {}
            for branch in typed:
                merged.update(branch.get("properties", {}))
            node.update(type="object", properties=merged)
        elif typed:
            node[_FREE] = True
    if isinstance(node.get("type"), list):
        types = [t for t in node["type"] if t != "null"]
        if len(types) < len(node["type"]):
            node["nullable"] = True
        node["type"] = types[0] if len(types) == 1 else None
        if node["type"] is None:
            del node["type"]
            node[_FREE] = True
    return node


def _plain_default(value: Any) -> bool:
    """Defaults kube-apiserver can apply and check on its own: scalars and lists of them."""
    if isinstance(value, list):
        return all(isinstance(item, (str, int, float, bool)) for item in value)
    return isinstance(value, (str, int, float, bool))


def _typed(node: dict[str, Any]) -> dict[str, Any]:
    if node.get(_INT_OR_STRING):
        node.pop("type", None)
        return node
    if "type" not in node and not node.get(_FREE):
        if "properties" in node or "additionalProperties" in node:
            node["type"] = "object"
        else:
            node[_FREE] = True
    kind = node.get("type")
    if kind == "array" and "items" not in node:
        node["items"] = {_FREE: True}
    if kind == "object" and not {"properties", "additionalProperties", _FREE} & node.keys():
        node[_FREE] = True  # a free-form map: keep every field instead of pruning them all
    return node


def structural_problems(schema: dict[str, Any], path: str = "") -> list[str]:
    """Every way ``schema`` is not a structural CRD schema, one line each with its path."""
    problems: list[str] = []
    root = path or "openAPIV3Schema"
    _check(schema, root, problems, in_junctor=False)
    if schema.get("type") != "object":
        problems.append(f"{root}: the root must be of type object")
    if "additionalProperties" in schema:
        problems.append(f"{root}: additionalProperties must not be used at the root")
    properties = schema.get("properties") or {}
    for name in ("apiVersion", "kind"):
        if name in properties and properties[name].get("type") != "string":
            problems.append(f"{root}.{name}: must be of type string")
    if "metadata" in properties and properties["metadata"] != {"type": "object"}:
        problems.append(f"{root}.metadata: may restrict only name and generateName")
    return problems


def _check(node: Any, path: str, problems: list[str], *, in_junctor: bool) -> None:
    if not isinstance(node, dict):
        problems.append(f"{path}: not a schema object")
        return
    for key in node:
        if key not in ALLOWED_KEYS:
            problems.append(f"{path}: {key!r} is not allowed in a CRD schema")
    exempt = node.get(_FREE) is True or node.get(_INT_OR_STRING) is True
    if node.get(_FREE) is True and node.get(_INT_OR_STRING) is True:
        problems.append(f"{path}: int-or-string and preserve-unknown-fields together")
    if in_junctor:
        for key in ("type", "description", "default", "additionalProperties", "nullable", *_X):
            if key in node and not (key == "type" and _int_or_string_branch(node)):
                problems.append(f"{path}: {key!r} inside anyOf/allOf/oneOf/not")
    elif "type" not in node and not exempt:
        problems.append(f"{path}: no type")
    if node.get("additionalProperties") is False:
        problems.append(f"{path}: additionalProperties: false is not allowed")
    if "additionalProperties" in node and "properties" in node:
        problems.append(f"{path}: additionalProperties beside properties")
    if node.get("type") == "array" and "items" not in node:
        problems.append(f"{path}: an array without items")
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        if bound in node and not isinstance(node[bound], bool):
            problems.append(f"{path}: {bound} must be a boolean (OpenAPI 3.0)")
    for name, child in (node.get("properties") or {}).items():
        _check(child, f"{path}.{name}", problems, in_junctor=in_junctor)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _check(node[key], f"{path}.{key}", problems, in_junctor=in_junctor)
    for junctor in _JUNCTORS:
        branches = node.get(junctor)
        for i, branch in enumerate(branches if isinstance(branches, list) else [branches]):
            if branch is not None:
                _check(branch, f"{path}.{junctor}[{i}]", problems, in_junctor=True)


def _int_or_string_branch(node: dict[str, Any]) -> bool:
    return set(node) == {"type"} and node["type"] in ("integer", "string")
