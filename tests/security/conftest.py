"""A real API server on loopback with the routes `modelplane up` mounts beside it (``/v1``,
``/agents``), over a fresh SQLite store: what a hostile client reaches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.routing import Mount
from tests.security._platform import use_key_file
from tests.server.conftest import RunningServer, serving

from modelplane import platform
from modelplane.agents._routes import routes as agent_routes
from modelplane.gateway import Gateway
from modelplane.policy import Tenancy
from modelplane.server import create_app
from modelplane.store import Store, open_store


@pytest.fixture
def api(tmp_path: Path) -> Iterator[RunningServer]:
    store = open_store(f"sqlite:///{tmp_path / 'modelplane.db'}")
    gateway = Gateway(store)
    app = create_app(
        store,
        routes=[Mount("/v1", app=gateway.app), *agent_routes(store, Tenancy())],
        openapi=platform.openapi(),
    )
    try:
        with serving(app) as url, httpx.Client(base_url=url, timeout=10.0) as http:
            yield RunningServer(url, app, http, store)
    finally:
        gateway.stop()
        store.close()


@pytest.fixture
def sqlite_store(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    """A fresh SQLite store whose Secrets use a key file of the test's own."""
    use_key_file(tmp_path, monkeypatch)
    with open_store(sqlite_url) as store:
        yield store
