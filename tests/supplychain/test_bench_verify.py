"""The verification benchmark in its quick form (256 MiB): one JSON object on the last line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelplane.bench.model_verify import main


def test_the_quick_benchmark_prints_verify_and_sha256sum_throughput_on_its_last_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--quick", "--dir", str(tmp_path)]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["benchmark"] == "model-verify"
    assert figures["bytes"] >= 256 * 2**20
    assert figures["verify_gbps"] > 0 and figures["digest_gbps"] > 0
    assert figures["sha256sum_gbps"] is None or figures["sha256sum_gbps"] > 0
    assert list(tmp_path.iterdir()) == []  # the model was removed
