"""Real ``modelplane`` processes for the CLI tests, and the CLI run in-process against them."""

from __future__ import annotations

import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
from click.testing import CliRunner, Result
from tests.control._wait import wait_until
from tests.e2e._proc import free_port

from modelplane.cli import cli

T = TypeVar("T")

#: the environment a test must not inherit: it would point the CLI elsewhere
_CLIENT_ENV = (
    "MODELPLANE_SERVER",
    "MODELPLANE_TOKEN",
    "MODELPLANE_TOKEN_FILE",
    "MODELPLANE_CA_FILE",
    "MODELPLANE_DATABASE_URL",
    "MODELPLANE_HOME",
)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 15.0) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    return wait_until(check, timeout=timeout, what=what)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLIENT_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def modelplane_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelplane.cli", *args]


class UpServer:
    """``modelplane up`` in a child process on a free port, its stdout and stderr in files.

    ``ca_file``: up serves HTTPS (its ``args`` give the certificate), checked against this CA.
    """

    def __init__(
        self, home: Path, *args: str, port: int | None = None, ca_file: str | None = None
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.url = f"{'https' if ca_file else 'http'}://127.0.0.1:{self.port}"
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_file) if ca_file else True
        )
        self.args = list(args)
        self.stdout_path = home.parent / f"{home.name}.stdout"
        self.stderr_path = home.parent / f"{home.name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> UpServer:
        command = modelplane_command(
            "up", "--port", str(self.port), "--home", str(self.home), *self.args
        )
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(command, stdout=out, stderr=err, env=clean_env())
        return self

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_ready(self, timeout: float = 30.0) -> UpServer:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"modelplane up exited with {self.proc.returncode}:\n{self.stdout}\n{self.stderr}"
                )
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=2.0, verify=self.verify)
                return response.status_code == 200
            except httpx.TransportError:
                return False

        wait_for(f"modelplane up on {self.url} to be ready", ready, timeout)
        return self

    def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        """Send ``sig``; return the exit code (killing the process if it does not exit in time)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(
                    f"modelplane up did not exit within {timeout}s of signal {sig}:\n{self.stderr}"
                ) from None
        return self.proc.returncode


def run_cli(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in this process, as a user would type ``modelplane ARGS``."""
    runner = CliRunner(env={name: None for name in _CLIENT_ENV} | (env or {}))
    return runner.invoke(cli, list(args), input=input, catch_exceptions=False)


class LineReader:
    """The lines a child process writes, read on a thread so a test can wait with a deadline."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._queue.put(raw.decode().rstrip("\n"))
        self._queue.put(None)

    def next(self, timeout: float) -> str | None:
        """The next line, waiting up to ``timeout`` seconds; None if none came (or the end)."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is not None:
            self.lines.append(line)
        return line

    def drain(self, timeout: float = 10.0) -> None:
        """Read every remaining line, until the stream ends (the process exited)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                return
            self.lines.append(line)
        raise AssertionError(f"the stream did not end within {timeout}s")

    def until(self, predicate: Callable[[str], bool], timeout: float = 15.0) -> str:
        """Read lines until one satisfies ``predicate``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching line within {timeout}s; got {self.lines}")
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the stream ended without a matching line; got {self.lines}")
            self.lines.append(line)
            if predicate(line):
                return line


def spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """A ``modelplane`` child process with piped stdout and stderr."""
    return subprocess.Popen(
        modelplane_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        **kwargs,
    )
