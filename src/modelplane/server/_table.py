"""``Table`` responses (``meta.k8s.io/v1``), which ``kubectl get`` asks for.

A GET of a list, a watch or one object whose ``Accept`` names
``application/json;as=Table;v=v1;g=meta.k8s.io`` is answered with a Table instead of the
objects: the columns of ``modelplane get`` (NAME, the kind's own :attr:`KindInfo.columns`, READY
where the CLI shows it, AGE), one row per object. Each row carries the object as
``PartialObjectMetadata`` (``?includeObject=Metadata``, the default), whole (``Object``) or not at
all (``None``), as kube-apiserver does. A watch sends one Table of one row per event.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Literal

from starlette.datastructures import QueryParams

from modelplane.api import READY_PATH, KindInfo, age, cell, json_schema, resolve
from modelplane.api.errors import BadRequest
from modelplane.store import JSON

TABLE_VERSION = "meta.k8s.io/v1"
IncludeObject = Literal["None", "Metadata", "Object"]


def wants_table(accept: str) -> bool:
    """Whether an ``Accept`` header asks for a ``meta.k8s.io/v1`` Table."""
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if media.lower() not in ("application/json", "application/*", "*/*"):
            continue
        values = dict(p.split("=", 1) for p in params if "=" in p)
        if values.get("as") == "Table" and values.get("g") == "meta.k8s.io":
            return values.get("v") == "v1"
    return False


def include_object(query: QueryParams) -> IncludeObject:
    value = query.get("includeObject") or "Metadata"
    if value not in ("None", "Metadata", "Object"):
        raise BadRequest(
            f"includeObject={value!r} is not one of None, Metadata, Object; leave it out for"
            " Metadata"
        )
    return value  # type: ignore[return-value]


@cache
def _has_conditions(info: KindInfo) -> bool:
    """Whether the kind's status has conditions (a watch shows READY for such kinds: its columns
    cannot depend on objects that have not come yet)."""
    status = json_schema(info.kind).get("properties", {}).get("status", {})
    return "conditions" in (status.get("properties") or {})


def _own_ready(info: KindInfo) -> bool:
    return any(header == "READY" for header, _ in info.columns)


def ready_column(info: KindInfo, items: list[JSON] | None) -> bool:
    """Whether READY is added, as ``modelplane get`` decides: for a list or one object, when one
    of them has a Ready condition; for a watch (``items`` None), when the kind has conditions."""
    if _own_ready(info):
        return False
    if items is None:
        return _has_conditions(info)
    return any(resolve(o, READY_PATH) is not None for o in items)


def column_definitions(info: KindInfo, ready: bool) -> list[JSON]:
    def column(name: str, description: str, type_: str = "string", **more: Any) -> JSON:
        return {"name": name, "type": type_, "format": "", "description": description,
                "priority": 0} | more  # fmt: skip

    out = [column("Name", "The object's name.", format="name")]
    out += [column(header, f"`{path}`") for header, path in info.columns]
    if ready:
        out.append(column("Ready", "The status of the Ready condition."))
    out.append(column("Age", "Time since the object was created.", type_="date"))
    return out


def _row_object(info: KindInfo, obj: JSON, include: IncludeObject) -> JSON | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": TABLE_VERSION,
        "metadata": obj.get("metadata") or {},
    }


def row(info: KindInfo, obj: JSON, *, ready: bool, include: IncludeObject) -> JSON:
    meta = obj.get("metadata") or {}
    cells: list[Any] = [str(meta.get("name", ""))]
    cells += [cell(resolve(obj, path)) for _, path in info.columns]
    if ready:
        cells.append(cell(resolve(obj, READY_PATH)))
    cells.append(age(meta.get("creationTimestamp")))
    return {"cells": cells, "object": _row_object(info, obj, include)}


def table(
    info: KindInfo,
    items: list[JSON],
    *,
    include: IncludeObject,
    metadata: JSON | None = None,
    ready: bool | None = None,
) -> JSON:
    """The Table of ``items``; ``ready`` fixes whether READY is shown (else decided by them)."""
    shows_ready = ready_column(info, items) if ready is None else ready
    return {
        "kind": "Table",
        "apiVersion": TABLE_VERSION,
        "metadata": metadata or {},
        "columnDefinitions": column_definitions(info, shows_ready),
        "rows": [row(info, o, ready=shows_ready, include=include) for o in items],
    }


def watch_presenter(
    info: KindInfo, include: IncludeObject, present: Callable[[JSON], JSON] | None
) -> Callable[[JSON], JSON]:
    """How each watch event's object is sent: a Table of its one row, after ``present``."""
    ready = ready_column(info, None)

    def as_table(obj: JSON) -> JSON:
        shown = obj if present is None else present(obj)
        return table(info, [shown], include=include, ready=ready)

    return as_table
