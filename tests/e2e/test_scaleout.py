"""The scaled-out shape with real processes on PostgreSQL (``docs/scaleout.md``).

- two ``modelplane server`` processes: kill -9 the leader; the standby leads once the lease
  lapses, and a Model applied after the kill is reconciled (the failover time is printed);
- three ``modelplane gateway`` processes: kill -9 one in the middle of a stream; the client's
  retry on another gateway is answered whole;
- ``modelplane up --scale-out``: every component starts as its own process, answers its probes,
  and Ctrl-C stops them all; when one of them dies, up stops the others and exits 1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.control._wait import wait_until
from tests.e2e._proc import free_port

from modelplane.testing import FakeUpstream

LEASE = 3.0  # seconds: a short lease, so that the failover test takes seconds
MODELS = "/apis/modelplane.dev/v1alpha1/namespaces/default/models"

pytestmark = pytest.mark.postgres


def _leads(url: str) -> bool:
    """Whether the server at ``url`` says (``/metrics``) that it runs the controllers."""
    text = httpx.get(f"{url}/metrics", timeout=2.0).text
    return bool(re.search(r"^modelplane_controller_leader\{[^}]*\} 1$", text, re.M))


class ServerProcess:
    """``modelplane server`` in a child process on a port of its own."""

    def __init__(self, home: Path, database_url: str, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"{name}.log"
        home.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "modelplane.cli", "server", "--port", str(self.port)]
        args += ["--home", str(home), "--database-url", database_url]
        args += ["--lease-duration", str(LEASE)]
        env = {k: v for k, v in os.environ.items() if k != "MODELPLANE_DATABASE_URL"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited:\n{self.log.read_text()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def leads(self) -> bool:
        return _leads(self.url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def servers(pg_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    try:
        first = ServerProcess(tmp_path / "home", pg_url, "server-1")
        started.append(first)  # alone first: it creates the tables and the encryption key
        wait_until(first.ready, timeout=60, what="server-1 ready")
        second = ServerProcess(tmp_path / "home", pg_url, "server-2")
        started.append(second)
        wait_until(second.ready, timeout=60, what="server-2 ready")
        yield started
    finally:
        for s in started:
            s.stop()


def _model(name: str) -> dict[str, object]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "task": "chat",
            "versions": [{"name": "v1", "format": "upstream", "source": "http://127.0.0.1:9/v1"}],
        },
    }


def _ready_condition(url: str, name: str) -> dict[str, object] | None:
    r = httpx.get(f"{url}{MODELS}/{name}", timeout=2.0)
    if r.status_code != 200:
        return None
    conditions = (r.json().get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), None)


def test_kill_9_of_the_leading_server_fails_over_and_reconciles(
    servers: list[ServerProcess],
) -> None:
    leader = wait_until(
        lambda: next((s for s in servers if s.leads()), None), timeout=30, what="a leader"
    )
    standby = next(s for s in servers if s is not leader)
    assert not standby.leads(), "two servers lead at once"
    r = httpx.post(f"{standby.url}{MODELS}", json=_model("before"), timeout=5.0)
    assert r.status_code == 201, r.text
    wait_until(
        lambda: _ready_condition(standby.url, "before"), timeout=30, what="before reconciled"
    )

    leader.proc.kill()  # kill -9: the lease is not released, it must lapse
    leader.proc.wait(10)
    killed = time.monotonic()
    r = httpx.post(f"{standby.url}{MODELS}", json=_model("after"), timeout=5.0)
    assert r.status_code == 201, r.text  # the API answers while no one leads
    wait_until(standby.leads, timeout=LEASE * 4, what="the standby to lead")
    failover = time.monotonic() - killed
    ready = wait_until(
        lambda: _ready_condition(standby.url, "after"), timeout=30, what="after reconciled"
    )
    reconciled = time.monotonic() - killed
    print(
        f"\nfailover: standby leads {failover:.2f}s after kill -9 of the leader (lease {LEASE:.0f}s);"
        f" a Model applied after the kill reconciled after {reconciled:.2f}s"
    )
    assert ready["status"] == "True", ready


def _read_table(proc: subprocess.Popen[str], timeout: float) -> dict[str, tuple[str, int]]:
    """``{name: (url or text, pid)}`` from up --scale-out's table, once it is printed."""
    rows: dict[str, tuple[str, int]] = {}
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.match(r"^  (\S+)\s+(\S+).*\(pid (\d+)\)$", line)
        if m:
            rows[m.group(1)] = (m.group(2), int(m.group(3)))
        if line.startswith("Press Ctrl-C") or time.monotonic() > deadline:
            break
    return rows


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_scale_out_starts_every_component_and_ctrl_c_stops_them(
    pg_url: str, tmp_path: Path
) -> None:
    args = [sys.executable, "-m", "modelplane.cli", "up", "--scale-out", "--port", "0"]
    args += ["--home", str(tmp_path / "home"), "--database-url", pg_url]
    args += ["--servers", "2", "--gateways", "1", "--agent-workers", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        rows = _read_table(proc, timeout=120)
        assert set(rows) == {"server-1", "server-2", "node", "gateway-1", "agent-worker-1"}, rows
        for name in ("server-1", "server-2", "node", "agent-worker-1"):
            assert httpx.get(f"{rows[name][0]}/readyz", timeout=5).status_code == 200, name
        metrics = httpx.get(f"{rows['agent-worker-1'][0]}/metrics", timeout=5).text
        assert 'modelplane_ready{component="agent-worker"} 1' in metrics
        gateway = rows["gateway-1"][0].removesuffix("/v1")
        assert httpx.get(f"{gateway}/readyz", timeout=5).status_code == 200
        servers = [rows["server-1"][0], rows["server-2"][0]]
        wait_until(lambda: sum(map(_leads, servers)) == 1, timeout=30, what="one leader")
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "Modelplane stopped." in out
    assert [name for name, (_, pid) in rows.items() if _alive(pid)] == []


class GatewayProcess:
    """``modelplane gateway`` in a child process on a port of its own."""

    def __init__(self, home: Path, database_url: str, name: str) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = home / f"{name}.log"
        home.mkdir(parents=True, exist_ok=True)
        port = self.url.rsplit(":", 1)[1]
        args = [sys.executable, "-m", "modelplane.cli", "gateway", "--port", port]
        args += ["--home", str(home)]
        args += ["--database-url", database_url, "--allow-loopback-upstreams"]
        env = {k: v for k, v in os.environ.items() if k != "MODELPLANE_DATABASE_URL"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"gateway exited:\n{self.log.read_text()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False


def _hosted_endpoint(database_url: str, upstream: str) -> None:
    from modelplane.api import validate
    from modelplane.store import open_store

    versions = [{"name": "v1", "format": "upstream", "source": upstream}]
    with open_store(database_url) as store:
        for obj in (
            {"kind": "Model", "metadata": {"name": "hosted"}, "spec": {"versions": versions}},
            {"kind": "Endpoint", "metadata": {"name": "chat"}, "spec": {"model": "hosted"}},
        ):
            store.create(validate({"apiVersion": "modelplane.dev/v1alpha1", **obj}))


def _stream(url: str, on_first: Callable[[], None] | None = None) -> tuple[str, bool]:
    """Stream one reply from the gateway at ``url``: (text, whether it ended with [DONE])."""
    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    text = ""
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line == "data: [DONE]":
                return text, True
            if line.startswith("data: "):
                for choice in json.loads(line[6:]).get("choices") or []:
                    text += (choice.get("delta") or {}).get("content") or ""
                if text and on_first is not None:
                    on_first()
                    on_first = None
    return text, False


def test_a_gateway_killed_mid_stream_and_the_client_retries_on_another(
    pg_url: str, tmp_path: Path
) -> None:
    with FakeUpstream("provider", reply="the answer is forty-two", chunks=4) as provider:
        provider.done_gap = 3.0  # the stream stays open after its text: time to kill mid-stream
        _hosted_endpoint(pg_url, provider.url)
        gateways = [GatewayProcess(tmp_path / "home", pg_url, f"gateway-{i}") for i in range(3)]
        try:
            for g in gateways:
                wait_until(g.ready, timeout=60, what="a gateway ready")
            victim = gateways[0]
            # when the gateway streaming a reply is killed -9 after its first words
            with pytest.raises(httpx.TransportError):
                text, done = _stream(victim.url, on_first=victim.proc.kill)
                assert not done  # reached only if the stream ended quietly: it must not
            victim.proc.wait(10)
            # then the client retries on another gateway, which answers it whole
            provider.done_gap = None
            text, done = _stream(gateways[1].url)
            assert done and text == "the answer is forty-two"
            assert gateways[2].ready()  # and the third never noticed
        finally:
            for g in gateways:
                if g.proc.poll() is None:
                    g.proc.terminate()
                    g.proc.wait(20)


def test_up_scale_out_stops_the_others_when_one_process_dies(pg_url: str, tmp_path: Path) -> None:
    args = [sys.executable, "-m", "modelplane.cli", "up", "--scale-out", "--port", "0"]
    args += ["--home", str(tmp_path / "home"), "--database-url", pg_url]
    args += ["--servers", "1", "--gateways", "0", "--agent-workers", "0"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        rows = _read_table(proc, timeout=120)
        assert set(rows) == {"server-1", "node"}, rows
        os.kill(rows["node"][1], signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out
    assert "error: node exited with -9" in out
    assert not _alive(rows["server-1"][1])
