"""A real server on loopback for each test: the app on uvicorn in a background thread, port 0.

``start_server(**options)`` starts one over the test's ``store`` (both backends) with any
:func:`modelplane.server.create_app` options and returns a :class:`RunningServer`; ``server`` is one
with the defaults (no authentication). Each is told to stop at the end of its test; uvicorn takes
0.2 s to wind down, so the session waits for them all at its end (and fails if one did not stop)
instead of each test waiting for its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from modelplane.server import create_app
from modelplane.server._serve import run_app

STOP_SECONDS = 10.0


@dataclass
class RunningServer:
    url: str
    app: Starlette
    http: httpx.Client
    store: Any


@dataclass
class _Stopping:
    thread: threading.Thread
    failures: list[BaseException]


_STOPPING: list[_Stopping] = []


@pytest.fixture(scope="session", autouse=True)
def _servers_all_stop() -> Iterator[None]:
    yield
    for stopping in _STOPPING:
        stopping.thread.join(STOP_SECONDS)
        assert not stopping.thread.is_alive(), f"a server did not stop within {STOP_SECONDS} s"
        assert not stopping.failures, stopping.failures


@contextmanager
def serving(app: Starlette, *, wait: bool = True) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port) until the block ends; yields its base URL.

    With ``wait=False`` the block ends once the server was told to stop; the session checks that
    it did.
    """
    stop = threading.Event()
    started = threading.Event()
    urls: list[str] = []
    failures: list[BaseException] = []

    def on_started(url: str) -> None:
        urls.append(url)
        started.set()

    def run() -> None:
        try:
            run_app(app, host="127.0.0.1", port=0, on_started=on_started, stop=stop)
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)
            started.set()

    thread = threading.Thread(target=run, name="modelplane-test-server", daemon=True)
    thread.start()
    assert started.wait(STOP_SECONDS), "the server did not start"
    if failures:
        raise failures[0]
    try:
        yield urls[0]
    finally:
        stop.set()
        if wait:
            thread.join(STOP_SECONDS)
            assert not thread.is_alive(), f"the server did not stop within {STOP_SECONDS} s"
            assert not failures, failures
        else:
            _STOPPING.append(_Stopping(thread, failures))


@pytest.fixture
def start_server(store: Any) -> Iterator[Callable[..., RunningServer]]:
    with ExitStack() as stack:

        def start(**options: Any) -> RunningServer:
            app = create_app(store, **options)
            url = stack.enter_context(serving(app, wait=False))
            http = stack.enter_context(httpx.Client(base_url=url, timeout=10.0))
            return RunningServer(url, app, http, store)

        yield start


@pytest.fixture
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server()
