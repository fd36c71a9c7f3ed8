"""The fault-injection suite: its quick form meets the goals, and the benchmark prints JSON."""

from __future__ import annotations

import orjson
import pytest

from modelplane.bench.slo import main
from modelplane.sre import suite


def test_the_quick_suite_detects_every_fault_and_meets_its_goals() -> None:
    figures = suite(runs=3, healthy_runs=5, healthy_hours=3.0)
    scenarios = figures["scenarios"]
    for fault in ("bad-canary", "ttft-plus-300ms", "failing-replica"):
        assert scenarios[fault]["detected_runs"] == 3, fault
    # a 14.4x burn and more is paged within five simulated minutes
    assert scenarios["failing-replica"]["time_to_page_s"]["worst"] <= 300
    assert scenarios["bad-canary"]["time_to_page_s"]["worst"] <= 300
    assert scenarios["healthy"]["false_alarm_runs"] == 0
    assert scenarios["no-traffic-canary"]["false_alarm_runs"] == 0
    assert all(figures["goals"].values()), figures["goals"]


def test_bench_slo_prints_one_json_object_on_its_last_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--quick", "--runs", "1", "--healthy-runs", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    figures = orjson.loads(last)
    assert figures["benchmark"] == "slo" and "healthy" in figures["scenarios"]
