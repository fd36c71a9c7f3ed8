"""Agent tests: handlers live in ``agent_handlers`` (importable by workers in child processes)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from tests.serving.conftest import sqlite_store  # noqa: E402  (a store beside the runtime's tables)

__all__ = ["sqlite_store"]
