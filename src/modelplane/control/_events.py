"""Events: a person-readable record of what controllers did and why, attached to an object.

As Kubernetes's event correlator, repeats are folded: the same (involved object uid, reason,
message) bumps ``count`` and ``lastTimestamp`` of one ``Event`` instead of creating another. The
folding works across processes because the Event's name is derived from that triple:
``<involved name>.<16 hex digits of its sha256>``.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any, Literal

from modelplane.api.errors import AlreadyExists, Conflict, NotFound
from modelplane.control._conditions import now_rfc3339

if TYPE_CHECKING:
    from modelplane.store import Store

log = logging.getLogger("modelplane.control.events")

EVENT_API_VERSION = "modelplane.dev/v1alpha1"
#: events about cluster-scoped objects (which have no namespace) are kept here
CLUSTER_EVENTS_NAMESPACE = "default"

EventType = Literal["Normal", "Warning"]

_MAX_NAME = 253
_WRITE_ATTEMPTS = 5


def _event_name(involved_name: str, uid: str, reason: str, message: str) -> str:
    digest = hashlib.sha256("\x00".join((uid, reason, message)).encode()).hexdigest()[:16]
    return f"{involved_name[: _MAX_NAME - 17]}.{digest}"


def record_event(
    store: Store,
    obj: dict[str, Any],
    *,
    type: EventType,
    reason: str,
    message: str,
    component: str,
) -> dict[str, Any]:
    """Record that ``component`` did or saw ``reason``/``message`` about ``obj``; returns the Event.

    ``type`` is ``"Normal"`` or ``"Warning"`` (something a person should look at). The Event lives
    in ``obj``'s namespace (``"default"`` for cluster-scoped objects). A repeat of the same
    (uid, reason, message) increments ``count`` and moves ``lastTimestamp``; concurrent recorders
    are reconciled by retrying on Conflict. Store errors other than those propagate.
    """
    if type not in ("Normal", "Warning"):
        raise ValueError(f"an event type is 'Normal' or 'Warning' (got {type!r})")
    meta = obj.get("metadata") or {}
    involved_ns = str(meta.get("namespace") or "")
    involved_name = str(meta.get("name") or "")
    # an object not yet stored has no uid: fall back to its identity so folding still works
    uid = str(meta.get("uid") or f"{obj.get('kind')}/{involved_ns}/{involved_name}")
    namespace = involved_ns or CLUSTER_EVENTS_NAMESPACE
    name = _event_name(involved_name, uid, reason, message)

    for _ in range(_WRITE_ATTEMPTS):
        now = now_rfc3339()
        try:
            current = store.get("Event", namespace, name)
        except NotFound:
            event = {
                "apiVersion": EVENT_API_VERSION,
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {
                    "apiVersion": obj.get("apiVersion", ""),
                    "kind": obj.get("kind", ""),
                    "namespace": involved_ns,
                    "name": involved_name,
                    "uid": str(meta.get("uid") or ""),
                },
                "reason": reason,
                "message": message,
                "type": type,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": component},
            }
            try:
                return dict(store.create(event))
            except AlreadyExists:
                continue  # another recorder created it first: bump theirs
        bumped = dict(current)
        bumped["count"] = int(current.get("count") or 1) + 1
        bumped["lastTimestamp"] = now
        bumped["type"] = type
        try:
            return dict(store.update(bumped))
        except (Conflict, NotFound):
            continue  # raced with another recorder (or a cleanup): read again
    raise Conflict(
        f"could not record event {namespace}/{name} after {_WRITE_ATTEMPTS} attempts: other"
        " writers kept changing it; this is transient, the next occurrence will record it"
    )
