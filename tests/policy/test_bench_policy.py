"""``modelplane bench policy`` runs end to end and keeps its output contract (figures are not
asserted: speed targets live in the benchmark, not in tests)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from modelplane.cli import cli


def test_bench_policy_quick_prints_its_figures_as_json_on_the_last_line() -> None:
    # when the benchmark runs with small sizes through the CLI
    result = CliRunner().invoke(
        cli,
        ["bench", "policy", "-o", "json", "--quick", "--policies", "20", "--objects", "100"],
    )
    # then it succeeds and its last line holds every figure, beside its baseline
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["benchmark"] == "policy"
    assert figures["decision"]["p50_us"] > 0 and figures["naive"]["p50_us"] > 0
    assert figures["same_decisions"] is True
    assert figures["decisions_per_s_per_core"] > 0
    assert figures["admission"]["baseline_updates_per_s"] > 0
    assert figures["list_filter"]["same_objects"] is True
    assert figures["list_filter"]["decisions_per_namespace"] <= 50
    assert set(figures["met"]) == {
        "decision_p99_us",
        "decisions_per_s_per_core",
        "admission_overhead",
    }
