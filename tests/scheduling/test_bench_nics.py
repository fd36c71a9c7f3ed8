"""``modelplane bench nics --quick``: aligned GPU+NIC claims beside first-fit, one JSON object."""

from __future__ import annotations

import orjson
import pytest

from modelplane.bench.nics import PLACEMENTS, main


def test_quick_nic_benchmark_aligns_every_feasible_claim(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--quick"]) == 0
    figures = orjson.loads(capsys.readouterr().out.rstrip("\n").splitlines()[-1])
    assert set(figures["runs"]) == set(PLACEMENTS)
    ours = figures["runs"]["modelplane"]
    # the stream has NIC claims, most of them feasible, and ours aligns every feasible one
    assert ours["nic_claims"] > 50 and ours["nic_claims_feasible"] > ours["nic_claims"] / 2
    assert ours["nic_claims_aligned"] == ours["nic_claims_feasible"]
    assert figures["goals"]["aligned_when_feasible"] == {
        "target": "== 1.0 for modelplane",
        "figure": 1.0,
        "met": True,
    }
    base = figures["runs"]["first-fit-then-nics"]
    assert 0.0 <= base["aligned_when_feasible"] <= 1.0
    assert figures["first_fit_would_have"]["then_nics"] == base["aligned_when_feasible"]
