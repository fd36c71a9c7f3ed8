"""Fixtures of the end-to-end tests: the real SmolLM2 model, imported once per test session, and
a ``modelplane up`` of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e._proc import UpProcess
from tests.serving.conftest import smollm2

__all__ = ["smollm2"]


@pytest.fixture
def up(tmp_path: Path) -> Iterator[UpProcess]:
    """``modelplane up`` (SQLite, a free port) in a child process, stopped after the test."""
    proc = UpProcess(tmp_path / "home").start()
    try:
        yield proc
    finally:
        proc.stop()
