"""The burn-rate alerts as Prometheus recording and alerting rules over the gateway's metrics.

The gateway exports ``modelplane_gateway_requests_total{model,version,code}`` (``model`` is the
Endpoint's name, ``namespace/name`` outside ``default``) and the histogram
``modelplane_gateway_time_to_first_token_seconds`` (same labels). For each Endpoint with
``spec.slo``, each objective gets one recording rule per window (the share of bad requests) and
one alerting rule per burn-rate rule, with the same thresholds and minimum-event guard as the SLO
controller. A ``tpot`` objective has no rule: the gateway exports no per-request time per output
token histogram yet. A TTFT threshold between two of the histogram's buckets is counted at the
bucket below it (stricter), and the rule's annotation says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from modelplane.api import slo_window_seconds
from modelplane.sre._burn import WINDOWS, Objective, alert_rules, objectives

REQUESTS = "modelplane_gateway_requests_total"
TTFT = "modelplane_gateway_time_to_first_token_seconds"
#: the bucket bounds of the gateway's latency histograms (a test holds them equal)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: the metric names the rules read
METRICS = (REQUESTS, f"{TTFT}_bucket", f"{TTFT}_count")


def _selector(model: str, extra: str = "") -> str:
    escaped = model.replace("\\", "\\\\").replace('"', '\\"')
    return f'{{model="{escaped}"{extra}}}'


def _bucket(threshold: float) -> float | None:
    below = [b for b in BUCKETS if b <= threshold + 1e-12]
    return below[-1] if below else None


def _bad_ratio(objective: Objective, model: str, window: str) -> tuple[str, str] | None:
    """The PromQL share of bad requests over ``window``, and a note; None: not expressible."""
    sel = _selector(model)
    if objective.name in ("availability", "errorRate"):
        errors = _selector(model, ',code=~"5.."')
        bad = f"sum(rate({REQUESTS}{errors}[{window}]))"
        return f"{bad} / sum(rate({REQUESTS}{sel}[{window}]))", "5xx answers count as bad"
    if objective.name == "ttftP99" and objective.threshold_s is not None:
        bound = _bucket(objective.threshold_s)
        if bound is None:
            return None
        within = _selector(model, f',le="{bound}"')
        good = f"sum(rate({TTFT}_bucket{within}[{window}]))"
        note = f"first token later than {bound:g}s counts as bad"
        if bound != objective.threshold_s:
            note += (
                f" (the histogram bucket at or below the objective's {objective.threshold_s:g}s)"
            )
        return f"1 - ({good} / sum(rate({TTFT}_count{sel}[{window}])))", note
    return None


def _record(model: str, objective: Objective, window: str) -> str:
    name = model.replace("/", ":").replace("-", "_").replace(".", "_")
    return f"modelplane:slo_{objective.name.lower()}_bad:ratio_rate{window}:{name}"


def endpoint_rules(namespace: str, name: str, slo: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rule groups for one Endpoint's ``spec.slo`` (JSON form)."""
    model = name if namespace in ("", "default") else f"{namespace}/{name}"
    window_s = slo_window_seconds(str(slo.get("window") or "30d"))
    min_events = int(slo.get("minEvents") or 100)
    groups: list[dict[str, Any]] = []
    for objective in objectives(slo):
        ratios = {w: _bad_ratio(objective, model, w) for w in WINDOWS}
        if any(r is None for r in ratios.values()):
            continue
        rules: list[dict[str, Any]] = []
        notes: dict[str, str] = {}
        for window, ratio in ratios.items():
            assert ratio is not None
            rules.append({"record": _record(model, objective, window), "expr": ratio[0]})
            notes[window] = ratio[1]
        for rule in alert_rules(window_s):
            threshold = f"{rule.burn:g} * {objective.budget:.6g}"
            guard = f"sum(increase({REQUESTS}{_selector(model)}[{rule.long}])) >= {min_events}"
            long_rec = _record(model, objective, rule.long)
            short_rec = _record(model, objective, rule.short)
            rules.append(
                {
                    "alert": "ModelplaneSLOBurnRate",
                    "expr": f"({long_rec} > {threshold}) and ({short_rec} > {threshold})"
                    f" and on() ({guard})",
                    "labels": {
                        "severity": rule.severity,
                        "endpoint": name,
                        "namespace": namespace or "default",
                        "objective": objective.name,
                        "window": rule.long,
                    },
                    "annotations": {
                        "summary": f"{model}: {objective.name} ({objective.spec}) burns its error"
                        f" budget faster than {rule.describe()}",
                        "counting": notes[rule.long],
                    },
                }
            )
        groups.append({"name": f"modelplane-slo:{model}:{objective.name}", "rules": rules})
    return groups


def prometheus_rules(endpoints: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A Prometheus rule file (``{"groups": [...]}``) for every Endpoint with ``spec.slo``."""
    groups: list[dict[str, Any]] = []
    for endpoint in endpoints:
        slo = (endpoint.get("spec") or {}).get("slo")
        if not slo:
            continue
        meta = endpoint.get("metadata") or {}
        groups.extend(
            endpoint_rules(str(meta.get("namespace") or "default"), str(meta["name"]), slo)
        )
    return {"groups": groups}
