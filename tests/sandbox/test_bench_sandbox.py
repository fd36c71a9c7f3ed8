"""``modelplane bench sandbox --quick`` runs end to end and keeps its output contract (figures are
not asserted: speed targets live in the benchmark, not in tests)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from modelplane.cli import cli
from modelplane.sandbox import ProcessSandbox


def test_bench_sandbox_quick_prints_its_figures_as_json_on_the_last_line(
    sandbox: ProcessSandbox,
) -> None:
    # when the benchmark runs with small sizes through the CLI
    result = CliRunner().invoke(cli, ["bench", "sandbox", "-o", "json", "--quick"])
    # then it succeeds and its last line holds every figure beside its baselines
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["benchmark"] == "sandbox"
    wasm = figures["wasm"]
    assert wasm["call"]["p50_us"] > 0 and wasm["fresh_compile"]["p50_us"] > 0
    assert wasm["python_c"]["p50_us"] > 0
    assert wasm["runaway"]["stopped"] == wasm["runaway"]["runs"]
    assert wasm["first_call"]["after_restart_from_disk"]["p50_us"] > 0
    assert (
        figures["process"]["sandboxed"]["p50_ms"] > 0 and figures["process"]["bare"]["p50_ms"] > 0
    )
    assert figures["probes"]["escaped"] == [] and figures["probes"]["denied"] >= 15
    assert set(figures["met"]) == {
        "wasm_call_p99_us",
        "idle_per_gb",
        "runaway_stop_ms",
        "process_start_p99_ms",
        "probes_denied_share",
    }
