"""The replica autoscaler: a controller that sets ``status.autoscaling.desiredReplicas``.

For every Endpoint with ``spec.replicas.autoscaling`` it reads the metric from each ready replica's
``/metrics`` every ``interval`` seconds (:mod:`._scrape`), feeds the sum to the Endpoint's
:class:`~._kpa.KPA` and writes the decision and its inputs to ``status.autoscaling``
(``desiredReplicas``, ``metric``, ``observed``, ``readyReplicas``, ``mode``, ``lastScaleTime``,
``message``), with an Event ``ScaledUp`` / ``ScaledDown`` when the count changes and
``PanicStarted`` / ``PanicEnded`` when only the mode does. The node agents run that many replicas
per version in traffic. The gateway's demand annotation counts as traffic (so a scaled-to-zero
Endpoint is not sent back to zero while it wakes). Without ``autoscaling`` the controller clears
its part of the status and leaves the node agent's own rule in force.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from typing import Any

from modelplane.api import DEMAND_ANNOTATION
from modelplane.autoscaling._kpa import KPA, Decision, ScalingPolicy
from modelplane.autoscaling._scrape import Reading, metrics_url, per_replica, scrape
from modelplane.control import Controller, Request, Result, StatusEvent, rfc3339
from modelplane.store import Store

JSON = dict[str, Any]


class ReplicaAutoscaler(Controller):
    """Scales Endpoints with ``spec.replicas.autoscaling`` (module docstring).

    ``interval``: seconds between reads of the replicas' metrics (Knative ticks every 2 s);
    ``scrape_timeout``: seconds a replica has to answer; ``clock``: monotonic seconds (a test
    drives it); ``wall``: Unix seconds, to read the gateway's demand annotation.
    """

    kind = "Endpoint"
    name = "replica-autoscaler"

    def __init__(
        self,
        store: Store,
        *,
        interval: float = 2.0,
        scrape_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(store)
        self.interval = interval
        self.clock = clock
        self.wall = wall
        self.scrape_timeout = scrape_timeout
        self._scalers: dict[tuple[str, str], tuple[str, ScalingPolicy, KPA]] = {}
        self._readings: dict[str, Reading] = {}

    def reconcile(self, request: Request) -> Result | None:
        key = (request.namespace, request.name)
        endpoint = self.live_object(request)
        policy = None
        if endpoint is not None:
            policy = ScalingPolicy.of(((endpoint.get("spec") or {}).get("replicas")) or {})
        if endpoint is None or policy is None:
            self._scalers.pop(key, None)
            status: JSON = (endpoint or {}).get("status") or {}
            if endpoint is not None and "autoscaling" in status:
                cleared = {k: v for k, v in status.items() if k != "autoscaling"}
                return self.write_status(endpoint, cleared)
            return None
        kpa = self._scaler(key, endpoint, policy)
        now = self.clock()
        self._demand(endpoint, kpa, now)
        ready = [r for r in (endpoint.get("status") or {}).get("replicas") or [] if r.get("ready")]
        if kpa.last_sample is None or now - kpa.last_sample >= self.interval * 0.9:
            self._sample(kpa, ready, now)
        decision = kpa.decide(now, len(ready))
        return self._write(endpoint, decision, policy)

    def _scaler(self, key: tuple[str, str], endpoint: JSON, policy: ScalingPolicy) -> KPA:
        """The Endpoint's KPA; a new one when the Endpoint was recreated or its policy changed."""
        uid = str(endpoint["metadata"].get("uid") or "")
        held = self._scalers.get(key)
        if held is None or held[0] != uid or held[1] != policy:
            kpa = KPA(policy, self.clock())
            previous = ((endpoint.get("status") or {}).get("autoscaling") or {}).get(
                "desiredReplicas"
            )
            if isinstance(previous, int):  # a restarted controller starts where it left off
                kpa.desired = max(0, min(policy.max_replicas, previous))
            held = (uid, policy, kpa)
            self._scalers[key] = held
        return held[2]

    def _demand(self, endpoint: JSON, kpa: KPA, now: float) -> None:
        demand = (endpoint["metadata"].get("annotations") or {}).get(DEMAND_ANNOTATION)
        with contextlib.suppress(TypeError, ValueError):
            kpa.saw_traffic(now - max(0.0, self.wall() - float(str(demand))))

    def _sample(self, kpa: KPA, ready: list[JSON], now: float) -> None:
        urls = [u for r in ready if (u := metrics_url(str(r.get("url") or "")))]
        readings = scrape(urls, kpa.policy.metric, now, self.scrape_timeout)
        values = []
        for url, reading in readings.items():
            value = per_replica(self._readings.get(url), reading)
            self._readings[url] = reading
            if value is not None:
                values.append(value)
        # replicas come and go (a new port each time): forget the readings of gone ones
        horizon = now - 10 * self.interval
        self._readings = {u: r for u, r in self._readings.items() if r.time >= horizon}
        if values:
            kpa.record(now, sum(values), len(values))
        elif not ready:
            kpa.record(now, 0.0, 0)

    def _write(self, endpoint: JSON, decision: Decision, policy: ScalingPolicy) -> Result:
        status = copy.deepcopy(endpoint.get("status") or {})
        before: JSON = status.get("autoscaling") or {}
        changed = before.get("desiredReplicas") != decision.desired
        status["autoscaling"] = {
            "desiredReplicas": decision.desired,
            "metric": policy.metric,
            "observed": decision.observed,
            "readyReplicas": decision.ready,
            "mode": decision.mode,
            "lastScaleTime": rfc3339(self.wall()) if changed else before.get("lastScaleTime"),
            "message": decision.message,
        }
        event = None
        if changed and "desiredReplicas" in before:
            up = decision.desired > int(before["desiredReplicas"])
            event = StatusEvent(
                "Normal",
                "ScaledUp" if up else "ScaledDown",
                f"{before['desiredReplicas']} -> {decision.desired} replicas ({decision.mode}):"
                f" {decision.message}",
            )
        elif before.get("mode") not in (None, decision.mode):
            reason = "PanicStarted" if decision.mode == "panic" else "PanicEnded"
            event = StatusEvent("Normal", reason, decision.message)
        return self.write_status(endpoint, status, event=event, requeue_after=self.interval)
