"""Remediation playbooks bound to SLO alerts: ``shift-traffic`` and ``rollback``, and their controller.

An Endpoint opts in with ``spec.slo.remediation: {playbook: shift-traffic, enabled: true}``;
without it (or with ``enabled: false``) nothing acts. When a **page** alert in ``status.slo``
fires for one version (its scope) while at least one other version in the split in force burns
nothing and has a ready replica, the playbook (:func:`plan_shift`) gives that version's weight to
the healthy versions, in proportion to theirs. The controller (:class:`RemediationController`)
then writes, in one status update, ``status.traffic`` (the split the gateway follows) and
``status.remediation`` (``active: true``, the split replaced as ``previousTraffic``, the alert
acted on, when), records a Warning Event ``ShiftedTraffic`` and an audit record (category
``remediation``). The rollout controller leaves a held split alone; ``modelplane rollout promote``
restores ``previousTraffic`` and ends the hold (Event ``RemediationReleased``).

**rollback** (``{playbook: rollback, enabled: true}``): when a page alert fires for the canary of
a rollout in progress (or paused), the controller sets the annotation ``modelplane rollout abort``
sets, so the rollout controller restores the split in force before the rollout (phase
``Aborted``); it records ``status.remediation`` (``active: false``: nothing is held), a Warning
Event ``RolledBackOnAlert`` and an audit record (action ``rollback``). Applying the Endpoint again
starts the rollout anew.

Rate limit: at most one action per ``cooldown`` (default 10m, scaled by
``MODELPLANE_SLO_TIME_SCALE``) per Endpoint, counted from the last action or release, so an
alert still firing on old samples right after a release does not move the traffic again at once.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelplane.api import ACTION_ANNOTATION, parse_duration
from modelplane.api.errors import Conflict, ModelplaneError
from modelplane.control import (
    Controller,
    Request,
    Result,
    StatusEvent,
    parse_rfc3339,
    rfc3339,
)
from modelplane.sre._controller import time_scale

if TYPE_CHECKING:
    from modelplane.policy import AuditSink
    from modelplane.store import Store


JSON = dict[str, Any]
PLAYBOOKS = ("shift-traffic", "rollback")
#: the phases of a rollout the rollback playbook may abort
_ROLLING = ("Progressing", "Paused")
CATEGORY = "remediation"
DEFAULT_COOLDOWN = "10m"


@dataclass(frozen=True, slots=True)
class Shift:
    """What ``shift-traffic`` would do: move ``bad``'s weight to ``healthy`` versions."""

    alert: JSON
    bad: str
    healthy: tuple[str, ...]
    previous: list[JSON]
    traffic: list[JSON]

    def message(self, endpoint: str) -> str:
        return (
            f"playbook shift-traffic: {endpoint} version {self.bad} pages"
            f" ({self.alert.get('objective')} burns {self.alert.get('longBurn')}x over"
            f" {_long(self.alert)}); traffic {_describe(self.previous)} -> {_describe(self.traffic)}"
        )


def plan_shift(endpoint: Mapping[str, Any], serving: Sequence[str] | None = None) -> Shift | None:
    """The shift the playbook makes now, or None: a page alert scoped to a version that holds
    weight, and another version in the split that burns nothing (no alert of any severity) and
    serves (``serving``: versions with a ready replica or an upstream; default: from
    ``status.replicas``)."""
    status = endpoint.get("status") or {}
    in_force = status.get("traffic") or (endpoint.get("spec") or {}).get("traffic") or []
    split = {str(t["version"]): int(t.get("weight") or 0) for t in in_force if t.get("version")}
    alerts = [a for a in (status.get("slo") or {}).get("alerts") or [] if isinstance(a, dict)]
    burning = {str(a.get("scope")) for a in alerts}
    ready = set(serving) if serving is not None else _ready_versions(status)
    for alert in sorted(alerts, key=lambda a: str(a.get("key"))):
        bad = str(alert.get("scope"))
        if alert.get("severity") != "page" or split.get(bad, 0) <= 0:
            continue
        healthy = [v for v, w in split.items() if w > 0 and v not in burning and v in ready]
        if not healthy:
            continue
        traffic = _spread({v: split[v] for v in healthy})
        previous = [{"version": v, "weight": w} for v, w in split.items()]
        return Shift(dict(alert), bad, tuple(healthy), previous, traffic)
    return None


@dataclass(frozen=True, slots=True)
class Rollback:
    """What ``rollback`` would do: abort the rollout whose ``canary`` pages."""

    alert: JSON
    canary: str
    stable: str

    def message(self, endpoint: str) -> str:
        return (
            f"playbook rollback: {endpoint} canary {self.canary} pages"
            f" ({self.alert.get('objective')} burns {self.alert.get('longBurn')}x over"
            f" {_long(self.alert)}); rollout aborted, traffic back to the split before it"
            f" (stable {self.stable})"
        )


def plan_rollback(endpoint: Mapping[str, Any]) -> Rollback | None:
    """The rollback the playbook makes now, or None: a rollout in progress (or paused) whose
    canary has a page alert scoped to it."""
    status = endpoint.get("status") or {}
    rollout = status.get("rollout") or {}
    if rollout.get("phase") not in _ROLLING or not rollout.get("canary"):
        return None
    canary, stable = str(rollout["canary"]), str(rollout.get("stable") or "")
    alerts = [a for a in (status.get("slo") or {}).get("alerts") or [] if isinstance(a, dict)]
    for alert in sorted(alerts, key=lambda a: str(a.get("key"))):
        if alert.get("severity") == "page" and str(alert.get("scope")) == canary:
            return Rollback(dict(alert), canary, stable)
    return None


def _ready_versions(status: Mapping[str, Any]) -> set[str]:
    return {
        str(r.get("version"))
        for r in status.get("replicas") or []
        if isinstance(r, dict) and r.get("ready")
    }


def _spread(weights: Mapping[str, int]) -> list[JSON]:
    """``weights`` scaled to sum to 100 (the remainder to the heaviest)."""
    total = sum(weights.values())
    scaled = {v: w * 100 // total for v, w in weights.items()}
    heaviest = max(weights, key=lambda v: weights[v])
    scaled[heaviest] += 100 - sum(scaled.values())
    return [{"version": v, "weight": w} for v, w in scaled.items()]


def _describe(traffic: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{t.get('version')} {t.get('weight')}%" for t in traffic) or "nothing"


def _long(alert: Mapping[str, Any]) -> str:
    rule = str(alert.get("rule") or "")
    return rule.split(" over ", 1)[-1].split(" and ", 1)[0] if " over " in rule else "its window"


class RemediationController(Controller):
    """Runs each Endpoint's enabled playbook on its SLO alerts (see the module docstring).

    ``audit``: where each action is recorded (category ``remediation``; none: Events only);
    ``scale``: the cooldown's scale (default: ``MODELPLANE_SLO_TIME_SCALE`` at each look);
    ``clock``: seconds since the epoch.
    """

    kind = "Endpoint"
    name = "remediation-controller"

    def __init__(
        self,
        store: Store,
        *,
        audit: AuditSink | None = None,
        namespace: str | None = None,
        clock: Callable[[], float] = time.time,
        scale: float | None = None,
    ) -> None:
        super().__init__(store, namespace=namespace)
        self.audit = audit
        self.clock = clock
        self.scale = scale

    def reconcile(self, request: Request) -> Result:
        endpoint = self.live_object(request)
        if endpoint is None:
            return Result()
        slo = (endpoint.get("spec") or {}).get("slo") or {}
        playbook = slo.get("remediation") or {}
        status = endpoint.get("status") or {}
        held = status.get("remediation") or {}
        if not playbook.get("enabled") or playbook.get("playbook") not in PLAYBOOKS:
            return Result()
        if held.get("active"):
            return Result()  # holding already; a person releases it
        plan: Shift | Rollback | None
        if playbook.get("playbook") == "rollback":
            plan = plan_rollback(endpoint)
        else:
            plan = plan_shift(endpoint, self._serving(endpoint))
        if plan is None:
            return Result()
        now = self.clock()
        scale = self.scale if self.scale is not None else time_scale()
        cooldown = parse_duration(str(playbook.get("cooldown") or DEFAULT_COOLDOWN)) * scale
        last = max((_seconds(held.get(k)) for k in ("actedAt", "releasedAt")), default=0.0)
        if now < last + cooldown:
            return Result(requeue_after=last + cooldown - now)  # rate-limited
        if isinstance(plan, Rollback):
            return self._rollback(endpoint, plan, now)
        return self._shift(endpoint, plan, now)

    def _rollback(self, endpoint: JSON, plan: Rollback, now: float) -> Result:
        """Ask the rollout controller to abort (the annotation `modelplane rollout abort` sets),
        then record the action: its status, a Warning Event, an audit record."""
        meta = endpoint["metadata"]
        message = plan.message(str(meta["name"]))
        if (meta.get("annotations") or {}).get(ACTION_ANNOTATION) != "abort":
            asked = copy.deepcopy(endpoint)
            asked["metadata"].setdefault("annotations", {})[ACTION_ANNOTATION] = "abort"
            try:
                endpoint = self.store.update(asked)
            except Conflict:
                return Result(requeue=True)  # changed meanwhile: look again
        acted = {"active": False, "alert": plan.alert.get("key"), "actedAt": rfc3339(now)}
        acted["message"] = message + "; apply the Endpoint again to retry the rollout"
        return self._acted(endpoint, "rollback", acted, {}, ("RolledBackOnAlert", message))

    def _serving(self, endpoint: JSON) -> list[str]:
        ready = _ready_versions(endpoint.get("status") or {})
        ns = str(endpoint["metadata"].get("namespace") or "")
        try:
            model = self.store.get("Model", ns, str((endpoint.get("spec") or {}).get("model")))
        except ModelplaneError:
            return sorted(ready)
        for v in (model.get("spec") or {}).get("versions") or []:
            if v.get("format") == "upstream" and v.get("name"):
                ready.add(str(v["name"]))  # an upstream runs no replica
        return sorted(ready)

    def _shift(self, endpoint: JSON, shift: Shift, now: float) -> Result:
        message = shift.message(str(endpoint["metadata"]["name"]))
        acted = {
            "active": True,
            "traffic": shift.traffic,
            "previousTraffic": shift.previous,
            "alert": shift.alert.get("key"),
            "actedAt": rfc3339(now),
            "message": message + "; `modelplane rollout promote` restores the split",
        }
        traffic = {"traffic": shift.traffic}
        return self._acted(endpoint, "shift-traffic", acted, traffic, ("ShiftedTraffic", message))

    def _acted(
        self,
        endpoint: JSON,
        playbook: str,
        acted: JSON,
        status_changes: JSON,
        event: tuple[str, str],
    ) -> Result:
        """Record a playbook's action: ``status.remediation`` (with ``status_changes``) in one
        write, its Warning Event, then its audit record once the write held."""
        meta = endpoint["metadata"]
        name, ns = str(meta["name"]), str(meta.get("namespace") or "")
        status = copy.deepcopy(endpoint.get("status") or {})
        status.update(status_changes)
        status["remediation"] = {"playbook": playbook, **acted}
        reason, message = event
        result = self.write_status(endpoint, status, event=StatusEvent("Warning", reason, message))
        if not result.requeue:
            self._audit(ns, name, message, action=playbook)
        return result

    def _audit(self, ns: str, name: str, message: str, *, action: str) -> None:
        if self.audit is None:
            return
        from modelplane.policy import AuditEvent

        self.audit.append(
            AuditEvent(
                category=CATEGORY,
                principal=f"system:controller:{self.component}",
                action=action,
                resource=f"Endpoint/{ns}/{name}",
                decision="allow",
                namespace=ns,
                reasons=(message,),
            )
        )


def _seconds(text: Any) -> float:
    return parse_rfc3339(str(text)) if text else 0.0
