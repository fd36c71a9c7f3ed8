"""`modelplane gateway` alone: serves /v1 from the store named by --database-url."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from tests.control._wait import wait_until
from tests.e2e._proc import free_port

from modelplane.api import validate
from modelplane.gateway import FakeUpstream
from modelplane.store import open_store


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=1.0)
    except httpx.TransportError:
        return None


def test_gateway_command_serves_models_from_the_store(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    with FakeUpstream("provider", reply="pong") as provider, open_store(db) as store:
        store.create(
            validate(
                {
                    "apiVersion": "modelplane.dev/v1alpha1",
                    "kind": "Model",
                    "metadata": {"name": "hosted"},
                    "spec": {
                        "versions": [{"name": "v1", "format": "upstream", "source": provider.url}]
                    },
                }
            )
        )
        store.create(
            validate(
                {
                    "apiVersion": "modelplane.dev/v1alpha1",
                    "kind": "Endpoint",
                    "metadata": {"name": "ping"},
                    "spec": {"model": "hosted"},
                }
            )
        )
        port = free_port()
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "modelplane.cli", "gateway", "--port", str(port)),
                *("--database-url", db, "--home", str(tmp_path)),
            ],
            stderr=subprocess.PIPE,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until(
                lambda: (r := _get(f"{base}/readyz")) is not None and r.status_code == 200,
                timeout=20,
                what="the gateway to be ready",
            )
            r = httpx.post(
                f"{base}/v1/chat/completions",
                json={"model": "ping", "messages": [{"role": "user", "content": "ping?"}]},
            )
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == "pong"
            assert "modelplane_gateway_requests_total" in httpx.get(f"{base}/metrics").text
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=15)
        assert b"Traceback" not in err
