"""The dependency guard benchmark on a small list it is given: one JSON object on the last line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelplane.bench.supplychain import main

from .conftest import NAMES


def test_the_benchmark_prints_per_class_scores_and_goals_as_its_last_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = tmp_path / "names.tsv"
    names.write_text(NAMES)
    sizes = ["--real", "20", "--squats", "40", "--invented", "30", "--baseline-sample", "30"]
    assert main([str(names), *sizes]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["labelled"]["typosquat"] == 40
    assert figures["labelled"]["invented"] == 30
    assert figures["nonexistent_blocked"] == 1.0
    assert set(figures["classes"]) == {"real", "typosquat", "invented"}
    assert figures["goals"]["nonexistent_blocked"]["met"] is True
    assert figures["lookup_us"]["p99"] > 0
    assert figures["baseline"]["sample"] == 30


def test_the_benchmark_says_when_its_list_is_missing(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([str(tmp_path / "missing.tsv")])
    assert stopped.value.code == 2
