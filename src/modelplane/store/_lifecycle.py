"""The object rules: what create, update, status writes, patch and delete do to an object.

Owns: identity (kind, namespace, name), the server-owned metadata (the list is
:data:`modelplane.api.SERVER_OWNED`: set on create, kept on every later write), ``generation``
(bumped when anything but metadata and status changes), the status subresource, optimistic
concurrency (a sent ``resourceVersion`` must be the current one), RFC 7386 merge patch, and
finalizers (a delete with finalizers only sets ``deletionTimestamp``; the object goes when the last
finalizer is removed). These are pure functions of dicts: no database, no versions handed out.

Rules worth knowing:

* ``create`` keeps the ``status`` it is given (the initial status); from then on only
  ``update_status`` (or a status patch) changes it.
* A write that would change nothing (same spec, metadata and status) is not a write
  (:func:`settle` answers None), so a level-triggered controller that re-applies the same state
  does not wake every watcher.
* The DELETED event carries the object as it was, with the deletion's resourceVersion.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from modelplane.api import SERVER_OWNED
from modelplane.api.errors import BadRequest, Conflict
from modelplane.store._contract import JSON, EventType

_NOT_SPEC = frozenset(("apiVersion", "kind", "metadata", "status"))


def describe(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def details(kind: str, namespace: str, name: str) -> dict[str, Any]:
    """The ``details`` of an error about one object, as Kubernetes writes them."""
    out: dict[str, Any] = {"kind": kind, "name": name}
    if namespace:
        out["namespace"] = namespace
    return out


def key_of(obj: object) -> tuple[str, str, str]:
    """(kind, namespace, name) of ``obj``; BadRequest when the object lacks them."""
    if not isinstance(obj, dict):
        raise BadRequest(f"an object must be a JSON object (a mapping), not {type(obj).__name__}")
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise BadRequest("the object has no kind: set kind, for example kind: Model")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise BadRequest(f"the {kind} has no metadata: set metadata.name")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"the {kind} has no metadata.name: every object needs a name")
    namespace = meta.get("namespace") or ""
    if not isinstance(namespace, str):
        raise BadRequest(f"{kind} {name}: metadata.namespace must be a string")
    return kind, namespace, name


def timestamp() -> str:
    """Now, in the RFC 3339 form Kubernetes uses for metadata timestamps."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec(obj: JSON) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in _NOT_SPEC}


def created(obj: JSON) -> JSON:
    """``obj`` as first stored: server-owned metadata set, the rest as given."""
    out = dict(obj)
    meta = {k: v for k, v in obj["metadata"].items() if k not in SERVER_OWNED}
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = timestamp()
    meta["generation"] = 1
    out["metadata"] = meta
    return out


def replaced(stored: JSON, obj: JSON) -> JSON:
    """The result of ``update(obj)``: everything from ``obj`` but server-owned metadata and status,
    which stay as stored; generation bumped when the spec changed."""
    out = {k: v for k, v in obj.items() if k != "status"}
    old_meta = stored["metadata"]
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_OWNED}
    for k in SERVER_OWNED:
        if k in old_meta:
            meta[k] = old_meta[k]
    out["metadata"] = meta
    if "status" in stored:
        out["status"] = stored["status"]
    if _spec(out) != _spec(stored):
        meta["generation"] = int(old_meta.get("generation") or 0) + 1
    return out


def with_status(stored: JSON, status: Any) -> JSON:
    """``stored`` with its status replaced (removed for None); nothing else changes."""
    out = dict(stored)
    out["metadata"] = dict(stored["metadata"])
    if status is None:
        out.pop("status", None)
    else:
        out["status"] = status
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes, anything else
    (lists included) replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def patched(stored: JSON, patch: JSON, key: tuple[str, str, str], subresource: str | None) -> JSON:
    """The result of a merge patch of ``stored`` (the whole object, or only its status)."""
    merged = merge_patch(stored, patch)
    if key_of(merged) != key:
        raise BadRequest(
            f"a patch cannot change the kind, metadata.name or metadata.namespace of"
            f" {describe(*key)}: create a new object and delete this one instead"
        )
    if subresource == "status":
        return with_status(stored, merged.get("status"))
    return replaced(stored, merged)


def check_version(sent: Any, stored: JSON, kind: str, namespace: str, name: str) -> None:
    """Conflict unless ``sent`` is empty or equals the stored resourceVersion."""
    if sent is None or sent == "":
        return
    current = stored["metadata"].get("resourceVersion")
    if str(sent) != current:
        raise Conflict(
            f"{describe(kind, namespace, name)} was modified: you sent resourceVersion {sent},"
            f" the current one is {current}; get it again and retry",
            details=details(kind, namespace, name),
        )


def settle(stored: JSON, new: JSON) -> EventType | None:
    """What writing ``new`` over ``stored`` is: None when nothing changes (no write), DELETED when
    an object waiting for its finalizers has none left, else MODIFIED."""
    if new == stored:
        return None
    meta = new["metadata"]
    if meta.get("deletionTimestamp") and not meta.get("finalizers"):
        return "DELETED"
    return "MODIFIED"


def deleted(stored: JSON) -> tuple[EventType, JSON] | None:
    """What a delete does: the object goes (DELETED) unless finalizers hold it, then it is marked
    with ``deletionTimestamp`` (MODIFIED); None when it is already marked."""
    new = with_status(stored, stored.get("status"))
    meta = new["metadata"]
    if not meta.get("finalizers"):
        return "DELETED", new
    if not meta.get("deletionTimestamp"):
        meta["deletionTimestamp"] = timestamp()
        return "MODIFIED", new
    return None
