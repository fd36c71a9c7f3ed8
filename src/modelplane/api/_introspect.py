"""Walking schemas by their wire names: which type is at ``spec.traffic[0]``, what a field is called.

Validation uses it to render pydantic's error locations as Kubernetes field paths (map keys in
brackets, list indices in brackets, fields after dots); ``explain`` uses it to describe a field.
"""

from __future__ import annotations

import types
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo


def unwrap(annotation: Any) -> Any:
    """The type under ``Annotated[...]`` and ``X | None``; a real union is returned as it is."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


@cache
def fields_by_wire_name(model: type[BaseModel]) -> dict[str, tuple[str, FieldInfo]]:
    """Wire name (camelCase alias) and Python name -> (wire name, field)."""
    out: dict[str, tuple[str, FieldInfo]] = {}
    for name, info in model.model_fields.items():
        wire = info.alias or name
        out[wire] = (wire, info)
        out.setdefault(name, (wire, info))
    return out


def item_type(annotation: Any) -> tuple[str, Any] | None:
    """``("list", item)`` or ``("map", value)`` for a list or a string-keyed map, else None."""
    bare = unwrap(annotation)
    origin = get_origin(bare)
    if origin in (list, tuple, set, frozenset):
        args = get_args(bare)
        return "list", args[0] if args else Any
    if origin is dict:
        args = get_args(bare)
        return "map", args[1] if len(args) == 2 else Any
    return None


def type_name(annotation: Any) -> str:
    """A kubectl-explain-like name: ``string``, ``integer``, ``[]TrafficTarget``, ``map[string]X``."""
    bare = unwrap(annotation)
    container = item_type(bare)
    if container is not None:
        kind, inner = container
        return f"[]{type_name(inner)}" if kind == "list" else f"map[string]{type_name(inner)}"
    if get_origin(bare) is Literal:
        return "string" if all(isinstance(a, str) for a in get_args(bare)) else "enum"
    if is_model(bare):
        return str(bare.__name__)
    if get_origin(bare) in (Union, types.UnionType):
        names = sorted({type_name(a) for a in get_args(bare) if a is not type(None)})
        return "quantity" if names == ["integer", "number", "string"] else " | ".join(names)
    return {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
    }.get(bare, "Object")


def enum_values(annotation: Any) -> tuple[Any, ...]:
    bare = unwrap(annotation)
    return get_args(bare) if get_origin(bare) is Literal else ()
