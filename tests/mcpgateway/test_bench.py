"""``modelplane bench mcp`` runs end to end and prints its figures on the last line."""

from __future__ import annotations

import json

import pytest
from tests.cli._platform import run_cli


@pytest.mark.slow
def test_bench_mcp_prints_direct_and_gateway_figures_as_json_on_the_last_line() -> None:
    # when the benchmark runs with a few calls
    result = run_cli("bench", "mcp", "-o", "json", "--calls", "20")
    # then its last line holds both sides of both transports, and the goal's verdict
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.splitlines()[-1])
    assert figures["benchmark"] == "mcp"
    for transport in ("http", "stdio"):
        side = figures[transport]
        assert side["calls"] == 20
        assert side["direct_p50_ms"] > 0 and side["gateway_p50_ms"] > 0
        assert side["added_p99_ms"] == pytest.approx(
            side["gateway_p99_ms"] - side["direct_p99_ms"], abs=0.002
        )
    assert figures["met"]["added_p99_ms"] in (True, False)
