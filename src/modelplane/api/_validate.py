"""Validation: an object in, the normalised object out, or every problem with its field and line.

Validation is the gate every write goes through (REST, CLI, controllers writing status). It
dispatches on ``apiVersion``/``kind``, checks the object against the kind's schema, applies
defaults, and translates pydantic's errors into :class:`~modelplane.api.errors.Cause` objects a
person can act on: a Kubernetes-style field path (``spec.traffic[1].weight``), a message saying
what is wrong and what would be right, and ``file:line:column`` when the object came from a file.
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from modelplane.api import errors
from modelplane.api._introspect import fields_by_wire_name, is_model, item_type, unwrap
from modelplane.api._meta import check_dns_label
from modelplane.api._registry import KindInfo, kind_info
from modelplane.api._types import FieldProblems, Path, PathPart, render_path, suggest, wire_names

if TYPE_CHECKING:
    from modelplane.api._manifest import Manifest

#: Nesting depth and size an object may have (the YAML reader applies the same depth).
MAX_DEPTH = 100
MAX_VALUES = 1_000_000


def validate(
    obj: dict[str, Any],
    *,
    manifest: Manifest | None = None,
    default_namespace: str = "default",
) -> dict[str, Any]:
    """The normalised object, or :class:`~modelplane.api.errors.Invalid` with one cause per problem.

    Normalised means: the canonical ``apiVersion`` of the kind (``resource.k8s.io/v1`` for DRA
    objects written as ``modelplane.dev/v1alpha1``), defaults applied to our kinds, and
    ``metadata.namespace`` set for namespaced kinds (``default_namespace`` when missing) and
    removed for cluster-scoped ones. Server-owned metadata (``uid``, ``resourceVersion``,
    ``generation``, ``creationTimestamp``, ``deletionTimestamp``) and ``status`` pass through
    unchanged. Unknown fields are refused in our kinds and kept as they are in DRA objects, so a
    ``ResourceSlice`` dumped from a cluster comes back field for field.

    With ``manifest``, each cause carries ``location="file:line:column"`` of its field.
    """
    locate = manifest.location if manifest is not None else None
    info = _kind_of(obj, locate)
    kind = info.kind
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    headline = f'{kind} "{name}" is invalid' if isinstance(name, str) else f"{kind} is invalid"
    details = {
        "kind": kind,
        "group": info.group,
        **({"name": name} if isinstance(name, str) else {}),
    }

    data = dict(obj)
    data["apiVersion"] = info.api_version
    try:
        model = info.schema.model_validate(data)
    except ValidationError as exc:
        causes = [c for err in exc.errors() for c in _causes(err, info.schema, locate)]
        raise errors.Invalid(headline, causes=causes, details=details) from None
    except RecursionError:  # pragma: no cover - _plain_problems bounds the depth first
        raise errors.Invalid(headline + ": nested too deeply", details=details) from None

    open_schema = info.schema.model_config.get("extra") == "allow"
    # our kinds: every default spelled out; DRA kinds: exactly what was written, nothing added
    out = model.model_dump(
        by_alias=True, mode="json", exclude_none=not open_schema, exclude_unset=open_schema
    )
    out["metadata"] = model.metadata.model_dump(by_alias=True, mode="json", exclude_unset=True)
    out.pop("status", None)
    if obj.get("status") is not None:
        out["status"] = copy.deepcopy(obj["status"])
    _place(out["metadata"], info.namespaced, default_namespace, headline, details, locate)
    return out


def _kind_of(obj: Any, locate: Any) -> KindInfo:
    """The kind ``obj`` declares, once it is a mapping of plain JSON data with an ``apiVersion``
    and a ``kind`` the API serves; else :class:`~modelplane.api.errors.Invalid` saying which."""
    if not isinstance(obj, dict):
        raise errors.Invalid(
            f"an object must be a mapping with apiVersion, kind, metadata and spec; got {_describe(obj)}",
            causes=[
                errors.Cause(
                    "<object>",
                    f"expected a mapping, got {_describe(obj)}",
                    location=_at(locate, ()),
                )
            ],
        )
    plain = _plain_problems(obj)
    if plain:
        raise errors.Invalid(
            "the object holds values that are not JSON data",
            causes=[
                _cause(path, message, "FieldValueTypeInvalid", None, locate)
                for path, message in plain
            ],
        )
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    envelope = [
        _cause(
            (name,), f"required: add e.g. '{name}: {example}'", "FieldValueRequired", None, locate
        )
        for name, value, example in (
            ("apiVersion", api_version, "modelplane.dev/v1alpha1"),
            ("kind", kind, "Endpoint"),
        )
        if not isinstance(value, str) or not value
    ]
    if envelope:
        raise errors.Invalid("the object has no apiVersion or kind", causes=envelope)
    assert isinstance(api_version, str) and isinstance(kind, str)
    try:
        return kind_info(api_version, kind)
    except errors.Invalid as exc:
        exc.causes = [
            errors.Cause(c.field, c.message, c.reason, _at(locate, (c.field,))) for c in exc.causes
        ]
        raise


def _place(
    metadata: dict[str, Any],
    namespaced: bool,
    default_namespace: str,
    headline: str,
    details: dict[str, Any],
    locate: Any,
) -> None:
    if not namespaced:
        metadata.pop("namespace", None)
        return
    if metadata.get("namespace") is None:
        try:
            check_dns_label(default_namespace)
        except ValueError as exc:
            raise errors.Invalid(
                headline,
                causes=[
                    _cause(("metadata", "namespace"), str(exc), "FieldValueInvalid", None, locate)
                ],
                details=details,
            ) from None
        metadata["namespace"] = default_namespace


# --- plain JSON data -----------------------------------------------------------------------------


def _plain_problems(obj: Any) -> list[tuple[Path, str]]:
    """Paths of values that are not JSON (bytes, sets, dates, NaN), of keys that are not strings,
    and of nesting beyond :data:`MAX_DEPTH`; checked first so nothing below sees them."""
    problems: list[tuple[Path, str]] = []
    stack: list[tuple[Any, Path]] = [(obj, ())]
    seen = 0
    while stack and len(problems) < 20:
        value, path = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return [((), f"the object holds more than {MAX_VALUES} values; split it")]
        if len(path) > MAX_DEPTH:
            return [(path[:MAX_DEPTH], f"nested more than {MAX_DEPTH} levels deep")]
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    problems.append(
                        ((*path, str(key)), f"the key {key!r} must be a string; quote it in YAML")
                    )
                    continue
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                problems.append(
                    (path, f"{value!r} is not a number JSON can carry; write a finite number")
                )
        elif value is not None and not isinstance(value, str | int | bool):
            problems.append(
                (
                    path,
                    f"{_describe(value)} is not JSON data; write a string, number, boolean, list or mapping",
                )
            )
    return problems


# --- pydantic errors -> causes -------------------------------------------------------------------


def _causes(err: ErrorDetails, schema: type[BaseModel], locate: Any) -> list[errors.Cause]:
    loc: Path = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    problem = ctx.get("error")
    if isinstance(problem, FieldProblems):
        return [
            _cause(loc + sub, message, "FieldValueInvalid", schema, locate)
            for sub, message in problem.problems
        ]
    message, reason = _message(err, schema)
    return [_cause(loc, message, reason, schema, locate)]


def _cause(
    loc: Path, message: str, reason: str, schema: type[BaseModel] | None, locate: Any
) -> errors.Cause:
    data_path = tuple(p for p in loc if p != "[key]")
    field = _field_path(schema, loc) if schema is not None else render_path(data_path)
    return errors.Cause(field or "<object>", message, reason, _at(locate, data_path))


def _at(locate: Any, path: tuple[PathPart, ...]) -> str | None:
    return locate(path) if locate is not None else None


def _walk(schema: type[BaseModel], loc: Path) -> tuple[Any, Any]:
    """(parent type, type) at ``loc``: the model or container holding the last step, and its type."""
    current: Any = schema
    parent: Any = None
    for part in loc:
        if part == "[key]":
            continue
        parent = current
        current = _step(current, part)
    return parent, current


def _step(annotation: Any, part: PathPart) -> Any:
    bare = unwrap(annotation)
    if is_model(bare) and isinstance(part, str):
        hit = fields_by_wire_name(bare).get(part)
        return hit[1].annotation if hit else Any
    container = item_type(bare)
    return container[1] if container else Any


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _field_path(schema: type[BaseModel], loc: Path) -> str:
    """``("spec", "traffic", 1, "weight")`` -> ``spec.traffic[1].weight``; map keys in brackets."""
    out = ""
    current: Any = schema
    for part in loc:
        if part == "[key]":
            continue
        bare = unwrap(current)
        container = item_type(bare)
        if is_model(bare) and isinstance(part, str):
            hit = fields_by_wire_name(bare).get(part)
            wire = hit[0] if hit else part
            out += f".{wire}" if out else wire
        elif container is not None:
            out += f"[{part}]"
        elif isinstance(part, str) and _IDENTIFIER.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part}]"
        current = _step(current, part)
    return out


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"the string {shown!r}"
    return f"a {type(value).__name__}"


_TYPE_WORDS = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list (YAML '- item' lines)",
    "dict_type": "must be a mapping (YAML 'key: value' lines)",
    "model_type": "must be a mapping (YAML 'key: value' lines)",
    "model_attributes_type": "must be a mapping (YAML 'key: value' lines)",
}


def _message(err: ErrorDetails, schema: type[BaseModel]) -> tuple[str, str]:
    """(message, cause reason) for one pydantic error."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    loc: Path = tuple(err["loc"])
    value = err.get("input")
    if kind == "missing":
        parent, _ = _walk(schema, loc)
        description = _description(parent, loc[-1] if loc else "")
        return (
            f"required field is missing{f' ({description})' if description else ''}",
            "FieldValueRequired",
        )
    if kind == "extra_forbidden":
        parent, _ = _walk(schema, loc)
        known = wire_names(unwrap(parent)) if is_model(unwrap(parent)) else []
        name = str(loc[-1]) if loc else ""
        hint = suggest(name, known) or (f"; known fields: {', '.join(known)}" if known else "")
        return f"unknown field {name!r}{hint}", "FieldValueInvalid"
    if kind == "literal_error":
        return (
            f"must be one of {ctx.get('expected')}; got {_describe(value)}",
            "FieldValueNotSupported",
        )
    if kind in _TYPE_WORDS:
        suffix = (
            " (quote it in YAML)"
            if kind == "string_type" and isinstance(value, int | float | bool)
            else ""
        )
        if loc and loc[-1] == "[key]":
            return (
                f"the key {_TYPE_WORDS[kind][5:]}; got {_describe(value)}",
                "FieldValueTypeInvalid",
            )
        return f"{_TYPE_WORDS[kind]}; got {_describe(value)}{suffix}", "FieldValueTypeInvalid"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}; got {value!r}", "FieldValueInvalid"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} {'entry' if n == 1 else 'entries'}", "FieldValueRequired"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} entries", "FieldValueTooMany"
    if kind == "string_too_short":
        return "must not be empty", "FieldValueRequired"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters", "FieldValueTooLong"
    if kind == "recursion_loop":
        return "refers to itself; an object must be a tree", "FieldValueInvalid"
    message = re.sub(r"^(Value|Assertion) error, ", "", err["msg"])
    return message, "FieldValueInvalid"


def _description(parent: Any, part: PathPart) -> str:
    bare = unwrap(parent)
    if not is_model(bare) or not isinstance(part, str):
        return ""
    hit = fields_by_wire_name(bare).get(part)
    text = (hit[1].description or "") if hit else ""
    return text.split(". ")[0].rstrip(".")


# --- column paths --------------------------------------------------------------------------------

_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[([^\]]*)\]")


def resolve(value: Any, path: str) -> Any:
    """The value at a column path in an object, or None when any step is absent.

    Paths are dotted field names with brackets for list indices (``[0]``, ``[-1]``), list
    filters (``[type=Ready]``: the first item whose ``type`` is ``Ready``) and map keys that
    contain dots (``metadata.labels[kubernetes.io/hostname]``)::

        resolve(obj, "spec.model")
        resolve(obj, "status.conditions[type=Ready].status")
    """
    current = value
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None or match.end() == position:
            return None
        position = match.end()
        name, bracket = match[1], match[2]
        if name is not None:
            current = current.get(name) if isinstance(current, dict) else None
        elif isinstance(current, list):
            current = _select(current, bracket)
        elif isinstance(current, dict):
            current = current.get(bracket)
        else:
            current = None
        if current is None:
            return None
    return current


def _select(items: list[Any], selector: str) -> Any:
    if "=" in selector:
        key, _, wanted = selector.partition("=")
        for item in items:
            if isinstance(item, dict) and _text(item.get(key)) == wanted:
                return item
        return None
    try:
        index = int(selector)
    except ValueError:
        return None
    return items[index] if -len(items) <= index < len(items) else None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
