"""Service-level objectives of Endpoints: burn-rate alerts, their controller, rules and faults.

Owns: ``Endpoint.status.slo`` and the ``SLOBurnRate`` Events (:class:`SLOController`); the
objectives and the multi-window multi-burn-rate rules as pure computation (:func:`objectives`,
:func:`assess`, :func:`assess_endpoint`, :func:`alert_rules`); the same rules as Prometheus
recording and alerting rules over the gateway's metrics (:func:`prometheus_rules`); and the
fault-injection suite in simulated time (:func:`suite`).

Also: diagnosis, analyzers over objects' status naming cause, evidence and fix
(:func:`diagnose`, run by ``modelplane diagnose``); remediation playbooks bound to the alerts
(:class:`RemediationController`, the ``shift-traffic`` playbook :func:`plan_shift`), off unless an
Endpoint enables one in ``spec.slo.remediation``.

Must not touch: ``spec`` of any object; status fields other than ``slo``, except the playbook's
``traffic`` and ``remediation`` (the rollout controller leaves a held split alone); or the
gateway's internals (samples are read over HTTP with ``modelplane.rollout``'s sample sources).
Cost accounting is not built yet. Also: Prometheus' HTTP service discovery of every replica's and
component's ``/metrics`` (:func:`targets_route`, :func:`metrics_targets`).

Example::

    from modelplane.rollout import RecordedSamples
    from modelplane.sre import assess_endpoint

    recorded = RecordedSamples.load("samples.json")   # saved from /v1/_modelplane/samples
    streams = {v: recorded.samples("default", "chat", v, 0) for v in ("v1", "v2")}
    for a in assess_endpoint({"availability": 0.999}, streams, now=time.time()):
        print(a.objective.name, a.sli, a.burns, [x.message("chat") for x in a.alerts])
"""

from modelplane.sre._burn import (
    WINDOWS,
    Alert,
    AlertRule,
    Assessment,
    Objective,
    alert_rules,
    assess,
    assess_endpoint,
    burn_rate,
    objectives,
    sample_counts,
)
from modelplane.sre._controller import TIME_SCALE_ENV, SLOController, time_scale
from modelplane.sre._cost import CostReport, cost_report
from modelplane.sre._diagnose import ANALYZERS, Finding, diagnose
from modelplane.sre._faults import suite
from modelplane.sre._remediate import (
    RemediationController,
    Rollback,
    Shift,
    plan_rollback,
    plan_shift,
)
from modelplane.sre._rules import BUCKETS, METRICS, prometheus_rules
from modelplane.sre._targets import TARGETS_PATH, metrics_targets, targets_openapi, targets_route

__all__ = [
    "ANALYZERS",
    "BUCKETS",
    "METRICS",
    "TARGETS_PATH",
    "TIME_SCALE_ENV",
    "WINDOWS",
    "Alert",
    "AlertRule",
    "Assessment",
    "CostReport",
    "Finding",
    "Objective",
    "RemediationController",
    "Rollback",
    "SLOController",
    "Shift",
    "alert_rules",
    "assess",
    "assess_endpoint",
    "burn_rate",
    "cost_report",
    "diagnose",
    "metrics_targets",
    "objectives",
    "plan_rollback",
    "plan_shift",
    "prometheus_rules",
    "sample_counts",
    "suite",
    "targets_openapi",
    "targets_route",
    "time_scale",
]
