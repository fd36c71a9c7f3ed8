"""Server-side apply and ``metadata.managedFields``, as kube-apiserver keeps them.

Every object records which *field manager* set which fields: one entry per manager and operation
in ``metadata.managedFields`` (``manager``, ``operation`` ``Apply`` or ``Update``, ``apiVersion``,
``time``, ``fieldsType: FieldsV1`` and ``fieldsV1``, the owned fields in Kubernetes' ``f:`` form).

* **Apply** (``PATCH`` with ``application/apply-patch+yaml``, ``?fieldManager=`` required): the
  applied configuration is merged into the live object (created when there is none). Maps merge
  key by key; a list whose items all have a ``name`` merges item by item (``k:{"name":...}``);
  any other list is atomic. The manager then owns exactly the leaf fields it applied. A field it
  applied before and no longer applies is removed, unless another manager owns it too. A field
  another manager owns with a different value is a 409 ``Conflict`` naming each field
  (``reason: FieldManagerConflict``), unless ``?force=true``, which takes the field over.
* **Update** (create, replace, merge patch): the writer (``?fieldManager=``, else the first word
  of its User-Agent, as kube-apiserver does) takes the fields whose values it changed.

Ownership covers what a user writes: ``spec`` and the like, ``metadata.labels``,
``annotations``, ``finalizers``; not ``status``, not the fields the server owns. A
``managedFields`` sent by a client is ignored: the server keeps it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelplane.api import SERVER_OWNED
from modelplane.api.errors import Cause, Conflict
from modelplane.store import JSON

#: a field: ``("f:spec", "f:replicas", "f:min")``, ``("f:spec", "f:versions", 'k:{"name":"v1"}', ".")``
Path = tuple[str, ...]

APPLY, UPDATE = "Apply", "Update"
#: metadata keys nobody manages (identity, or the server's)
_UNMANAGED_METADATA = frozenset(
    {
        "name",
        "namespace",
        *SERVER_OWNED,
        "selfLink",
        "managedFields",
    }
)
_UNMANAGED_TOP = frozenset({"apiVersion", "kind", "status"})


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _keyed(value: Any) -> bool:
    """A list merged item by item: every item an object with a string ``name``, names unique."""
    if not isinstance(value, list) or not value:
        return False
    names = [i.get("name") if isinstance(i, dict) else None for i in value]
    return all(isinstance(n, str) for n in names) and len(set(names)) == len(names)


def _item_key(name: str) -> str:
    return "k:" + json.dumps({"name": name}, separators=(",", ":"))


def _managed_part(obj: JSON) -> JSON:
    """What ownership covers: the object without identity, status and server-owned metadata."""
    out = {k: v for k, v in obj.items() if k not in _UNMANAGED_TOP}
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if k not in _UNMANAGED_METADATA}
        if kept:
            out["metadata"] = kept
        else:
            out.pop("metadata", None)
    return out


def field_set(obj: JSON) -> set[Path]:
    """The leaf fields of ``obj`` (its managed part), as paths."""
    out: set[Path] = set()

    def walk(value: Any, prefix: Path) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(item, (*prefix, f"f:{key}"))
        elif _keyed(value):
            for item in value:
                element = (*prefix, _item_key(item["name"]))
                out.add((*element, "."))
                for key, sub in item.items():
                    walk(sub, (*element, f"f:{key}"))
        elif prefix:
            out.add(prefix)

    walk(_managed_part(obj), ())
    return out


def value_at(obj: Any, path: Path) -> Any:
    """The value at ``path`` in ``obj``, or :data:`MISSING`; ``"."`` is the element itself."""
    current = obj
    for step in path:
        if step == ".":
            return current
        if step.startswith("f:") and isinstance(current, dict):
            current = current.get(step[2:], MISSING)
        elif step.startswith("k:") and isinstance(current, list):
            name = json.loads(step[2:]).get("name")
            current = next(
                (i for i in current if isinstance(i, dict) and i.get("name") == name), MISSING
            )
        else:
            return MISSING
        if current is MISSING:
            return MISSING
    return current


def describe_path(path: Path) -> str:
    """``.spec.versions[name="v1"].source``: a path as kube-apiserver writes it in conflicts."""
    out = ""
    for step in path:
        if step.startswith("f:"):
            out += "." + step[2:]
        elif step.startswith("k:"):
            out += "".join(f"[{k}={json.dumps(v)}]" for k, v in json.loads(step[2:]).items())
    return out


def encode(paths: Iterable[Path]) -> JSON:
    """Paths as ``fieldsV1``."""
    root: JSON = {}
    for path in sorted(paths):
        node = root
        for step in path:
            node = node.setdefault(step, {})
    return root


def decode(fields: Any) -> set[Path]:
    """``fieldsV1`` as paths (anything unreadable owns nothing)."""
    out: set[Path] = set()

    def walk(node: Any, prefix: Path) -> None:
        if not isinstance(node, dict):
            return
        if not node and prefix:
            out.add(prefix)
        for key, child in node.items():
            if key == ".":
                out.add((*prefix, "."))
            elif isinstance(key, str) and key[:2] in ("f:", "k:"):
                walk(child, (*prefix, key))

    walk(fields, ())
    return out


@dataclass
class Entry:
    """One ``managedFields`` item."""

    manager: str
    operation: str
    api_version: str
    time: str
    fields: set[Path]

    def to_json(self) -> JSON:
        return {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": encode(self.fields),
        }


def entries_of(obj: JSON | None) -> list[Entry]:
    """The managedFields of a stored object."""
    meta = (obj or {}).get("metadata")
    raw = meta.get("managedFields") if isinstance(meta, dict) else None
    out: list[Entry] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("manager"), str):
            continue
        out.append(
            Entry(
                manager=item["manager"],
                operation=str(item.get("operation") or UPDATE),
                api_version=str(item.get("apiVersion") or ""),
                time=str(item.get("time") or ""),
                fields=decode(item.get("fieldsV1")),
            )
        )
    return out


def _finish(entries: list[Entry], obj: JSON) -> list[JSON]:
    """Entries with fields gone from ``obj`` forgotten, empty ones dropped, as JSON."""
    out: list[JSON] = []
    for entry in entries:
        entry.fields = {p for p in entry.fields if value_at(obj, p) is not MISSING}
        if entry.fields:
            out.append(entry.to_json())
    return out


def _entry(entries: list[Entry], manager: str, operation: str, api_version: str) -> Entry:
    for entry in entries:
        if entry.manager == manager and entry.operation == operation:
            return entry
    entry = Entry(manager, operation, api_version, now(), set())
    entries.append(entry)
    return entry


def _set_fields(entry: Entry, fields: set[Path], api_version: str) -> None:
    if entry.fields != fields or entry.api_version != api_version:
        entry.fields, entry.api_version, entry.time = fields, api_version, now()


# -- Update ---------------------------------------------------------------------------------------


def track_update(old: JSON | None, new: JSON, manager: str) -> list[JSON]:
    """The managedFields of ``new`` after ``manager`` wrote it over ``old`` (None: created).

    A writer that sends managedFields other than the stored ones sets them, as in Kubernetes
    (kubectl does, when it hands client-side apply's fields over to server-side apply)."""
    sent = (new.get("metadata") or {}).get("managedFields")
    stored = ((old or {}).get("metadata") or {}).get("managedFields")
    entries = entries_of(new if isinstance(sent, list) and sent != stored else old)
    changed = {p for p in field_set(new) if old is None or value_at(old, p) != value_at(new, p)}
    api_version = str(new.get("apiVersion") or "")
    for entry in entries:
        if not (entry.manager == manager and entry.operation == UPDATE):
            entry.fields -= changed
    if changed:
        mine = _entry(entries, manager, UPDATE, api_version)
        _set_fields(mine, mine.fields | changed, api_version)
    return _finish(entries, new)


# -- Apply ----------------------------------------------------------------------------------------


def _merge(live: Any, applied: Any) -> Any:
    """``applied`` merged into ``live``: maps by key, name-keyed lists by item, the rest replaced."""
    if isinstance(live, dict) and isinstance(applied, dict):
        out = dict(live)
        for key, value in applied.items():
            out[key] = _merge(live.get(key, MISSING), value)
        return out
    if isinstance(live, list) and _keyed(applied) and (not live or _keyed(live)):
        by_name = {item["name"]: item for item in live}
        merged = [_merge(by_name.get(item["name"], MISSING), item) for item in applied]
        applied_names = {item["name"] for item in applied}
        return merged + [item for item in live if item["name"] not in applied_names]
    return copy.deepcopy(applied)


def _remove(obj: JSON, path: Path) -> None:
    """Remove the field (or list element, for a path ending in ``"."``) at ``path``."""
    *parents, last = path
    container: Any = obj if last != "." else value_at(obj, tuple(parents[:-1]))
    if last == ".":
        if isinstance(container, list):
            name = json.loads(parents[-1][2:]).get("name")
            container[:] = [
                i for i in container if not (isinstance(i, dict) and i.get("name") == name)
            ]
        return
    parent = value_at(obj, tuple(parents))
    if isinstance(parent, dict) and last.startswith("f:"):
        parent.pop(last[2:], None)


def _conflicts(
    entries: list[Entry], manager: str, live: JSON, applied: JSON, fields: set[Path]
) -> list[tuple[Path, Entry]]:
    out: list[tuple[Path, Entry]] = []
    for entry in entries:
        if entry.manager == manager:
            continue
        for path in sorted(entry.fields & fields):
            if path[-1] != "." and value_at(live, path) != value_at(applied, path):
                out.append((path, entry))
    return out


def _conflict_error(conflicts: list[tuple[Path, Entry]]) -> Conflict:
    count = len(conflicts)
    return Conflict(
        f"Apply failed with {count} conflict{'s' if count != 1 else ''}: other field managers"
        " set these fields to other values. Apply again with force=true (kubectl apply"
        " --server-side --force-conflicts) to take them over, leave them out of your"
        " configuration, or apply the values they have",
        causes=[
            Cause(
                field=describe_path(path),
                message=f"conflict with {json.dumps(entry.manager)}",
                reason="FieldManagerConflict",
            )
            for path, entry in conflicts
        ],
    )


def apply(live: JSON | None, applied: JSON, manager: str, *, force: bool) -> JSON:
    """The object after ``manager`` applied ``applied`` to ``live`` (None: it does not exist),
    with its managedFields; Conflict naming each contested field unless ``force``."""
    applied = {k: v for k, v in applied.items() if k != "status"}
    meta = applied.get("metadata")
    if isinstance(meta, dict):
        applied["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    fields = field_set(applied)
    api_version = str(applied.get("apiVersion") or "")
    entries = entries_of(live)
    base: JSON = live if live is not None else {}
    conflicts = _conflicts(entries, manager, base, applied, fields)
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for path, entry in conflicts:
        entry.fields.discard(path)
    mine = _entry(entries, manager, APPLY, api_version)
    others = [e for e in entries if e is not mine]
    dropped = mine.fields - fields
    merged: JSON = _merge(copy.deepcopy(base), applied)
    for path in sorted(dropped, key=len, reverse=True):
        element = path[:-1] if path[-1] == "." else None
        owned = any(
            (p[: len(element)] == element if element else p == path)
            for e in others
            for p in e.fields
        )
        if not owned:
            _remove(merged, path)
    _set_fields(mine, fields, api_version)
    meta = merged.setdefault("metadata", {})
    meta["managedFields"] = _finish(entries, merged)
    return merged
