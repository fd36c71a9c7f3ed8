"""One replica's worker process: start it, notice it died, restart it with exponential backoff.

A replica is desired as a :class:`ReplicaSpec` (its command line and environment); a
:class:`ReplicaProcess` runs it. Restarts back off 1, 2, 4... seconds up to :data:`MAX_BACKOFF`;
a replica that stayed up for :data:`STABLE_SECONDS` starts again from the shortest backoff.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

#: exit status of a worker that refused its artifact (see modelplane.serving.worker)
EXIT_ARTIFACT_REFUSED = 3
MAX_BACKOFF = 60.0
STABLE_SECONDS = 60.0
_HEALTH_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class ReplicaSpec:
    """What to run for one replica of one version of an Endpoint."""

    namespace: str
    endpoint: str
    version: str
    index: int
    node: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    simulated: bool = False

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.namespace, self.endpoint, self.version, self.index)

    @property
    def name(self) -> str:
        return f"{self.endpoint}-{self.version}-{self.index}"


@dataclass(eq=False)
class ReplicaProcess:
    """A supervised worker process for ``spec``; files go under ``run_dir``."""

    spec: ReplicaSpec
    run_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int | None = None
    ready: bool = False
    message: str = "starting"
    reason: str = "Starting"
    restarts: int = 0
    next_start: float = 0.0
    #: LoRA adapters the worker holds now, and those registered with it (its /health)
    adapters: tuple[str, ...] = ()
    registered_adapters: frozenset[str] = frozenset()
    #: the digest the agent registered for each adapter, by name
    adapter_digests: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0
    idle_seconds: float = 0.0
    #: monotonic time of the last change from not ready to ready (0 while never ready)
    ready_since: float = 0.0
    queue_depth: int = 0
    refused: bool = False
    _log: Path = field(init=False)
    _port_file: Path = field(init=False)

    def __post_init__(self) -> None:
        s = self.spec
        base = f"{s.namespace}.{s.endpoint}.{s.version}.{s.index}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.run_dir / f"{base}.log"
        self._port_file = self.run_dir / f"{base}.port"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1" if self.port else ""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        self._port_file.unlink(missing_ok=True)
        argv = [*self.spec.argv, "--port-file", str(self._port_file)]
        env = {**os.environ, **dict(self.spec.env)}
        with open(self._log, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C in our terminal is ours to relay, not theirs
            )
        self.started_at = time.monotonic()
        self.port = None
        self.ready = False
        self.reason, self.message = "Starting", "worker process started; loading the model"

    def tick(self, client: httpx.Client, now: float) -> None:
        """Notice an exit (and schedule a restart), learn the port, check health."""
        if self.proc is None:
            if now >= self.next_start and not self.refused:
                self.start()
            return
        code = self.proc.poll()
        if code is not None:
            self._exited(code, now)
            return
        if self.port is None:
            try:
                self.port = int(self._port_file.read_text().strip())
            except (OSError, ValueError):
                return
        try:
            health = client.get(f"http://127.0.0.1:{self.port}/health", timeout=_HEALTH_TIMEOUT)
            body = health.json()
            ok = health.status_code == 200
        except (httpx.HTTPError, ValueError) as exc:
            ok, body = False, {"error": str(exc)}
        if ok and not self.ready:
            self.ready_since = now
        self.ready = ok
        if ok:
            self.reason, self.message = "Ready", "serving"
            self.idle_seconds = float(body.get("idleSeconds") or 0.0)
            self.queue_depth = int(body.get("queueDepth") or 0)
            self.adapters = tuple(str(a) for a in body.get("adapters") or ())
            self.registered_adapters = frozenset(
                str(a) for a in body.get("registeredAdapters") or ()
            )
            if now - self.started_at > STABLE_SECONDS:
                self.restarts = 0
        else:
            self.reason, self.message = "Unhealthy", f"health check failed: {body.get('error')}"

    def _exited(self, code: int, now: float) -> None:
        self.proc = None
        self.port = None
        self.ready = False
        tail = self.log_tail()
        if code == EXIT_ARTIFACT_REFUSED:
            # restarting cannot help until the artifact or the spec changes
            self.refused = True
            self.reason = "ArtifactRefused"
            self.message = tail or "the worker refused its artifact"
            return
        self.restarts += 1
        delay = min(MAX_BACKOFF, 2.0 ** (self.restarts - 1))
        self.next_start = now + delay
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        self.reason = "CrashLoopBackOff"
        self.message = f"worker ended ({how}); restart {self.restarts} in {delay:g}s" + (
            f"; last output: {tail}" if tail else ""
        )

    def log_tail(self, limit: int = 400) -> str:
        try:
            with open(self._log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                lines = f.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][-limit:] if lines else ""

    def stop(self, timeout: float = 5.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout`` s; returns whether it ended gracefully."""
        proc, self.proc = self.proc, None
        self.ready = False
        if proc is None or proc.poll() is not None:
            return True
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return False
