"""``serve()``: listening, reporting its URL, and stopping cleanly on a signal or an event."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.server._objects import ALICE, model, models_url

from modelplane.api.errors import Unavailable
from modelplane.server import serve

_SERVE_SCRIPT = """
import sys
from modelplane.server import serve
from modelplane.store import open_store

store = open_store(sys.argv[1])
serve(store, port=0, on_started=lambda url: print(url, flush=True))
store.close()
print("stopped", flush=True)
"""


def test_serve_reports_the_real_port_and_returns_once_stop_is_set(store: Any) -> None:
    stop = threading.Event()
    started = threading.Event()
    urls: list[str] = []

    def on_started(url: str) -> None:
        urls.append(url)
        started.set()

    thread = threading.Thread(
        target=serve,
        args=(store,),
        kwargs={
            "port": 0,
            "tokens": {"t": ALICE},
            "on_started": on_started,
            "install_signal_handlers": False,
            "stop": stop,
        },
        daemon=True,
    )
    thread.start()
    assert started.wait(10)
    try:
        url = urls[0]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        with httpx.Client(base_url=url, timeout=10) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get(models_url()).status_code == 401
            auth = {"Authorization": "Bearer t"}
            assert http.post(models_url(), json=model("m"), headers=auth).status_code == 201
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_sigterm_ends_open_watches_and_serve_returns(sqlite_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVE_SCRIPT, sqlite_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://"), process.stderr.read() if process.stderr else url
        with httpx.Client(base_url=url, timeout=10) as http:
            assert http.post(models_url(), json=model("m")).status_code == 201
            with http.stream("GET", models_url(), params={"watch": "true"}) as watch:
                lines = watch.iter_lines()
                assert '"ADDED"' in next(lines)

                process.send_signal(signal.SIGTERM)

                rest = [line for line in lines if line.strip()]
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert rest == []
    assert process.returncode == 0, err
    assert out.strip() == "stopped"
    assert "Traceback" not in err


def test_a_port_in_use_is_a_clear_error(store: Any) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        with pytest.raises(Unavailable) as caught:
            serve(store, port=port, install_signal_handlers=False)

    assert str(port) in caught.value.message
    assert "another process" in caught.value.message
