"""The soak benchmark runs end to end on a short run: nothing lost, figures and plot written
(its 30-minute figures are in docs/benchmarks.md; speed lives there, not here)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tests.conftest import PG_URL, require_postgres

from modelplane.bench.soak import run

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_a_short_soak_loses_nothing_and_writes_its_samples_and_plot(tmp_path: Path) -> None:
    require_postgres()
    figures = run(PG_URL, minutes=0.25, interval=5.0, out=tmp_path)

    assert figures["requests"] > 0 and figures["errors"] == 0
    assert figures["queues_applied"] > 0 and figures["queues_missing"] == 0
    assert figures["queues_not_deleted"] == 0
    assert figures["agent_instances"] > 0
    assert figures["agents_unfinished"] == 0 and figures["agents_wrong_result"] == 0
    assert set(figures["rss_mb"]) >= {"server-1", "server-2", "node", "gateway-1", "gateway-2"}
    rows = list(csv.reader((tmp_path / "soak.csv").open()))
    assert rows[0][:3] == ["seconds", "p50_ms", "p99_ms"] and len(rows) >= 3
    assert (tmp_path / "soak.png").read_bytes().startswith(b"\x89PNG")
