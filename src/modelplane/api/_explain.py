"""``modelplane explain endpoint.spec.traffic``: what a field is, in the manner of kubectl explain."""

from __future__ import annotations

import inspect
import re
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from modelplane.api import errors
from modelplane.api._introspect import (
    enum_values,
    fields_by_wire_name,
    is_model,
    item_type,
    type_name,
    unwrap,
)
from modelplane.api._meta import ObjectMeta, Status
from modelplane.api._registry import lookup
from modelplane.api._types import closest, wire_names

_INDENT = "    "
#: descriptions of envelope fields whose schema (shared by every kind) has none
_ENVELOPE = {"kind": "The kind of the object, e.g. `Endpoint`."}


def explain(path: str) -> str:
    """Describe a kind or one of its fields: ``endpoint``, ``endpoint.spec.traffic``, ``ep.spec``.

    The text names the kind and apiVersion, the field's type and description, and lists its
    sub-fields with their types and one-line descriptions. A wrong path raises
    :class:`~modelplane.api.errors.NotFound` with the valid field names at the step that failed.
    """
    head, *parts = [p for p in path.strip().split(".") if p] or [""]
    info = lookup(head)
    current: Any = info.schema
    field: FieldInfo | None = None
    walked: list[str] = []
    for part in parts:
        name = part.removesuffix("[]")
        model = _model_of(current)
        if model is None:
            where = ".".join([info.kind, *walked])
            raise errors.NotFound(
                f"{where} is a {type_name(current)} and has no field {name!r}",
                details={"kind": info.kind},
            )
        hit = fields_by_wire_name(model).get(name)
        if hit is None:
            where = ".".join([info.kind, *walked])
            known = wire_names(model)
            close = closest(name, known)
            raise errors.NotFound(
                f"field {name!r} does not exist in {where}"
                f"{f' (did you mean {close!r}?)' if close else ''}; its fields are: {', '.join(known)}",
                details={"kind": info.kind},
            )
        wire, field = hit
        walked.append(wire)
        current = field.annotation

    lines = [f"KIND:     {info.kind}", f"VERSION:  {info.api_version}", ""]
    if field is not None:
        lines += [f"FIELD:    {walked[-1]} <{type_name(current)}>", ""]
        description = field.description or _ENVELOPE.get(walked[-1]) or _doc(_model_of(current))
        lines += ["DESCRIPTION:", *_wrap(description), *_facts(field), ""]
    else:
        lines += ["DESCRIPTION:", *_wrap(_doc(info.schema)), ""]
    model = _model_of(current)
    if model is not None:
        lines.append("FIELDS:")
        for wire, sub in ((i.alias or n, i) for n, i in model.model_fields.items()):
            required = " -required-" if sub.is_required() else ""
            lines.append(f"  {wire}\t<{type_name(sub.annotation)}>{required}")
            summary = _first_sentence(
                sub.description or _ENVELOPE.get(wire) or _doc(_model_of(sub.annotation))
            )
            facts = "; ".join(_facts(sub, inline=True))
            lines.append(f"{_INDENT}{summary}{f' ({facts})' if facts else ''}")
            lines.append("")
        if _keeps_unknown(model, info.schema):
            lines.append("  (other fields are accepted and kept as they are)")
    return "\n".join(lines).rstrip() + "\n"


def _keeps_unknown(model: type[BaseModel], kind: type[BaseModel]) -> bool:
    """Whether validation keeps unknown fields here: in DRA kinds, metadata and status; not in the
    DRA structures embedded in our kinds (there an unknown field is a typo)."""
    if model.model_config.get("extra") != "allow":
        return False
    open_kind = kind.model_config.get("extra") == "allow"
    return open_kind or issubclass(model, ObjectMeta | Status)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, looking through lists and maps as kubectl explain does."""
    bare = unwrap(annotation)
    container = item_type(bare)
    while container is not None:
        bare = unwrap(container[1])
        container = item_type(bare)
    return bare if is_model(bare) else None


def _doc(model: type[BaseModel] | None) -> str:
    if model is None:
        return ""
    text = (inspect.getdoc(model) or "").split("\n\n")[0].replace("\n", " ")
    return text.replace("``", "`")


def _first_sentence(text: str) -> str:
    # a sentence ends at a full stop before a capital, but not at "e.g." or "i.e."
    head = re.split(r"(?<!e\.g)(?<!i\.e)\.\s+(?=[A-Z`])", text, maxsplit=1)[0]
    return head if head == text else head + "."


def _facts(field: FieldInfo, inline: bool = False) -> list[str]:
    facts: list[str] = []
    values = enum_values(field.annotation)
    if values:
        facts.append("one of: " + ", ".join(str(v) for v in values))
    default = field.default
    if (
        default is not PydanticUndefined
        and default is not None
        and not isinstance(default, BaseModel)
    ):
        facts.append(f"default: {str(default).lower() if isinstance(default, bool) else default}")
    if inline:
        return facts
    return ["", *(_INDENT + fact for fact in facts)] if facts else []


def _wrap(text: str, width: int = 96) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(_INDENT + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(_INDENT + line)
    return lines or [f"{_INDENT}<no description>"]
