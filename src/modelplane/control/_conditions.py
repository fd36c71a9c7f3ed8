"""Status conditions, as Kubernetes ``metav1.Condition``: one entry per ``type`` in ``status.conditions``.

``lastTransitionTime`` records when ``status`` last changed value (True/False/Unknown), not when the
condition was last written: a controller that re-asserts ``Ready=False`` with a new message keeps
the time at which the object stopped being ready.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelplane.api import parse_timestamp


def now_rfc3339() -> str:
    """The current time as Kubernetes writes timestamps: RFC 3339, UTC, whole seconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339(seconds: float) -> str:
    """``seconds`` since the epoch as RFC 3339 in UTC with milliseconds, e.g.
    ``2026-01-02T03:04:05.678Z`` (the times controllers put in the status parts they own)."""
    text = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (``Z`` or an offset), as :func:`rfc3339`
    and :func:`now_rfc3339` write them; ValueError when ``text`` is not one."""
    parsed = parse_timestamp(text)
    if parsed is None:
        raise ValueError(f"{text!r} is not an RFC 3339 time, e.g. 2026-01-02T03:04:05Z")
    return parsed.timestamp()


def _as_status(value: str | bool) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if value not in ("True", "False", "Unknown"):
        raise ValueError(f"a condition status is 'True', 'False' or 'Unknown' (got {value!r})")
    return value


def get_condition(status: dict[str, Any] | None, type: str) -> dict[str, Any] | None:
    """The condition of ``type`` in ``status`` (an object's ``status`` dict), or None."""
    for cond in (status or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == type:
            return cond
    return None


def set_condition(
    status: dict[str, Any],
    type: str,
    condition_status: str | bool,
    reason: str,
    message: str,
    observed_generation: int | None = None,
    *,
    now: str | None = None,
) -> bool:
    """Set condition ``type`` in ``status["conditions"]`` (in place); returns whether it changed.

    ``condition_status`` is ``"True"``, ``"False"``, ``"Unknown"`` or a bool. ``lastTransitionTime``
    becomes ``now`` (default: the current time) only when the status value changes or the condition
    is new; a change of reason, message or generation alone keeps it.
    """
    value = _as_status(condition_status)
    conditions = status.setdefault("conditions", [])
    desired: dict[str, Any] = {
        "type": type,
        "status": value,
        "reason": reason,
        "message": message,
    }
    if observed_generation is not None:
        desired["observedGeneration"] = observed_generation
    for i, cond in enumerate(conditions):
        if not isinstance(cond, dict) or cond.get("type") != type:
            continue
        if cond.get("status") == value and cond.get("lastTransitionTime"):
            desired["lastTransitionTime"] = cond["lastTransitionTime"]
        else:
            desired["lastTransitionTime"] = now or now_rfc3339()
        if cond == desired:
            return False
        conditions[i] = desired
        return True
    desired["lastTransitionTime"] = now or now_rfc3339()
    conditions.append(desired)
    return True
