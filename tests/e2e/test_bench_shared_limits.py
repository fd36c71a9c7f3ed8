"""``modelplane bench shared-limits`` runs end to end and keeps its output contract (the bound is
asserted by ``test_shared_limits``; speed lives in the benchmark, not in tests)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tests.conftest import PG_URL, require_postgres

from modelplane.cli import cli

pytestmark = pytest.mark.postgres


def test_bench_shared_limits_quick_prints_overshoot_and_latency_as_json_on_the_last_line() -> None:
    require_postgres()
    # when the benchmark runs with small sizes through the CLI
    args = ["shared-limits", "-o", "json", "--quick", "--requests", "100"]
    result = CliRunner().invoke(cli, ["bench", *args, "--database-url", PG_URL])
    # then it succeeds and its last line holds both sets' figures, the baseline beside them
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["benchmark"] == "shared-limits"
    for name in ("shared", "per_process"):
        assert figures[name]["requests_admitted"] > 0 and figures[name]["tokens_admitted"] > 0
    assert figures["latency"]["shared"]["p50_ms"] > 0
    assert figures["latency"]["per_process"]["p50_ms"] > 0
    assert figures["latency"]["p50_ratio"] > 0
    assert set(figures["met"]) == {"requests_within_bound", "tokens_within_bound"}
