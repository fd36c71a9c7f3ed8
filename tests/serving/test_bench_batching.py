"""The batching benchmark in its quick form (1 and 4 clients, short answers, real SmolLM2): one
JSON object on the last line with both engines' figures and their ratios per concurrency."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelplane.bench.batching import main

pytestmark = pytest.mark.slow


def test_the_quick_benchmark_prints_rounds_and_continuous_side_by_side_with_ratios(
    smollm2: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--quick", "--model-dir", str(smollm2[0])]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["benchmark"] == "batching"
    assert set(figures["concurrency"]) == {"1", "4"}
    for clients, level in figures["concurrency"].items():
        for engine in ("rounds", "continuous"):
            run = level[engine]
            assert run["requests"] == int(clients)
            assert run["output_tokens"] > 0
            assert run["tokens_per_s"] > 0 and run["ttft_p99_s"] > 0
        # both engines decode greedily: the same requests give the same tokens
        assert level["rounds"]["output_tokens"] == level["continuous"]["output_tokens"]
        assert level["throughput_ratio"] > 0 and level["ttft_p99_ratio"] > 0
