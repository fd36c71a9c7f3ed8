"""Through a real `modelplane up`: /v1 on the API's own port, to an upstream-format version."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess

from modelplane.testing import FakeUpstream

API = "/apis/modelplane.dev/v1alpha1/namespaces/default"


@pytest.fixture
def up(tmp_path: Path) -> Iterator[UpProcess]:
    # the fake provider listens on loopback: embedded mode lets it with an explicit flag
    proc = UpProcess(tmp_path / "home", extra=["--allow-loopback-upstreams"]).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_chat_completion_through_up_reaches_an_upstream_version(up: UpProcess) -> None:
    # given a provider (fake) and its API key in a Secret
    with FakeUpstream("provider", reply="The capital of France is Paris.") as provider:
        secret = {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Secret",
            "metadata": {"name": "provider"},
            "stringData": {"api-key": "sk-test-123"},
        }
        model = {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "hosted"},
            "spec": {
                "versions": [
                    {
                        "name": "v1",
                        "format": "upstream",
                        "source": provider.url,
                        "apiKeySecretRef": {"name": "provider", "key": "api-key"},
                    }
                ]
            },
        }
        endpoint = {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Endpoint",
            "metadata": {"name": "assistant"},
            "spec": {"model": "hosted"},
        }
        with httpx.Client(base_url=up.url, timeout=10) as client:
            assert client.post(f"{API}/secrets", json=secret).status_code == 201
            assert client.post(f"{API}/models", json=model).status_code == 201
            assert client.post(f"{API}/endpoints", json=endpoint).status_code == 201
            wait_until(
                lambda: "assistant" in client.get("/v1/models").text, what="/v1/models lists it"
            )
            # when a client asks on the API's port
            r = client.post(
                "/v1/chat/completions",
                json={"model": "assistant", "messages": [{"role": "user", "content": "Capital?"}]},
            )
        # then the provider answered, called with its key and its own model name
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "The capital of France is Paris."
        assert provider.headers[-1]["authorization"] == "Bearer sk-test-123"
        assert provider.bodies[-1]["model"] == "hosted"
        # and `modelplane chat` streams the same answer
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelplane.cli",
                "chat",
                "--server",
                up.url,
                "assistant",
                "Capital?",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "The capital of France is Paris."
        # and asking for a model that does not exist says so, listing what does
        out = subprocess.run(
            [sys.executable, "-m", "modelplane.cli", "chat", "--server", up.url, "nope", "hi"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 1
        assert "error: 404" in out.stderr and "assistant" in out.stderr
        assert "Traceback" not in out.stderr
