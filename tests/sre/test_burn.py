"""The burn-rate rules as pure computation: thresholds, windows, the minimum-event guard."""

from __future__ import annotations

import pytest

from modelplane.rollout import Sample
from modelplane.sre import (
    Objective,
    alert_rules,
    assess,
    assess_endpoint,
    objectives,
    sample_counts,
)

NOW = 1_000_000.0
AVAILABILITY = Objective("availability", 0.999)


def _steady(
    count: int, seconds: float, *, every_nth_fails: int = 0, ttft: float = 0.1
) -> list[Sample]:
    """``count`` requests spread evenly over the last ``seconds``."""
    return [
        Sample(
            t=NOW - seconds + (i + 1) * seconds / count,
            ttft_s=ttft,
            error=bool(every_nth_fails) and i % every_nth_fails == 0,
        )
        for i in range(count)
    ]


def test_the_rules_are_the_workbooks_for_a_30_day_objective() -> None:
    rules = alert_rules()
    assert [(r.severity, r.burn, r.long, r.short) for r in rules] == [
        ("page", 14.4, "1h", "5m"),
        ("page", 6.0, "6h", "30m"),
        ("ticket", 1.0, "3d", "6h"),
    ]


def test_a_shorter_objective_window_keeps_the_budget_shares() -> None:
    # 2% of a 7-day budget in one hour is a burn of 0.02 * 168 = 3.36
    assert alert_rules(7 * 86400)[0].burn == pytest.approx(3.36)


def test_two_percent_errors_on_a_999_objective_pages() -> None:
    # given an hour of traffic failing 2% (a burn of 20x)
    samples = _steady(3600, 3600, every_nth_fails=50)
    # when assessed
    found = assess(AVAILABILITY, sample_counts(samples, AVAILABILITY, NOW))
    # then the burn rates say 20x and the fast page fires, on the long and the short window
    assert found.burns["1h"] == pytest.approx(20, rel=0.05)
    assert found.burns["5m"] == pytest.approx(20, rel=0.2)
    assert "page-1h" in {a.rule.name for a in found.alerts}
    assert found.budget_left is not None and found.budget_left < 0


def test_a_burst_that_ended_does_not_page_because_the_short_window_is_clean() -> None:
    # given an hour whose first 40 minutes failed 3% and whose last 20 minutes were clean
    bad = [s for s in _steady(2400, 3600, every_nth_fails=33) if s.t <= NOW - 1200]
    clean = [Sample(t=s.t) for s in _steady(1200, 1200)]
    found = assess(AVAILABILITY, sample_counts(bad + clean, AVAILABILITY, NOW))
    # then the long window burns, the short one does not: no fast page
    assert (found.burns["1h"] or 0) > 14.4
    assert found.burns["5m"] == 0
    assert "page-1h" not in {a.rule.name for a in found.alerts}


def test_a_handful_of_requests_raises_no_alert() -> None:
    # given 20 requests, 5 of them failed (a burn of 250x)
    samples = _steady(20, 600, every_nth_fails=4)
    found = assess(AVAILABILITY, sample_counts(samples, AVAILABILITY, NOW), min_events=100)
    # then the burn is reported, but the minimum-event guard holds every alert back
    assert (found.burns["5m"] or 0) > 100
    assert found.alerts == []


def test_no_traffic_gives_no_sli_and_no_alert() -> None:
    found = assess(AVAILABILITY, sample_counts([], AVAILABILITY, NOW))
    assert found.sli is None and found.budget_left is None and found.alerts == []
    assert set(found.burns.values()) == {None}


def test_a_scaled_clock_runs_the_same_rules_in_seconds() -> None:
    # given 5 seconds of requests failing 5%, at a scale where one hour lasts 5 s
    samples = _steady(1000, 5, every_nth_fails=20)
    counts = sample_counts(samples, AVAILABILITY, NOW)
    found = assess(AVAILABILITY, counts, scale=1 / 720, min_events=100)
    assert "page-1h" in {a.rule.name for a in found.alerts}


def test_objectives_of_a_spec_and_what_counts_as_good() -> None:
    found = {
        o.name: o for o in objectives({"availability": 0.999, "ttftP99": "500ms", "tpot": "50ms"})
    }
    assert found["availability"].budget == pytest.approx(0.001)
    assert found["ttftP99"].threshold_s == 0.5 and found["ttftP99"].target == 0.99
    assert found["ttftP99"].good(Sample(t=0, ttft_s=0.6)) is False
    assert found["ttftP99"].good(Sample(t=0, ttft_s=0.4)) is True
    # a request without a measured TPOT is not counted for the TPOT objective
    assert found["tpot"].good(Sample(t=0, ttft_s=0.1)) is None
    assert objectives({"errorRate": 0.01})[0].target == pytest.approx(0.99)


def test_a_canary_that_burns_alone_alerts_on_its_version() -> None:
    # given a stable version with healthy traffic and a canary failing 2%, a tenth of it
    streams = {
        "v1": _steady(9000, 3600),
        "v2": _steady(1000, 3600, every_nth_fails=50),
    }
    (found,) = assess_endpoint({"availability": 0.999}, streams, NOW)
    # then the Endpoint as a whole burns about 2x (no page) but the canary's own stream pages
    assert found.burns["1h"] == pytest.approx(2, rel=0.1)
    assert {(a.scope, a.rule.severity) for a in found.alerts} >= {("v2", "page")}
    assert not any(a.scope == "endpoint" and a.rule.severity == "page" for a in found.alerts)
