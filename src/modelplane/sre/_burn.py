"""Objectives, windows and the multi-window multi-burn-rate rules, as pure computation.

An :class:`Objective` says which requests are good (not failed; first token within a threshold;
time per output token within a threshold) and what share must be (the target); its error budget
is ``1 - target``. The **burn rate** over a window is the share of bad requests in it divided by
the budget: 1 spends the budget exactly over the objective's window, 14.4 spends 2% of a 30-day
budget in one hour.

The rules (Google SRE workbook, "Alerting on SLOs", multiwindow multi-burn-rate): an alert fires
when the burn rate is above the threshold over **both** a long window (it burns enough budget to
matter) and a short one (it is still burning, so the alert resolves soon after the fault ends):

* page: 14.4x over 1 h and 5 min (2% of a 30-day budget in an hour);
* page: 6x over 6 h and 30 min (5% in six hours);
* ticket: 1x over 3 days and 6 h (10% in three days).

The thresholds are those budget shares, so an objective over another window keeps their meaning
(``burn = share * window / long window``). A **minimum-event guard** keeps a handful of requests
from raising an alert: the long window must hold at least ``min_events`` counted requests.
``scale`` multiplies every window (and the objective's), so tests and demos run the same rules in
seconds: at ``scale=1/720`` one hour lasts five seconds.

Nothing here reads a clock, a store or the network: counts come from a :data:`CountFn`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from modelplane.api import parse_duration, slo_window_seconds

Severity = Literal["page", "ticket"]
Counts = tuple[int, int]
"""(requests counted, bad requests) over a window."""
CountFn = Callable[[float], Counts]
"""The counts of the last ``seconds`` of a stream of requests."""

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
#: the windows whose burn rates are reported, by name
WINDOWS: dict[str, float] = {"5m": 5 * MINUTE, "30m": 30 * MINUTE, "1h": HOUR, "6h": 6 * HOUR}
WINDOWS["3d"] = 3 * DAY
#: the reference objective window the workbook's thresholds are stated for
REFERENCE_WINDOW = 30 * DAY
#: share of a requirement a latency objective sets (the "p99" of ttftP99 and tpot)
LATENCY_TARGET = 0.99


class Timed(Protocol):
    """A finished request as the gateway samples it (``modelplane.rollout.Sample`` is one)."""

    @property
    def t(self) -> float: ...
    @property
    def ttft_s(self) -> float | None: ...
    @property
    def tpot_s(self) -> float | None: ...
    @property
    def error(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Objective:
    """One objective of an Endpoint's ``spec.slo``: which requests are good, and what share must be.

    ``name``: the field (availability, errorRate, ttftP99, tpot); ``threshold_s``: the latency a
    good request stays within (latency objectives only); ``spec``: the objective as written.
    """

    name: str
    target: float
    threshold_s: float | None = None
    spec: str = ""

    @property
    def budget(self) -> float:
        """The share of requests that may be bad."""
        return 1.0 - self.target

    def good(self, sample: Timed) -> bool | None:
        """Whether ``sample`` is good; None when this objective does not count it."""
        if self.name in ("availability", "errorRate"):
            return not sample.error
        value = sample.ttft_s if self.name == "ttftP99" else sample.tpot_s
        if value is None:
            # a failed request that never produced a first token is slow as well as failed
            return False if sample.error and self.name == "ttftP99" else None
        return value <= (self.threshold_s or 0.0)


def objectives(slo: Mapping[str, Any]) -> list[Objective]:
    """The objectives an Endpoint's ``spec.slo`` (its JSON form) sets, in a fixed order."""
    out: list[Objective] = []
    if slo.get("availability") is not None:
        value = float(slo["availability"])
        out.append(Objective("availability", value, spec=f"{value * 100:g}%"))
    if slo.get("errorRate") is not None:
        rate = float(slo["errorRate"])
        out.append(Objective("errorRate", 1.0 - rate, spec=f"<={rate * 100:g}% errors"))
    for name in ("ttftP99", "tpot"):
        if slo.get(name) is not None:
            text = str(slo[name])
            threshold = parse_duration(text)
            out.append(Objective(name, LATENCY_TARGET, threshold, spec=f"99% <= {text}"))
    return out


@dataclass(frozen=True, slots=True)
class AlertRule:
    """Burn rate above ``burn`` over both windows (seconds, before scaling)."""

    severity: Severity
    burn: float
    long: str
    short: str

    @property
    def name(self) -> str:
        return f"{self.severity}-{self.long}"

    def describe(self) -> str:
        return f"{self.burn:g}x over {self.long} and {self.short}"


def alert_rules(window_s: float = REFERENCE_WINDOW) -> tuple[AlertRule, ...]:
    """The three rules for an objective over ``window_s`` (their thresholds as budget shares)."""
    shares = (("page", 0.02, "1h", "5m"), ("page", 0.05, "6h", "30m"), ("ticket", 0.10, "3d", "6h"))
    rules: list[AlertRule] = []
    for severity, share, long, short in shares:
        burn = round(share * window_s / WINDOWS[long], 4)
        rules.append(AlertRule(severity, burn, long, short))  # type: ignore[arg-type]
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class Alert:
    """A rule that fires for an objective, on the whole Endpoint or one version (``scope``)."""

    objective: str
    rule: AlertRule
    scope: str
    long_burn: float
    short_burn: float

    @property
    def key(self) -> str:
        return f"{self.objective}/{self.rule.name}/{self.scope}"

    def message(self, endpoint: str) -> str:
        where = endpoint if self.scope == "endpoint" else f"{endpoint} version {self.scope}"
        return (
            f"{where}: {self.objective} burns its error budget at {self.long_burn:.1f}x over"
            f" {self.rule.long} and {self.short_burn:.1f}x over {self.rule.short}"
            f" ({self.rule.severity}: above {self.rule.describe()})"
        )


@dataclass(slots=True)
class Assessment:
    """One objective on one stream of requests: SLI, budget left, burn rates, firing alerts."""

    objective: Objective
    events: int
    sli: float | None
    budget_left: float | None
    burns: dict[str, float | None] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)


def burn_rate(counts: Counts, budget: float) -> float | None:
    """Share of bad requests over the budget; None without requests."""
    events, bad = counts
    if events <= 0:
        return None
    if budget <= 0:  # no error allowed at all: any bad request burns without bound
        return math.inf if bad else 0.0
    return (bad / events) / budget


def assess(
    objective: Objective,
    counts: CountFn,
    *,
    window: str = "30d",
    scale: float = 1.0,
    min_events: int = 100,
    scope: str = "endpoint",
) -> Assessment:
    """Evaluate ``objective`` over one stream (``counts``) with every rule (module docstring)."""
    window_s = slo_window_seconds(window)
    total = counts(window_s * scale)
    burns = {
        name: burn_rate(counts(seconds * scale), objective.budget)
        for name, seconds in WINDOWS.items()
    }
    events, bad = total
    sli = (events - bad) / events if events else None
    spent = burn_rate(total, objective.budget)
    left = None if spent is None else 1.0 - spent
    found = Assessment(objective, events, sli, left, burns)
    for rule in alert_rules(window_s):
        long_counts = counts(WINDOWS[rule.long] * scale)
        long_burn, short_burn = burns[rule.long], burns[rule.short]
        if long_counts[0] < min_events or long_burn is None or short_burn is None:
            continue
        if long_burn > rule.burn and short_burn > rule.burn:
            found.alerts.append(Alert(objective.name, rule, scope, long_burn, short_burn))
    return found


def sample_counts(samples: Iterable[Timed], objective: Objective, now: float) -> CountFn:
    """A :data:`CountFn` over recorded samples: those finished in ``(now - seconds, now]``."""
    times: list[float] = []
    bad_so_far: list[int] = [0]
    for sample in sorted(samples, key=lambda s: s.t):
        good = objective.good(sample)
        if good is None or sample.t > now:
            continue
        times.append(sample.t)
        bad_so_far.append(bad_so_far[-1] + (0 if good else 1))

    def counts(seconds: float) -> Counts:
        first = bisect.bisect_right(times, now - seconds)
        return len(times) - first, bad_so_far[-1] - bad_so_far[first]

    return counts


def assess_endpoint(
    slo: Mapping[str, Any],
    streams: Mapping[str, Sequence[Timed]],
    now: float,
    *,
    scale: float = 1.0,
) -> list[Assessment]:
    """Every objective of ``slo`` on an Endpoint's requests (``streams``: samples by version).

    The SLI, budget and burn rates are the Endpoint's (every version together); alerts fire on the
    Endpoint, and on each version of several on its own, so that a canary with a small share of
    the traffic still raises one when it alone burns.
    """
    window = str(slo.get("window") or "30d")
    min_events = int(slo.get("minEvents") or 100)
    merged = [s for samples in streams.values() for s in samples]

    def assessed(objective: Objective, samples: Sequence[Timed], scope: str) -> Assessment:
        counts = sample_counts(samples, objective, now)
        return assess(
            objective, counts, window=window, scale=scale, min_events=min_events, scope=scope
        )

    out: list[Assessment] = []
    for objective in objectives(slo):
        whole = assessed(objective, merged, "endpoint")
        if len(streams) > 1:
            for version, samples in sorted(streams.items()):
                whole.alerts.extend(assessed(objective, samples, version).alerts)
        out.append(whole)
    return out
