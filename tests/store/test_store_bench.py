"""The store benchmark runs end to end and keeps its output contract (figures are not asserted:
speed targets live in the benchmark, not in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "store.py"


def test_benchmark_prints_one_json_object_on_its_last_line() -> None:
    # when the benchmark runs with tiny sizes on SQLite
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
            "--no-postgres",
            "--objects",
            "60",
            "--updates",
            "60",
            "--seconds",
            "0.1",
            "--watchers",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    # then it succeeds, reports progress on stderr and the figures as JSON on the last line
    assert done.returncode == 0, done.stderr
    assert "[bench store]" in done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    sqlite = result["sqlite"]
    assert sqlite["updates_per_s"] > 0 and sqlite["baseline"]["updates_per_s"] > 0
    assert set(sqlite["ratio"]) == {"updates", "list"}
    assert all(w["exactly_once_in_order"] for w in sqlite["watch"].values())
    assert result["postgres"] == {"skipped": "no PostgreSQL URL given"}
    assert set(result["goals"]) == {"sqlite_updates_per_s", "list_ms", "watch_p99_ms"}
    assert "sqlite_updates_per_s" in result["met"]
