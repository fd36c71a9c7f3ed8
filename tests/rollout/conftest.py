"""Fixtures of the end-to-end rollout tests: a real `modelplane up` whose rollout controller reads
the gateway's samples (``up``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e._proc import UpProcess

from modelplane.rollout import GATEWAY_URL_ENV

#: the one token of the platform's token file: a tenant, not an administrator. Authentication is
#: on, so the rollout controller reads the gateway's samples only if up's own clients send a token.
TOKEN = "tenant-token"


@pytest.fixture
def up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[UpProcess]:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f"{TOKEN},tenant,uid-1,modelplane:namespace:default\n")
    # versions served by a fake hosted provider listen on loopback: embedded mode allows that
    # only with an explicit flag
    extra = ["--token-file", str(tokens), "--allow-loopback-upstreams"]
    proc = UpProcess(tmp_path / "home", extra=extra)
    monkeypatch.setenv(GATEWAY_URL_ENV, proc.url)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
