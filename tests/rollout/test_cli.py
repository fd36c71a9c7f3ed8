"""``modelplane rollout analyze``: judging a saved samples file offline."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
from click.testing import CliRunner

from modelplane.cli import cli


def _file(tmp_path: Path, canary_ttft: float) -> Path:
    rnd = random.Random(21)

    def samples(n: int, ttft: float) -> list[dict[str, object]]:
        return [
            {"t": 100.0 + i, "ttft_s": ttft * rnd.lognormvariate(0, 0.2), "error": False}
            for i in range(n)
        ]

    body = {
        "namespace": "default",
        "endpoint": "chat",
        "versions": {"v1": samples(200, 0.05), "v2": samples(50, canary_ttft)},
    }
    path = tmp_path / "samples.json"
    path.write_bytes(orjson.dumps(body))
    return path


def test_analyze_fails_a_slow_canary_with_exit_status_1(tmp_path: Path) -> None:
    path = _file(tmp_path, canary_ttft=0.3)
    result = CliRunner().invoke(
        cli,
        [
            "rollout",
            "analyze",
            str(path),
            "--canary",
            "v2",
            "--stable",
            "v1",
            "--min-samples",
            "30",
        ],
    )
    assert result.exit_code == 1, result.output
    assert result.output.startswith("fail: canary v2 TTFT p99")


def test_analyze_passes_a_like_canary_and_holds_under_the_minimum(tmp_path: Path) -> None:
    path = _file(tmp_path, canary_ttft=0.05)
    args = ["rollout", "analyze", str(path), "--canary", "v2", "--stable", "v1", "-o", "json"]
    result = CliRunner().invoke(cli, [*args, "--min-samples", "30"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["verdict"] == "pass"
    result = CliRunner().invoke(cli, [*args, "--min-samples", "60"])
    assert result.exit_code == 3
    assert orjson.loads(result.output)["verdict"] == "inconclusive"


def test_analyze_names_the_versions_a_file_has(tmp_path: Path) -> None:
    path = _file(tmp_path, canary_ttft=0.05)
    result = CliRunner().invoke(
        cli, ["rollout", "analyze", str(path), "--canary", "v3", "--stable", "v1"]
    )
    assert result.exit_code == 1
    assert "no samples of version 'v3' (it has v1, v2)" in result.output
