"""Fixtures of the SRE tests: a REST API over a SQLite store, for the commands to talk to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.server.conftest import serving

from modelplane.server import create_app
from modelplane.store import Store, open_store


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    """(the API's URL, its store)."""
    store = open_store(f"sqlite:///{tmp_path / 'modelplane.db'}")
    try:
        with serving(create_app(store)) as url:
            yield url, store
    finally:
        store.close()
