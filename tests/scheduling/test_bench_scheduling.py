"""``modelplane bench scheduling --quick``: one JSON object with every part of the benchmark."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from modelplane.bench.scheduling import main

pytest.importorskip(
    "scipy", reason="the benchmark's optimum needs scipy: pip install 'modelplane[bench]'"
)
pytest.importorskip("matplotlib", reason="the benchmark's plot needs matplotlib")


@pytest.mark.slow
def test_quick_benchmark_prints_figures_goals_and_writes_the_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "allocation.png"
    assert main(["--quick", "--plot", str(plot)]) == 0
    last = capsys.readouterr().out.rstrip("\n").splitlines()[-1]
    figures = orjson.loads(last)
    assert {
        "churn",
        "alibaba",
        "scale",
        "hard_inputs",
        "optimum",
        "offered_load_sweep",
        "goals",
    } <= set(figures)
    for part in ("churn", "alibaba", "scale"):
        assert set(figures[part]["policies"]) == {"modelplane", "first-fit", "binpack"}
        ours = figures[part]["policies"]["modelplane"]
        assert {"claims_per_second", "decision_ms", "mean_allocation_rate", "cost"} <= set(ours)
    assert all(set(g) == {"met", "figure", "target"} for g in figures["goals"].values())
    assert "within_3pct_of_optimum" in figures["goals"]
    assert figures["optimum"]["instances"][0]["optimum_proven"] is True
    assert plot.stat().st_size > 10_000
