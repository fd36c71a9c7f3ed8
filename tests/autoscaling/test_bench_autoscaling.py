"""``modelplane bench autoscaling --quick``: one JSON object comparing the scalers in one run."""

from __future__ import annotations

import orjson
import pytest

from modelplane.bench.autoscaling import main


def test_quick_benchmark_compares_kpa_stable_only_and_a_static_fleet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--quick"]) == 0
    figures = orjson.loads(capsys.readouterr().out.rstrip("\n").splitlines()[-1])
    runs = figures["replicas"]["runs"]
    assert set(runs) == {"kpa", "stable", "static"}
    for row in runs.values():
        assert {"absorbed_after_s", "ttft_p99_s", "replica_seconds", "requests"} <= set(row)
        assert row["requests"] > 0
    # the static fleet never scales and pays for max replicas all along
    assert runs["static"]["scaling_decisions"] == 0
    assert runs["kpa"]["replica_seconds"] < runs["static"]["replica_seconds"]
    # panic reacts to the burst no later than the stable window alone
    assert runs["kpa"]["absorbed_after_s"] <= runs["stable"]["absorbed_after_s"]
    assert set(figures["replicas"]["ratios"]) >= {"absorb_stable_over_kpa", "cost_kpa_over_static"}


def test_quick_benchmark_compares_a_nodepool_with_a_static_cluster(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--quick"]) == 0
    figures = orjson.loads(capsys.readouterr().out.rstrip("\n").splitlines()[-1])
    runs = figures["nodepools"]["runs"]
    pool, static = runs["pool"], runs["static"]
    # every claim is placed in both, the same claims (one seed)
    assert pool["claims_placed"] == static["claims_placed"] > 0
    assert pool["claims_waiting_at_end"] == static["claims_waiting_at_end"] == 0
    # the pool pays for fewer node-hours than the static cluster of its limit
    assert pool["cost_usd"] < static["cost_usd"]
    assert pool["max_nodes"] <= figures["nodepools"]["shape"]["max_nodes"]
    # and a claim that waited for a new node waited at least its boot
    assert pool["wait_max_s"] >= figures["nodepools"]["shape"]["boot_s"]
