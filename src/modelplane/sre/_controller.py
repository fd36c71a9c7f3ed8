"""The SLO controller: evaluates each Endpoint's ``spec.slo`` and reports it in ``status.slo``.

Every evaluation period it reads the gateway's request samples of each version the Endpoint
serves (the same ``/v1/_modelplane/samples`` the rollout controller reads), assesses every
objective with the multi-window multi-burn-rate rules (:mod:`modelplane.sre._burn`) and writes
``status.slo``: per objective the SLI, the error budget left, the burn rate over each window and
the alerts that fire; per version its requests, error rate and TTFT p99 over the last hour
(``versions``, what ``modelplane diagnose`` quotes). An alert that starts records a Warning Event
``SLOBurnRate``; one that resolves a Normal Event ``SLOBurnRateResolved``. With ``spec.slo.alertWebhook`` each start and
resolution is POSTed there as JSON, once its host passed the platform's egress rules (the
operator's, as for upstream models: loopback only where allowed).

``MODELPLANE_SLO_TIME_SCALE`` (a number above 0, default 1) multiplies every window, so a demo or
a test sees the hour-long rules act in seconds; the evaluation period is 30 s times the scale
(at least 0.2 s). The gateway keeps a bounded window of samples per version (4096 by default), so
on a busy Endpoint the long windows see only the most recent requests: ``modelplane slo rules``
gives the same rules over the gateway's Prometheus counters, which keep everything.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from modelplane.api import slo_window_seconds
from modelplane.api.errors import ModelplaneError
from modelplane.control import Request, Result, StatusEvent, parse_rfc3339, rfc3339
from modelplane.egress import EgressRules
from modelplane.rollout import GATEWAY_URL_ENV, Sample, SampledController, SampleSource
from modelplane.sre._burn import WINDOWS, Alert, Assessment, assess_endpoint

if TYPE_CHECKING:
    from modelplane.store import Store

log = logging.getLogger("modelplane.sre")

TIME_SCALE_ENV = "MODELPLANE_SLO_TIME_SCALE"
#: seconds between evaluations at scale 1
PERIOD = 30.0
_MIN_PERIOD = 0.2
_WEBHOOK_TIMEOUT = 5.0
#: the window of the per-version figures in status.slo.versions (before scaling)
FIGURES_WINDOW = "1h"

JSON = dict[str, Any]


def time_scale() -> float:
    """The scale of the windows: ``MODELPLANE_SLO_TIME_SCALE``, else 1."""
    text = os.environ.get(TIME_SCALE_ENV, "").strip()
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 1e6:
        log.warning("%s=%r is not a number above 0; using 1", TIME_SCALE_ENV, text)
        return 1.0
    return value


class SLOController(SampledController):
    """Service-level objectives of Endpoints (see the module docstring).

    ``samples``: where request samples come from (default: the gateways in
    ``MODELPLANE_GATEWAY_URL``); ``egress``: the operator's rules for webhook hosts (default: no
    loopback, any other public host); ``scale``: the windows' scale (default: from the
    environment at each evaluation); ``clock``: seconds since the epoch, the samples' time base.
    """

    kind = "Endpoint"
    name = "slo-controller"

    def __init__(
        self,
        store: Store,
        *,
        samples: SampleSource | None = None,
        namespace: str | None = None,
        clock: Callable[[], float] = time.time,
        token: str | None = None,
        egress: EgressRules | None = None,
        scale: float | None = None,
        post: Callable[[str, JSON, str | None], None] | None = None,
    ) -> None:
        super().__init__(store, samples=samples, token=token, namespace=namespace)
        self.egress = egress if egress is not None else EgressRules()
        self.scale = scale
        self.clock = clock
        self._post = post or _post_json

    def reconcile(self, request: Request) -> Result:
        endpoint = self.live_object(request)
        if endpoint is None:
            return Result()
        slo = (endpoint.get("spec") or {}).get("slo")
        status = endpoint.get("status") or {}
        if not slo:
            if "slo" not in status:
                return Result()
            return self.write_status(endpoint, {k: v for k, v in status.items() if k != "slo"})
        scale = self.scale if self.scale is not None else time_scale()
        period = max(_MIN_PERIOD, PERIOD * scale)
        now = self.clock()
        previous: JSON = status.get("slo") or {}
        last = previous.get("evaluatedAt")
        generation = endpoint["metadata"].get("generation")
        if last and previous.get("observedGeneration") == generation:
            due = parse_rfc3339(str(last)) + period
            if now < due:  # woken by a write (ours): not yet time to look again
                return Result(requeue_after=due - now)
        report, alerts = self._evaluate(endpoint, slo, now, scale)
        report["observedGeneration"] = generation
        report["alerts"], started, resolved = _changes(previous, alerts, now, request.name)
        new_status = {**copy.deepcopy(status), "slo": report}
        result = self.write_status(endpoint, new_status, requeue_after=period)
        if not result.requeue:
            self._announce(endpoint, slo, started, resolved)
        return result

    def _evaluate(
        self, endpoint: JSON, slo: Mapping[str, Any], now: float, scale: float
    ) -> tuple[JSON, dict[str, Alert]]:
        report: JSON = {"evaluatedAt": rfc3339(now), "timeScale": scale}
        source = self.sample_source()
        if source is None:
            report["message"] = f"no sample source: set {GATEWAY_URL_ENV} to the gateway's address"
            return report, {}
        meta = endpoint["metadata"]
        ns, name = str(meta.get("namespace") or ""), str(meta["name"])
        horizon = max(slo_window_seconds(str(slo.get("window") or "30d")), WINDOWS["3d"]) * scale
        try:
            versions = _versions(endpoint) or _last_version(self.store, endpoint)
            streams = {v: source.samples(ns, name, v, now - horizon) for v in versions}
        except ModelplaneError as exc:
            report["message"] = f"samples unavailable: {exc}"
            return report, {}
        assessments = assess_endpoint(slo, streams, now, scale=scale)
        report["objectives"] = [_objective(a) for a in assessments]
        since = now - WINDOWS[FIGURES_WINDOW] * scale
        report["versions"] = {v: version_figures(xs, since) for v, xs in streams.items()}
        alerts = {alert.key: alert for a in assessments for alert in a.alerts}
        firing = sorted({a.rule.severity for a in alerts.values()})
        report["message"] = (
            f"{len(alerts)} alert(s) firing ({', '.join(firing)})" if alerts else "no alert firing"
        )
        report["alerts"] = []
        return report, alerts

    def _announce(
        self, endpoint: JSON, slo: Mapping[str, Any], started: list[JSON], resolved: list[JSON]
    ) -> None:
        name = str(endpoint["metadata"]["name"])
        for alert in started:
            self._event(endpoint, "Warning", "SLOBurnRate", str(alert["message"]))
        for alert in resolved:
            message = f"resolved: {alert.get('message')}"
            self._event(endpoint, "Normal", "SLOBurnRateResolved", message)
        url = slo.get("alertWebhook")
        if not url:
            return
        meta = endpoint["metadata"]
        for state, batch in (("firing", started), ("resolved", resolved)):
            for alert in batch:
                payload = {
                    "status": state,
                    "namespace": meta.get("namespace"),
                    "endpoint": name,
                    **alert,
                }
                self._notify(endpoint, str(url), payload)

    def _notify(self, endpoint: JSON, url: str, payload: JSON) -> None:
        try:
            target, host = _checked_url(url, self.egress)
            self._post(target, payload, host)
        except (OSError, httpx.HTTPError, _Refused) as exc:
            message = f"could not deliver the alert to {url}: {exc}"
            self._event(endpoint, "Warning", "SLOWebhookFailed", message)

    def _event(self, endpoint: JSON, type_: str, reason: str, message: str) -> None:
        self.record(endpoint, StatusEvent.of(type_, reason, message))


class _Refused(Exception):
    """A webhook host the egress rules refuse."""


def _checked_url(url: str, rules: EgressRules) -> tuple[str, str | None]:
    """The URL to connect to, every address of its host checked against ``rules``.

    A plain-HTTP URL is rewritten to the address that was checked (its host sent as ``Host``), so
    a name resolving elsewhere at connection time cannot slip through; an HTTPS one keeps its
    name, and its certificate must match it.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    refusal = rules.check_name(host)
    if refusal is None:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            refusal = rules.check(host, address)
            if refusal is not None:
                break
    if refusal is not None:
        raise _Refused(refusal.message().replace("upstream host", "webhook host"))
    if parts.scheme != "http":
        return url, None
    address = addresses[0]
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), parts.netloc


def _post_json(url: str, payload: JSON, host: str | None) -> None:
    headers = {"Host": host} if host else None
    response = httpx.post(url, json=payload, headers=headers, timeout=_WEBHOOK_TIMEOUT)
    if response.status_code >= 300:
        raise OSError(f"it answered {response.status_code}")


def _versions(endpoint: JSON) -> list[str]:
    """The versions the Endpoint serves or served lately: the split in force or wanted, and
    every version a replica runs (a rolled-back canary's requests still count)."""
    status = endpoint.get("status") or {}
    spec = endpoint.get("spec") or {}
    found: list[str] = []
    for target in (status.get("traffic") or []) + (spec.get("traffic") or []):
        if isinstance(target, dict) and target.get("version"):
            found.append(str(target["version"]))
    for replica in status.get("replicas") or []:
        if isinstance(replica, dict) and replica.get("version"):
            found.append(str(replica["version"]))
    return list(dict.fromkeys(found))


def _last_version(store: Store, endpoint: JSON) -> list[str]:
    """No split named and no replica: the Model's last version takes everything (an upstream)."""
    ns = str(endpoint["metadata"].get("namespace") or "")
    try:
        model = store.get("Model", ns, str((endpoint.get("spec") or {}).get("model")))
    except ModelplaneError:
        return []
    versions = (model.get("spec") or {}).get("versions") or []
    return [str(versions[-1]["name"])] if versions and versions[-1].get("name") else []


def version_figures(samples: Sequence[Sample], since: float) -> JSON:
    """One version's requests after ``since``: how many, the share failed, the TTFT p99 (s)."""
    recent = [x for x in samples if x.t > since]
    ttfts = sorted(x.ttft_s for x in recent if x.ttft_s is not None and not x.error)
    p99 = ttfts[min(len(ttfts) - 1, math.ceil(0.99 * len(ttfts)) - 1)] if ttfts else None
    errors = sum(1 for x in recent if x.error)
    return {
        "window": FIGURES_WINDOW,
        "requests": len(recent),
        "errorRate": _round(errors / len(recent)) if recent else None,
        "ttftP99": _round(p99),
    }


def _objective(a: Assessment) -> JSON:
    return {
        "name": a.objective.name,
        "objective": a.objective.spec,
        "target": a.objective.target,
        "sli": _round(a.sli),
        "events": a.events,
        "budgetLeft": _round(a.budget_left),
        "burnRates": {k: _round(v) for k, v in a.burns.items()},
    }


def _changes(
    previous: JSON, alerts: Mapping[str, Alert], now: float, endpoint: str
) -> tuple[list[JSON], list[JSON], list[JSON]]:
    """The alerts to report (each keeping when it started), the new ones, and those resolved."""
    before = {str(a.get("key")): a for a in previous.get("alerts") or [] if isinstance(a, dict)}
    reported: list[JSON] = []
    new: list[JSON] = []
    for key, alert in sorted(alerts.items()):
        held = before.get(key)
        entry = {
            "key": key,
            "objective": alert.objective,
            "severity": alert.rule.severity,
            "rule": alert.rule.describe(),
            "scope": alert.scope,
            "longBurn": _round(alert.long_burn),
            "shortBurn": _round(alert.short_burn),
            "since": held.get("since") if held else rfc3339(now),
            "message": alert.message(endpoint),
        }
        reported.append(entry)
        if held is None:
            new.append(entry)
    resolved = [a for key, a in sorted(before.items()) if key not in alerts]
    return reported, new, resolved


def _round(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return 1e300  # JSON has no infinity: an objective that allows no error, broken
    return float(f"{value:.4g}")
