"""Fixtures: a gateway on a fresh SQLite store (``env``), torn down after each test; the spans
it records (``spans``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.gateway import _spans
from tests.gateway._env import Env, GatewayThread

from modelplane.egress import EgressRules
from modelplane.gateway import Gateway
from modelplane.store import open_store


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    store = open_store(f"sqlite:///{tmp_path / 'modelplane.db'}")
    gateway = Gateway(
        store,
        # the fake upstreams listen on loopback, as a provider on this machine would
        egress=EgressRules(allow_loopback=True),
        connect_timeout=0.5,
        read_timeout=1.5,
        scrape_interval=0.05,
    )
    thread = GatewayThread(gateway).start()
    e = Env(store, thread, tmp_path)
    try:
        yield e
    finally:
        e.close()
        thread.stop()
        store.close()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans finished during the test, recorded by the real SDK's in-memory exporter."""
    exporter = _spans.exporter()
    yield exporter
    exporter.clear()
