"""``modelplane up --scale-out``: the scaled-out shape on this machine, each component its own
child process on one PostgreSQL.

The first server starts alone (it creates the store's tables and the home's encryption key), then
the other servers, the node agent, the gateways and the agent workers. Each listens on a port of
its own, counted up from ``--port`` (with ``--port 0``, free ports), and logs to
``<home>/logs/<name>.log``. Ctrl-C or SIGTERM stops them all (SIGTERM, then SIGKILL after the
grace); a child that exits by itself stops the others too, and up exits 1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click
import httpx

from modelplane.cli._options import AUTH_OPTIONS, UpOptions
from modelplane.store import redact_url

_READY_TIMEOUT = 60.0
_GRACE = 20.0
#: up's options a server takes as they are
_SERVER_FLAGS = (
    "encryption_key_file", "tls_cert_file", "tls_private_key_file", "max_body_bytes",
    "audit_retention", "model_signing_key",
)  # fmt: skip


@dataclass
class Child:
    """One component process: its command line, where it listens, and the process once started."""

    name: str  # server-1, gateway-2, node, agent-worker-1
    args: list[str]  # after `modelplane`
    url: str | None  # where /readyz answers
    shown: str = ""  # what the table says it serves
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _given(values: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    args: list[str] = []
    for name in names:
        value = values.get(name)
        if value is not None and value != "":
            args += [_flag(name), str(value)]
    return args


def _ports(first: int, count: int) -> list[int]:
    """``count`` ports from ``first`` on; with 0, free ones the system picks."""
    if first:
        return [first + i for i in range(count)]
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def plan(o: UpOptions, auth_flags: dict[str, Any]) -> list[Child]:
    """The child processes of ``up --scale-out``, in the order they start."""
    values = {**vars(o), **auth_flags}
    common = ["--home", o.home, "--database-url", str(o.database_url), "--log-level", o.log_level]
    egress = [a for h in o.upstream_allow for a in ("--upstream-allow", h)]
    egress += ["--allow-loopback-upstreams"] if o.allow_loopback_upstreams else []
    roots = [a for r in o.model_roots for a in ("--model-root", r)]
    auth = _given(values, AUTH_OPTIONS)
    server_args = [*common, *egress, *roots, *auth, *_given(values, _SERVER_FLAGS)]
    ports = iter(_ports(o.port, o.servers + 1 + o.gateways + o.agent_workers))
    scheme = "https" if o.tls_cert_file else "http"
    children: list[Child] = []
    for i in range(1, o.servers + 1):
        port = next(ports)
        first = [a for p in o.paths for a in ("-f", p)] if i == 1 else []
        first += [a for p in o.inventories for a in ("--inventory", p)] if i == 1 else []
        args = ["server", "--host", o.host, "--port", str(port), *server_args, *first]
        url = f"{scheme}://{o.host}:{port}"
        children.append(Child(f"server-{i}", args, url, f"{url} (REST API)"))
    port = next(ports)
    node_args = ["node", "--host", o.host, "--port", str(port), *common, *roots]
    node_args += _given(values, ("encryption_key_file", "model_signing_key"))
    children.append(Child("node", node_args, f"http://{o.host}:{port}", f"http://{o.host}:{port}"))
    gateway_urls = []
    for i in range(1, o.gateways + 1):
        port = next(ports)
        args = ["gateway", "--host", o.host, "--port", str(port), *common, *egress, *auth]
        args += _given(values, ("encryption_key_file", "tls_cert_file", "tls_private_key_file"))
        url = f"{scheme}://{o.host}:{port}"
        gateway_urls.append(url)
        children.append(Child(f"gateway-{i}", args, url, f"{url}/v1"))
    model_url = gateway_urls[0] if gateway_urls else children[0].url or ""
    for i in range(1, o.agent_workers + 1):
        port = next(ports)
        args = ["agent-worker", "--host", o.host, "--port", str(port), "--home", o.home]
        args += ["--database-url", str(o.database_url)]
        args += ["--model-base-url", model_url, "--api-url", str(children[0].url)]
        args += ["--agent-packages", o.agent_packages] if o.agent_packages else []
        args += _given(values, ("service_account_key_file",))
        url = f"http://{o.host}:{port}"
        children.append(Child(f"agent-worker-{i}", args, url, f"{url} (probes)"))
    return children


def _service_account_key(home: Path, auth_flags: dict[str, Any]) -> str | None:
    """The key file every child signs and verifies service-account tokens with: the one given,
    else ``<home>/service-account.key`` (made once, readable by its owner only) when
    authentication is on; None when it is off."""
    given = auth_flags.get("service_account_key_file")
    if given or not (auth_flags.get("token_file") or auth_flags.get("oidc_issuer_url")):
        return str(given) if given else None
    from modelplane.server import ServiceAccountTokens

    path = home / "service-account.key"
    if not path.exists():
        try:
            home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(ServiceAccountTokens().private_pem())
        except OSError as exc:
            raise click.ClickException(f"cannot write {path} ({exc.strerror or exc})") from None
    return str(path)


def _check(o: UpOptions) -> None:
    if not o.database_url or not o.database_url.startswith(("postgresql:", "postgres:")):
        raise click.UsageError(
            "--scale-out needs --database-url postgresql://...: its processes share one store"
            " (SQLite is for one process)"
        )
    if o.servers < 1:
        raise click.UsageError("--scale-out needs --servers 1 or more")


def _start(child: Child, logs: Path) -> None:
    log: IO[bytes]
    with open(logs / f"{child.name}.log", "ab") as log:
        child.proc = subprocess.Popen(
            [sys.executable, "-m", "modelplane.cli", *child.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches up only, which stops them in order
        )


def _wait_ready(child: Child, logs: Path, deadline: float) -> None:
    assert child.proc is not None
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise click.ClickException(
                f"{child.name} exited with {child.proc.returncode}; see {logs}/{child.name}.log"
            )
        if child.url is None:
            return
        try:
            if httpx.get(f"{child.url}/readyz", timeout=1.0, verify=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a child's readiness until a deadline
    raise click.ClickException(
        f"{child.name} not ready after {_READY_TIMEOUT:.0f}s; see {logs}/{child.name}.log"
    )


def _stop_all(children: list[Child]) -> None:
    running = [c for c in children if c.proc is not None and c.proc.poll() is None]
    for child in reversed(running):
        assert child.proc is not None
        child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _GRACE
    for child in reversed(running):
        assert child.proc is not None
        try:
            child.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            click.echo(f"{child.name} did not stop within {_GRACE:.0f}s: killed", err=True)
            child.proc.kill()
            child.proc.wait()


def _table(children: list[Child], o: UpOptions, logs: Path) -> str:
    lines = [f"Modelplane is up, scaled out on {redact_url(str(o.database_url))}:"]
    for c in children:
        pid = c.proc.pid if c.proc is not None else 0
        lines.append(f"  {c.name:<15} {c.shown}  (pid {pid})")
    lines += [f"Logs: {logs}/<name>.log", "Press Ctrl-C to stop them all."]
    return "\n".join(lines)


def _watch(children: list[Child]) -> Child | None:
    """Block until a child exits (returned); Ctrl-C or SIGTERM end it with KeyboardInterrupt."""
    while True:
        for child in children:
            if child.proc is not None and child.proc.poll() is not None:
                return child
        time.sleep(0.2)  # polling the children's exit; a signal ends the wait


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def launch(o: UpOptions, auth_flags: dict[str, Any]) -> int:
    """Start the children, print where each listens, wait, stop them all; the exit code."""
    _check(o)
    home = Path(o.home).expanduser().absolute()
    auth_flags = {**auth_flags, "service_account_key_file": _service_account_key(home, auth_flags)}
    children = plan(o, auth_flags)
    logs = home / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot create {logs} ({exc.strerror or exc})") from None
    # SIGTERM stops them as Ctrl-C does, also while they are starting
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for child in children:  # one at a time: the first server creates the tables
            _start(child, logs)
            _wait_ready(child, logs, time.monotonic() + _READY_TIMEOUT)
        click.echo(_table(children, o, logs))
        died = _watch(children)
    except KeyboardInterrupt:
        died = None
    finally:
        click.echo("Stopping...")
        _stop_all(children)
        signal.signal(signal.SIGTERM, previous)
    if died is not None and died.proc is not None:
        click.echo(
            f"error: {died.name} exited with {died.proc.returncode}; see {logs}/{died.name}.log",
            err=True,
        )
        return 1
    click.echo("Modelplane stopped.")
    return 0
