"""The adapter benchmark in its quick form: real SmolLM2 with peft adapters, then the simulated
comparison of adapter-aware and adapter-blind routing; one JSON object on the last line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelplane.bench.adapters import main

pytestmark = pytest.mark.slow


def test_the_quick_benchmark_prints_aware_and_blind_routing_with_ratios(
    smollm2: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--quick", "--model-dir", str(smollm2[0])]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["benchmark"] == "adapters"
    real = figures["real"]
    # two cold requests per sample and the first use: every one loaded its adapter
    assert real["loads"] == 1 + real["samples"]
    assert real["cold_load_s"] > 0 and real["ttft_warm_s"] > 0
    sim = figures["sim"]
    assert sim["blind"]["requests"] == sim["aware"]["requests"] > 0
    # the same arrivals: routing to replicas that hold the adapter loads fewer adapters
    assert sim["aware"]["cold_load_rate"] < sim["blind"]["cold_load_rate"]
    assert sim["cold_loads_blind_over_aware"] > 1
