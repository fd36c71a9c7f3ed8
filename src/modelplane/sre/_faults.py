"""The fault-injection suite: faults on a simulated Endpoint, judged by the burn-rate rules.

Pure computation in simulated time: requests arrive at ``rps`` per second, split between
versions; each step (``STEP`` seconds) draws how many arrived and how many of them failed or were
slow, and the rules of :mod:`modelplane.sre._burn` are evaluated at the end of every step, as the
SLO controller would (on the Endpoint and on each version). Each run has ``HISTORY`` of healthy
traffic before its fault, so the long windows hold good requests, as a service's do; alerts in
its first ``WARMUP`` (windows still nearly empty) are counted apart as cold-start alarms.

The simulated Endpoint's objectives: availability 99.9% and TTFT p99 within 500 ms; healthy
traffic fails 0.05% of requests (half the budget) with a log-normal TTFT of median 150 ms
(sigma 0.4, about 0.13% of requests over 500 ms).

Scenarios: a bad canary (a new version at 10% of the traffic failing 2%), TTFT +300 ms on every
request, one failing replica of four (25% of requests fail), a canary that receives no traffic
(must stay without alert: inconclusive), and healthy controls (any alert is a false alarm).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelplane.sre._burn import Alert, Counts, Objective, assess

STEP = 15.0
HISTORY = 2 * 3600.0
#: the first part of the history, while the windows fill: alerts then are cold-start alarms,
#: counted apart (a controller that starts with empty windows sees them too; see docs/slo.md)
WARMUP = 3600.0
#: how long after its fault a run waits for an alert
HORIZON = 2 * 3600.0
SLO: dict[str, Any] = {"availability": 0.999, "ttftP99": "500ms", "minEvents": 100}
OBJECTIVES = (Objective("availability", 0.999, spec="99.9%"), Objective("ttftP99", 0.99, 0.5))
HEALTHY_ERRORS = 0.0005
TTFT_MEDIAN, TTFT_SIGMA, TTFT_LIMIT = 0.150, 0.4, 0.5

#: a stream's behaviour: (share of the traffic, P(fail), P(TTFT over the limit)) at time t
Behaviour = Callable[[float], tuple[float, float, float]]


def _slow(shift: float = 0.0) -> float:
    """P(TTFT > limit) for a log-normal TTFT plus ``shift`` seconds."""
    room = TTFT_LIMIT - shift
    if room <= 0:
        return 1.0
    z = math.log(room / TTFT_MEDIAN) / TTFT_SIGMA
    return 0.5 * math.erfc(z / math.sqrt(2))


HEALTHY_SLOW = _slow()


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 50:  # normal approximation: exact enough, and the draw stays cheap
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


@dataclass
class _Stream:
    """Prefix sums of counted and bad requests per objective, one entry per step."""

    behaviour: Behaviour
    events: list[int] = field(default_factory=lambda: [0])
    bad: list[list[int]] = field(default_factory=lambda: [[0] for _ in OBJECTIVES])

    def step(self, rng: random.Random, t: float, rps: float) -> None:
        share, p_fail, p_slow = self.behaviour(t)
        n = _poisson(rng, rps * share * STEP)
        self.events.append(self.events[-1] + n)
        for i, p in enumerate((p_fail, max(p_slow, p_fail))):
            self.bad[i].append(self.bad[i][-1] + min(n, _poisson(rng, n * p)))

    def counts(self, objective: int) -> Callable[[float], Counts]:
        now = len(self.events) - 1

        def counts(seconds: float) -> Counts:
            back = max(0, now - round(seconds / STEP))
            bad = self.bad[objective]
            return self.events[now] - self.events[back], bad[now] - bad[back]

        return counts


@dataclass(frozen=True)
class Scenario:
    """A fault (or none) and the streams it acts on."""

    name: str
    fault: bool
    streams: dict[str, Behaviour]


def _after(fault_at: float, before: float, after: float) -> Callable[[float], float]:
    return lambda t: after if t >= fault_at else before


def scenarios() -> list[Scenario]:
    """The suite's scenarios, each with its fault at ``HISTORY``."""
    at = HISTORY
    healthy: Behaviour = lambda t: (1.0, HEALTHY_ERRORS, HEALTHY_SLOW)  # noqa: E731
    canary_share = _after(at, 0.0, 0.1)
    return [
        Scenario(
            "bad-canary",
            True,
            {
                "v1": lambda t: (1.0 - canary_share(t), HEALTHY_ERRORS, HEALTHY_SLOW),
                "v2": lambda t: (canary_share(t), 0.02, HEALTHY_SLOW),
            },
        ),
        Scenario(
            "ttft-plus-300ms",
            True,
            {"v1": lambda t: (1.0, HEALTHY_ERRORS, _slow(0.3) if t >= at else HEALTHY_SLOW)},
        ),
        Scenario(
            "failing-replica",
            True,
            {"v1": lambda t: (1.0, 0.25 if t >= at else HEALTHY_ERRORS, HEALTHY_SLOW)},
        ),
        Scenario(
            "no-traffic-canary",
            False,
            {"v1": healthy, "v2": lambda t: (0.0, 0.02, HEALTHY_SLOW)},
        ),
        Scenario("healthy", False, {"v1": healthy}),
    ]


@dataclass
class RunResult:
    """One run: the first alert after the fault (seconds, the alert), and any before it."""

    detected_after: float | None = None
    paged_after: float | None = None
    first: Alert | None = None
    false_alarms: int = 0
    cold_start_alarms: int = 0
    canary_events: int = 0


def _alerts(streams: dict[str, _Stream]) -> list[Alert]:
    found: list[Alert] = []
    for i, objective in enumerate(OBJECTIVES):
        names = list(streams) if len(streams) > 1 else []
        for scope in ["endpoint", *names]:
            if scope == "endpoint":
                merged = _merged(streams, i)
                counts = merged
            else:
                counts = streams[scope].counts(i)
            found.extend(assess(objective, counts, min_events=100, scope=scope).alerts)
    return found


def _merged(streams: dict[str, _Stream], objective: int) -> Callable[[float], Counts]:
    parts = [s.counts(objective) for s in streams.values()]

    def counts(seconds: float) -> Counts:
        got = [p(seconds) for p in parts]
        return sum(g[0] for g in got), sum(g[1] for g in got)

    return counts


def run(scenario: Scenario, seed: int, *, rps: float = 10.0, horizon: float = HORIZON) -> RunResult:
    """One run of ``scenario``: healthy history, the fault at ``HISTORY``, then ``horizon``."""
    rng = random.Random(seed)
    streams = {name: _Stream(b) for name, b in scenario.streams.items()}
    result = RunResult()
    t = 0.0
    while t < HISTORY + horizon:
        for stream in streams.values():
            stream.step(rng, t, rps)  # the step that starts at t: faulty from HISTORY on
        t += STEP
        alerts = _alerts(streams)
        if not alerts:
            continue
        if t <= WARMUP:
            result.cold_start_alarms += 1
            continue
        if not scenario.fault or t <= HISTORY:
            result.false_alarms += 1
            if not scenario.fault:
                result.first = result.first or alerts[0]
            continue
        if result.detected_after is None:
            result.detected_after, result.first = t - HISTORY, alerts[0]
        if any(a.rule.severity == "page" for a in alerts):
            result.paged_after = t - HISTORY
            break
    if "v2" in streams:
        result.canary_events = streams["v2"].events[-1]
    return result


def suite(*, runs: int = 10, healthy_runs: int = 100, healthy_hours: float = 6.0) -> dict[str, Any]:
    """Every scenario: ``runs`` seeds of each fault, ``healthy_runs`` healthy controls.

    Returns the figures: per scenario the time to detect (first alert) and to page, in simulated
    seconds (median and worst over the runs), and the false alarms.
    """
    figures: dict[str, Any] = {"step_s": STEP, "history_s": HISTORY, "slo": SLO}
    out: dict[str, Any] = {}
    for scenario in scenarios():
        count = healthy_runs if scenario.name == "healthy" else runs
        horizon = healthy_hours * 3600 - HISTORY if scenario.name == "healthy" else HORIZON
        results = [run(scenario, seed, horizon=max(horizon, STEP)) for seed in range(count)]
        out[scenario.name] = _summary(scenario, results)
    figures["scenarios"] = out
    paged = [out[n]["time_to_page_s"]["worst"] for n in ("bad-canary", "failing-replica")]
    figures["goals"] = {
        "burn_14_4x_paged_within_5_min": all(p is not None and p <= 300 for p in paged),
        "no_false_alarm_in_healthy_runs": out["healthy"]["false_alarm_runs"] == 0,
        "no_traffic_canary_inconclusive": out["no-traffic-canary"]["false_alarm_runs"] == 0,
    }
    return figures


def _spread(values: list[float | None]) -> dict[str, float | None]:
    found = [v for v in values if v is not None]
    if not found or len(found) < len(values):
        return {"median": statistics.median(found) if found else None, "worst": None}
    return {"median": statistics.median(found), "worst": max(found)}


def _summary(scenario: Scenario, results: list[RunResult]) -> dict[str, Any]:
    summary: dict[str, Any] = {"runs": len(results)}
    if scenario.fault:
        summary["detected_runs"] = sum(r.detected_after is not None for r in results)
        summary["time_to_detect_s"] = _spread([r.detected_after for r in results])
        summary["time_to_page_s"] = _spread([r.paged_after for r in results])
        first = next((r.first for r in results if r.first), None)
        summary["first_alert"] = (
            f"{first.objective} {first.rule.severity} {first.rule.describe()} on {first.scope}"
            if first
            else None
        )
    summary["false_alarm_runs"] = sum(r.false_alarms > 0 for r in results)
    summary["cold_start_alarm_runs"] = sum(r.cold_start_alarms > 0 for r in results)
    return summary
