"""Real `modelplane up` processes for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UpProcess:
    """`modelplane up` in a child process, on a port of its own, until stopped or killed."""

    def __init__(self, home: Path, *, database_url: str | None = None, extra: Sequence[str] = ()):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "up.log"

    def start(self, timeout: float = 30.0) -> UpProcess:
        args = [sys.executable, "-m", "modelplane.cli", "up", "--port", str(self.port)]
        args += ["--home", str(self.home), *self.extra]
        if self.database_url:
            args += ["--database-url", self.database_url]
        env = dict(os.environ)
        env.pop("MODELPLANE_DATABASE_URL", None)
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"modelplane up exited with {self.proc.returncode}:\n{self.log.read_text()}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling a condition with a deadline, not synchronising on time
        raise AssertionError(f"modelplane up not ready after {timeout}s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """kill -9: no chance to flush or clean up."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def simulated_model(name: str) -> dict[str, Any]:
    """A Model of one version whose artifact is never loaded: the Endpoints serving it are
    annotated ``modelplane.dev/simulated`` (replicas of the simulated worker)."""
    version = {"name": "v1", "source": "x", "format": "safetensors", "digest": "sha256:" + "0" * 64}
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"versions": [version]},
    }
