"""Diagnosis: analyzers that read objects' status and name causes and fixes.

Pure computation over the objects as the API returns them (plain dicts), so the CLI
(``modelplane diagnose``) runs it on what the caller may read, and tests on hand-made objects.
Each :class:`Finding` has a severity (``critical``, ``warning``), the object, the cause, the
evidence (the condition, the figures) and the fix. The analyzers:

* **ResourceClaim**: ``Allocated`` condition false for a reason other than waiting (unschedulable:
  no device matches, or none is free);
* **Endpoint replicas**: a replica not ready; one whose worker restarted 3 times or more is
  crash-looping (its message counts the restarts);
* **Endpoint rollout**: ``status.rollout`` rolled back, paused after a failed analysis, or
  waiting for a canary replica;
* **Endpoint SLO**: each firing alert of ``status.slo``; an alert scoped to a version names it and
  the versions that burn nothing, and proposes the ``shift-traffic`` playbook or a rollback; a
  playbook's hold (``status.remediation``) is reported with how to undo it;
* **Model**: ``Ready`` false because an artifact failed verification (``ArtifactTampered``,
  ``Signature*``, ``Digest*``);
* **Agent**: ``Ready`` false (its code could not be loaded); and its instances as the agents API
  lists them (kind ``AgentInstance``): ``failed`` or ``corrupt`` ones, and ``running`` ones that
  committed nothing for :data:`STUCK_AFTER` seconds (stuck);
* **Policy denials**: the audit log's denials (kind ``AuditRecord``, as ``/audit/records`` lists
  them: administrators only), grouped by principal and action; :data:`DENIAL_SPIKE` or more of one
  group is a spike: an agent retrying what policy forbids, or a policy that forbids too much.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

JSON = dict[str, Any]
#: restarts after which a replica counts as crash-looping
CRASH_LOOP_RESTARTS = 3
#: Model Ready reasons that mean an artifact failed verification
VERIFICATION_REASONS = re.compile(r"^(ArtifactTampered|Signature\w+|Digest\w+)$")
_RESTARTS = re.compile(r"restart (\d+)")
_WAITING = ("WaitingForClaims", "Allocated", "Pending")
#: seconds a running agent instance may go without a committed step before it counts as stuck
STUCK_AFTER = 600.0
#: denials of one principal's action (in what the caller read: the last hour) that make a spike
DENIAL_SPIKE = 20


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found: how bad, where, why, what shows it, what to do."""

    severity: str
    object: str
    cause: str
    evidence: str
    fix: str

    def to_json(self) -> JSON:
        return asdict(self)


def diagnose(
    objects: Mapping[str, Sequence[Mapping[str, Any]]], *, now: float | None = None
) -> list[Finding]:
    """Every finding over ``objects`` (kind -> list of objects; ``AgentInstance``: instances as
    the agents API lists them), critical first. ``now``: seconds since the epoch."""
    found: list[Finding] = []
    for kind, items in objects.items():
        for analyzer in ANALYZERS.get(kind, ()):
            for obj in items:
                found.extend(analyzer(obj))
    when = time.time() if now is None else now
    for instance in objects.get("AgentInstance", ()):
        found.extend(agent_instance(instance, when))
    found.extend(denial_spikes(objects.get("AuditRecord", ())))
    order = {"critical": 0, "warning": 1}
    return sorted(found, key=lambda f: (order.get(f.severity, 2), f.object))


def _ref(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def claims(claim: Mapping[str, Any]) -> Iterable[Finding]:
    """An unschedulable ResourceClaim."""
    c = _condition(claim, "Allocated")
    if c is None or c.get("status") != "False" or c.get("reason") in _WAITING:
        return []
    return [
        Finding(
            "warning",
            _ref(claim),
            f"not schedulable ({c.get('reason')})",
            f"condition Allocated=False reason {c.get('reason')}: {c.get('message')}",
            "free or add devices that match the request (`modelplane get resourceslices`), or"
            " relax its selectors or count",
        )
    ]


def replicas(endpoint: Mapping[str, Any]) -> Iterable[Finding]:
    """Replicas that do not serve, crash-looping ones as critical."""
    out: list[Finding] = []
    for r in (endpoint.get("status") or {}).get("replicas") or []:
        if not isinstance(r, dict) or r.get("ready"):
            continue
        message = str(r.get("message") or "no message")
        restarts = max((int(n) for n in _RESTARTS.findall(message)), default=0)
        where = f"replica {r.get('name')} of version {r.get('version')} on {r.get('node') or '?'}"
        if restarts >= CRASH_LOOP_RESTARTS:
            out.append(
                Finding(
                    "critical",
                    _ref(endpoint),
                    f"{where} is crash-looping ({restarts} restarts)",
                    message,
                    "read the worker's log under the node agent's home; fix the artifact or the"
                    " Endpoint's config, or roll back the version",
                )
            )
        else:
            out.append(
                Finding(
                    "warning",
                    _ref(endpoint),
                    f"{where} is not ready",
                    message,
                    "wait for it to start, or see `modelplane describe` for its Events",
                )
            )
    return out


def rollout(endpoint: Mapping[str, Any]) -> Iterable[Finding]:
    """A rollout that failed or is stuck."""
    state = (endpoint.get("status") or {}).get("rollout") or {}
    phase, message = state.get("phase"), str(state.get("message") or "")
    canary = state.get("canary")
    if phase == "RolledBack":
        fix = f"fix version {canary}, then set spec.traffic again to roll it out"
        return [
            Finding("warning", _ref(endpoint), f"rollout of {canary} rolled back", message, fix)
        ]
    if phase == "Paused":
        return [
            Finding(
                "warning",
                _ref(endpoint),
                f"rollout of {canary} failed analysis and is paused",
                message,
                f"`modelplane rollout abort {_name(endpoint)}` or `modelplane rollout promote"
                f" {_name(endpoint)}`",
            )
        ]
    if phase == "Progressing" and "waiting for a ready replica" in message:
        return [
            Finding(
                "warning",
                _ref(endpoint),
                f"rollout of {canary} is stuck: no ready replica of it",
                message,
                "see the replicas' messages and the claims' conditions above",
            )
        ]
    return []


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name"))


def slo(endpoint: Mapping[str, Any]) -> Iterable[Finding]:
    """Firing SLO alerts, one finding per objective and scope (its strongest alert)."""
    status = endpoint.get("status") or {}
    spec_slo = (endpoint.get("spec") or {}).get("slo") or {}
    alerts = [a for a in (status.get("slo") or {}).get("alerts") or [] if isinstance(a, dict)]
    out: list[Finding] = _held(endpoint)
    strongest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for a in alerts:
        key = (str(a.get("objective")), str(a.get("scope")))
        held = strongest.get(key)
        if held is None or _weight(a) > _weight(held):
            strongest[key] = a
    burning = {str(a.get("scope")) for a in alerts}
    split = status.get("traffic") or (endpoint.get("spec") or {}).get("traffic") or []
    healthy = [str(t["version"]) for t in split if t.get("weight") and t["version"] not in burning]
    explained = {objective for objective, scope in strongest if scope != "endpoint"}
    for (objective, scope), strong in sorted(strongest.items()):
        if scope == "endpoint" and objective in explained:
            continue  # a version's own alert says more: the Endpoint burns because it does
        out.append(_slo_finding(endpoint, spec_slo, objective, scope, strong, healthy))
    return out


def _weight(alert: Mapping[str, Any]) -> tuple[bool, float]:
    return alert.get("severity") == "page", float(alert.get("longBurn") or 0)


def _slo_finding(
    endpoint: Mapping[str, Any],
    spec_slo: Mapping[str, Any],
    objective: str,
    scope: str,
    alert: Mapping[str, Any],
    healthy: list[str],
) -> Finding:
    name = _name(endpoint)
    figures: Mapping[str, Any] = ((endpoint.get("status") or {}).get("slo") or {}).get(
        "versions"
    ) or {}
    target = spec_slo.get(objective)
    what = f"{objective} {target}" if target is not None else objective
    rule = str(alert.get("rule") or "")
    windows = rule.split(" over ", 1)[1] if " over " in rule else "its windows"
    subject = f"version {scope}'s" if scope != "endpoint" else "its"
    measured = _measured(objective, figures.get(scope) or {})
    cause = (
        f"{subject} {measured or objective} exceeds the objective ({what}); burn"
        f" {alert.get('longBurn')}x and {alert.get('shortBurn')}x over {windows}"
        f" ({alert.get('severity')})"
    )
    evidence = f"{alert.get('message')} since {alert.get('since')}"
    if scope != "endpoint" and healthy:
        others = ", ".join(
            f"{v} ({_measured(objective, figures.get(v) or {})})"
            if _measured(objective, figures.get(v) or {})
            else v
            for v in healthy
        )
        enabled = ((spec_slo.get("remediation") or {}).get("enabled")) is True
        held = ((endpoint.get("status") or {}).get("remediation") or {}).get("active") is True
        playbook = (
            "done: playbook shift-traffic holds the split"
            if held
            else "the enabled playbook shift-traffic acts on it"
            if enabled
            else "enable spec.slo.remediation {playbook: shift-traffic, enabled: true}"
        )
        fix = (
            f"{others} {'is' if len(healthy) == 1 else 'are'} healthy: shift traffic to"
            f" {', '.join(healthy)} ({playbook}) or roll back {scope} (set spec.traffic without it)"
        )
    elif scope != "endpoint":
        fix = f"no other version is healthy: roll back {scope} or add capacity"
    else:
        fix = f"see `modelplane slo status {name}` and the replicas; roll back the last change"
    severity = "critical" if alert.get("severity") == "page" else "warning"
    return Finding(severity, _ref(endpoint), cause, evidence, fix)


def _measured(objective: str, figures: Mapping[str, Any]) -> str:
    """What the SLO controller measured of ``objective`` over the last hour, in words."""
    window = figures.get("window") or "1h"
    if objective == "ttftP99" and figures.get("ttftP99") is not None:
        return f"TTFT p99 {_duration(float(figures['ttftP99']))} over the last {window}"
    if objective in ("availability", "errorRate") and figures.get("errorRate") is not None:
        return f"error rate {float(figures['errorRate']) * 100:.2f}% over the last {window}"
    return ""


def _duration(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def _held(endpoint: Mapping[str, Any]) -> list[Finding]:
    held = (endpoint.get("status") or {}).get("remediation") or {}
    if not held.get("active"):
        return []
    return [
        Finding(
            "warning",
            _ref(endpoint),
            f"remediation playbook {held.get('playbook')} holds the traffic split",
            f"{held.get('message')} at {held.get('actedAt')}",
            f"once the version is fixed, `modelplane rollout promote {_name(endpoint)}` restores"
            " the previous split",
        )
    ]


def models(model: Mapping[str, Any]) -> Iterable[Finding]:
    """A Model whose artifact failed verification."""
    c = _condition(model, "Ready")
    if (
        c is None
        or c.get("status") != "False"
        or not VERIFICATION_REASONS.match(str(c.get("reason") or ""))
    ):
        return []
    versions = [
        f"{v.get('name')}: {v.get('message')}"
        for v in (model.get("status") or {}).get("versions") or []
        if isinstance(v, dict) and not v.get("ready") and v.get("message")
    ]
    return [
        Finding(
            "critical",
            _ref(model),
            f"an artifact failed verification ({c.get('reason')})",
            "; ".join(versions) or str(c.get("message")),
            "do not serve it: re-import the artifact from a trusted source and check its digest"
            " and signature (`modelplane models verify`)",
        )
    ]


def agents(agent: Mapping[str, Any]) -> Iterable[Finding]:
    """An Agent whose code could not be loaded."""
    c = _condition(agent, "Ready")
    if c is None or c.get("status") != "False":
        return []
    return [
        Finding(
            "warning",
            _ref(agent),
            f"not ready ({c.get('reason')}): its instances do not run",
            str(c.get("message")),
            "fix its bundle or entrypoint (`modelplane describe agent`), then apply it again",
        )
    ]


def agent_instance(instance: Mapping[str, Any], now: float) -> Iterable[Finding]:
    """A failed, corrupt or stuck agent instance."""
    ref = f"AgentInstance/{instance.get('agent')}/{instance.get('id')}"
    status = instance.get("status")
    if status in ("failed", "corrupt"):
        fix = (
            "read its journal (`GET /agents/<namespace>/<agent>/instances/<id>/journal`), fix the"
            " agent, and create a new instance"
        )
        severity = "critical" if status == "corrupt" else "warning"
        return [Finding(severity, ref, f"{status}", str(instance.get("error") or status), fix)]
    updated = instance.get("updated")
    if status == "running" and isinstance(updated, int | float) and now - updated > STUCK_AFTER:
        idle = now - float(updated)
        return [
            Finding(
                "warning",
                ref,
                f"stuck: running, nothing committed for {idle / 60:.0f} min",
                f"status running, last update {idle:.0f} s ago",
                "check that an agent worker holds its shard (`modelplane agent-worker`) and that"
                " the model and tools it calls answer; cancel it if it cannot go on",
            )
        ]
    return []


def denial_spikes(records: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """A spike of policy denials per (principal, action): :data:`DENIAL_SPIKE` or more."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in records:
        if r.get("decision") == "deny":
            groups.setdefault((str(r.get("principal")), str(r.get("action"))), []).append(r)
    found = []
    for (principal, action), denied in sorted(groups.items()):
        if len(denied) < DENIAL_SPIKE:
            continue
        resources = sorted({str(r.get("resource")) for r in denied})
        policies = sorted({str(p) for r in denied for p in r.get("policies") or ()})
        reason = next((str(x) for r in denied for x in r.get("reasons") or ()), "")
        found.append(
            Finding(
                "warning",
                principal,
                f"{len(denied)} denials of {action} (a spike)",
                f"on {', '.join(resources[:5])}{' and more' if len(resources) > 5 else ''};"
                f" by {', '.join(policies) or 'no permit'}" + (f": {reason}" if reason else ""),
                "if the caller should be allowed, grant it in a runtime Policy; if not, fix"
                " the caller (an agent retrying what policy forbids burns its turns)",
            )
        )
    return found


ANALYZERS: dict[str, tuple[Callable[[Mapping[str, Any]], Iterable[Finding]], ...]] = {
    "ResourceClaim": (claims,),
    "Endpoint": (replicas, rollout, slo),
    "Model": (models,),
    "Agent": (agents,),
}
