"""Writing a controller's status: the one way every controller reports what it observed.

A reconcile computes the status it wants from what it read and hands it to :func:`commit_status`,
which writes it only when it differs (so a quiet reconcile writes nothing and wakes no watch),
stamps ``observedGeneration`` (the generation the status describes, as Kubernetes does), turns a
write that lost a race into "read again" instead of an error, and records an Event when the
condition a person watches (``Ready``) changed, never when it did not.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from modelplane.api.errors import Conflict, NotFound
from modelplane.control._conditions import get_condition
from modelplane.control._events import record_event

if TYPE_CHECKING:
    from modelplane.store import Store

log = logging.getLogger("modelplane.control.status")


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """An Event a controller names itself for a status write (the scheduler's "Allocated",
    "FailedScheduling", ...), recorded once the write succeeded, instead of the one for the
    condition's change."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str

    @classmethod
    def of(cls, type_: str, reason: str, message: str) -> StatusEvent:
        """The event of ``type_`` ``"Warning"``, or ``"Normal"`` for any other word."""
        return cls("Warning" if type_ == "Warning" else "Normal", reason, message)


def commit_status(
    store: Store,
    obj: dict[str, Any],
    status: dict[str, Any],
    *,
    component: str,
    condition: str | None = "Ready",
    compared: tuple[str, ...] = ("status", "reason", "message"),
    observed_generation: bool = True,
    event: StatusEvent | None = None,
) -> dict[str, Any] | None:
    """Write ``status`` onto ``obj`` (as read, with its ``resourceVersion``) when it changed.

    Returns the stored object (``obj`` itself when nothing changed), or None when the write lost
    a race: the object changed or went away since it was read, and the caller should requeue and
    read it again (its own watch event usually does that too). ``condition``: the condition
    whose change (status, reason or message) is recorded as an Event by ``component``, Normal
    when it became True, Warning otherwise; None records none. ``compared``: the fields of the
    condition whose change is an Event (leave ``message`` out where it counts something, such as
    ready replicas, so that counting is not an Event each time). ``observed_generation``: stamp
    ``status.observedGeneration`` with the object's generation (pass False where the status was
    computed from an older copy than ``obj``, and stamp the generation it describes yourself).
    ``event``: the Event to record when the status was written, in place of the condition's.
    """
    old: dict[str, Any] = obj.get("status") or {}
    new = copy.deepcopy(status)
    generation = (obj.get("metadata") or {}).get("generation")
    if observed_generation and generation is not None:
        new["observedGeneration"] = generation
    if new == old:
        return obj
    try:
        stored = store.update_status({**obj, "status": new})
    except (Conflict, NotFound):
        log.debug("%s: status of %s lost a race; reading again", component, _name(obj))
        return None
    if event is not None:
        record_status_event(store, stored, event, component)
    elif condition is not None:
        _record_transition(store, stored, old, new, condition, compared, component)
    return stored


def _record_transition(
    store: Store,
    obj: dict[str, Any],
    old: dict[str, Any],
    new: dict[str, Any],
    condition: str,
    compared: tuple[str, ...],
    component: str,
) -> None:
    before = get_condition(old, condition) or {}
    after = get_condition(new, condition) or {}
    if all(before.get(f) == after.get(f) for f in compared):
        return
    kind: Literal["Normal", "Warning"] = "Normal" if after.get("status") == "True" else "Warning"
    event = StatusEvent(kind, str(after.get("reason", "")), str(after.get("message", "")))
    record_status_event(store, obj, event, component)


def record_status_event(
    store: Store, obj: dict[str, Any], event: StatusEvent, component: str
) -> None:
    """Record ``event`` about ``obj`` as ``component``, best effort: a failure is logged, never
    raised (the status says it too; a lost event must not undo a correct reconcile)."""
    try:
        record_event(
            store,
            obj,
            type=event.type,
            reason=event.reason,
            message=event.message,
            component=component,
        )
    except Exception as exc:
        # the status already says it; a lost event must not undo a correct reconcile
        log.warning("%s: could not record an event: %s: %s", component, type(exc).__name__, exc)


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}"
