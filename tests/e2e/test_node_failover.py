"""A node lost with its replica: real ``modelplane server`` and two ``modelplane node`` processes on
PostgreSQL serving SmolLM2. The node running the replica is killed with SIGKILL together with its
worker (the machine is gone); the server marks the Node ``Ready=Unknown`` once its heartbeat lease
lapsed, the claim is placed on the other node, whose agent starts the replica, and ``/v1`` answers
again. The time from the kill to the first answer is printed (``docs/scaleout.md``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from tests.control._wait import wait_until
from tests.e2e._proc import free_port
from tests.e2e.test_quickstart_agent import _seeded_home

from modelplane.control import get_condition

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LEASE = 2.0  # seconds: the nodes' heartbeat lease and the server's grace, short for the test
API = "/apis/modelplane.dev/v1alpha1/namespaces/default"


class Component:
    """``modelplane ARGS`` in a child process with a probe port of its own."""

    def __init__(self, name: str, args: list[str], home: Path, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home.parent / f"{name}.log"
        argv = [sys.executable, "-m", "modelplane.cli", *args, "--port", str(self.port)]
        argv += ["--home", str(home), "--database-url", database_url, "--log-level", "warning"]
        env = {k: v for k, v in os.environ.items() if k != "MODELPLANE_DATABASE_URL"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"exited with {self.proc.returncode}:\n{self.log.read_text()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def kill_with_children(self) -> None:
        """SIGKILL the process and everything it started (its replicas run in sessions of
        their own, so they would outlive it)."""
        family = [*psutil.Process(self.proc.pid).children(recursive=True)]
        self.proc.send_signal(signal.SIGKILL)
        for child in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _manifests() -> list[dict[str, Any]]:
    model = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "smollm2", "namespace": "default"},
        "spec": {
            "task": "chat",
            "versions": [
                {
                    "name": "v1",
                    "source": "artifacts/SmolLM2-135M-Instruct.Q4_1.gguf",
                    "format": "gguf",
                    "digest": "sha256:b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                }
            ],
        },
    }
    cpu = {"name": "cpu", "exactly": {"deviceClassName": "cpu.modelplane.dev"}}
    endpoint = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Endpoint",
        "metadata": {"name": "smollm2", "namespace": "default"},
        "spec": {
            "model": "smollm2",
            "replicas": {"min": 1, "max": 1},
            "devices": {"requests": [cpu]},
        },
    }
    return [model, endpoint]


def _serving_node(url: str) -> str | None:
    """The node of the Endpoint's ready replica, once the Endpoint is Ready."""
    r = httpx.get(f"{url}{API}/endpoints/smollm2", timeout=5)
    status = (r.json().get("status") or {}) if r.status_code == 200 else {}
    ready = get_condition(status, "Ready") or {}
    nodes = [str(x.get("node")) for x in status.get("replicas") or () if x.get("ready")]
    return nodes[0] if ready.get("status") == "True" and len(nodes) == 1 else None


def _state(url: str) -> str:
    """What the server says of the nodes, the claims and the Endpoint (for a failure's message)."""
    paths = ["/apis/modelplane.dev/v1alpha1/nodes", "/apis/resource.k8s.io/v1/resourceclaims"]
    paths.append(f"{API}/endpoints/smollm2")
    return "\n".join(f"{p}: {httpx.get(url + p, timeout=5).text[:3000]}" for p in paths)


def _answers(url: str) -> bool:
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    try:
        return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).status_code == 200
    except httpx.TransportError:
        return False


def test_a_node_lost_with_its_replica_has_it_placed_and_served_on_the_other_node(
    pg_url: str, smollm2: tuple[Path, str], tmp_path: Path
) -> None:
    home = _seeded_home(smollm2, tmp_path)  # one home, as on shared storage
    grace = ["--node-monitor-grace-period", str(LEASE)]
    server = Component("server", ["server", *grace], home, pg_url)
    started = [server]
    try:
        wait_until(server.ready, timeout=90, what="the server ready")
        nodes = {}
        for name in ("node-a", "node-b"):
            args = ["node", "--node-name", name, "--node-lease-duration", str(LEASE)]
            nodes[name] = Component(name, args, home, pg_url)
            started.append(nodes[name])
        for name, node in nodes.items():
            wait_until(node.ready, timeout=90, what=f"{name} ready")
        # given SmolLM2 served by one replica on one of the two nodes
        for manifest in _manifests():
            plural = manifest["kind"].lower() + "s"
            r = httpx.post(f"{server.url}{API}/{plural}", json=manifest, timeout=30)
            assert r.status_code == 201, r.text
        first = wait_until(lambda: _serving_node(server.url), timeout=180, what="a ready replica")
        assert wait_until(lambda: _answers(server.url), timeout=60, what="an answer")
        # when that node's machine is gone: its agent and its worker killed with SIGKILL
        nodes[first].kill_with_children()
        killed = time.monotonic()
        # then the replica runs on the other node and /v1 answers again
        other = next(n for n in nodes if n != first)
        try:
            wait_until(
                lambda: _serving_node(server.url) == other,
                timeout=180,
                what=f"the replica on {other}",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_state(server.url)}") from None
        assert wait_until(lambda: _answers(server.url), timeout=60, what="an answer again")
        failover = time.monotonic() - killed
        print(f"node failover: {failover:.1f}s from SIGKILL to an answer from {other}")
        # and the lost Node says why, and the claim was re-placed saying from where
        lost = httpx.get(f"{server.url}/apis/modelplane.dev/v1alpha1/nodes/{first}", timeout=5)
        ready = get_condition(lost.json().get("status"), "Ready") or {}
        assert (ready.get("status"), ready.get("reason")) == ("Unknown", "NodeStatusUnknown")
        events = httpx.get(f"{server.url}{API}/events", timeout=5).json()["items"]
        reasons = [e["reason"] for e in events]
        assert "Rescheduled" in reasons, reasons
    finally:
        for component in reversed(started):
            component.stop()
