"""A gateway cut off from PostgreSQL by a network partition keeps serving from its cache, and
catches up once the network heals (the data plane never waits on the control plane).

The partition is real: the gateway runs in a network namespace made by the test (``ip netns``),
joined to this machine by two veth links, one to PostgreSQL (a server of the test's own,
``tests/_postgres.py``) and one to the client; the test takes the first link down and up again.
The fake hosted provider runs in the namespace beside the gateway. Needs root and ``ip``; it says
so and skips elsewhere.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests._postgres import private_postgres, unavailable
from tests.agents._effects import assert_each_step_once, make_effects_db
from tests.control._wait import wait_until

from modelplane.api import validate
from modelplane.store import open_store

pytestmark = pytest.mark.slow


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    return unavailable()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Namespace:
    name: str
    db_host: str  # this machine's end of the database link
    db_link: str
    api_addr: str  # the namespace's end of the client link

    def run(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.name, *args], stdout=out, stderr=subprocess.STDOUT
            )

    def partition(self, cut: bool) -> None:
        _ip("link", "set", self.db_link, "down" if cut else "up")


@pytest.fixture
def netns() -> Iterator[Namespace]:
    if why := _why_not():
        pytest.skip(why)
    tag = f"{random.randrange(16**4):04x}"
    name, k = f"mp-part-{tag}", random.randrange(10, 250)
    try:
        _ip("netns", "add", name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot make a network namespace here: {exc.stderr.decode().strip()}")
    links = []
    try:
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        for i, subnet in enumerate((f"10.231.{k}", f"10.232.{k}")):
            host, inner = f"mpp{tag}h{i}", f"mpp{tag}n{i}"
            _ip("link", "add", host, "type", "veth", "peer", "name", inner, "netns", name)
            links.append(host)
            _ip("addr", "add", f"{subnet}.1/24", "dev", host)
            _ip("link", "set", host, "up")
            _ip("netns", "exec", name, "ip", "addr", "add", f"{subnet}.2/24", "dev", inner)
            _ip("netns", "exec", name, "ip", "link", "set", inner, "up")
        yield Namespace(name, f"10.231.{k}.1", links[0], f"10.232.{k}.2")
    finally:
        for link in links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _hosted(url: str, name: str, upstream: str) -> None:
    versions = [{"name": "v1", "format": "upstream", "source": upstream}]
    with open_store(url) as store:
        for obj in (
            {"kind": "Model", "metadata": {"name": f"{name}-m"}, "spec": {"versions": versions}},
            {"kind": "Endpoint", "metadata": {"name": name}, "spec": {"model": f"{name}-m"}},
        ):
            store.create(validate({"apiVersion": "modelplane.dev/v1alpha1", **obj}))


def _chat(base: str, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    try:
        return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=10).status_code
    except httpx.TransportError:
        return 0


def test_a_partitioned_gateway_serves_from_its_cache_and_catches_up_when_healed(
    netns: Namespace, tmp_path: Path
) -> None:
    with private_postgres() as pg:
        pg.stop()
        pg.start(also_listen=netns.db_host)
        upstream_port = random.randrange(20000, 30000)
        provider = netns.run(
            [sys.executable, "-m", "modelplane.testing.upstream", "--port", str(upstream_port)],
            tmp_path / "upstream.log",
        )
        inner_db = pg.url.replace("127.0.0.1", netns.db_host)
        gateway = netns.run(
            [sys.executable, "-m", "modelplane.cli", "gateway", "--host", netns.api_addr,
             "--port", "8480", "--home", str(tmp_path / "home"), "--database-url", inner_db,
             "--allow-loopback-upstreams"],
            tmp_path / "gateway.log",
        )  # fmt: skip
        base = f"http://{netns.api_addr}:8480"
        try:
            # given a gateway in the namespace serving an Endpoint from PostgreSQL outside it
            _hosted(pg.url, "chat", f"http://127.0.0.1:{upstream_port}/v1")
            wait_until(lambda: _chat(base, "chat") == 200, timeout=90, what="chat served")

            # when the link to PostgreSQL is cut
            netns.partition(cut=True)
            # then the gateway goes on answering from its cache, request after request, for 10 s
            codes, cut_at = [], time.monotonic()
            while time.monotonic() - cut_at < 10:
                codes.append(_chat(base, "chat"))
            assert len(codes) >= 10 and set(codes) == {200}, codes
            # and an Endpoint created meanwhile is not known to it yet
            _hosted(pg.url, "later", f"http://127.0.0.1:{upstream_port}/v1")
            assert _chat(base, "later") == 404
            assert gateway.poll() is None

            # when the link heals, then its watch catches up and serves the new Endpoint
            netns.partition(cut=False)
            wait_until(lambda: _chat(base, "later") == 200, timeout=120, what="catching up")
            assert _chat(base, "chat") == 200
        finally:
            for proc in (gateway, provider):
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    assert "Traceback" not in (tmp_path / "gateway.log").read_text()


AGENTS = Path(__file__).resolve().parents[1] / "agents"
INSTANCES, STEPS = 24, 120


def _holders(url: str) -> dict[int, str]:
    from modelplane.agents import SHARDS
    from modelplane.agents._shards import SHARD_LEASE

    with open_store(url) as store:
        now, out = time.time(), {}
        for shard in range(SHARDS):
            lease = store.get_lease(SHARD_LEASE.format(shard))
            if lease is not None and lease.holder and lease.expires_at > now:
                out[shard] = lease.holder
        return out


def test_an_agent_worker_partitioned_past_its_lease_loses_its_shards_and_nothing_runs_twice(
    netns: Namespace, tmp_path: Path
) -> None:
    from modelplane.agents._journal import Database
    from modelplane.agents.runtime import Instances

    effects = tmp_path / "effects.db"
    make_effects_db(effects)
    os.environ["CRASH_EFFECTS_DB"] = str(effects)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(AGENTS), os.environ.get("PYTHONPATH", "")])
    with private_postgres() as pg:
        pg.stop()
        pg.start(also_listen=netns.db_host)
        # given instances of an agent with side effects, on three workers, one in the namespace
        with open_store(pg.url) as store:
            store.create(
                validate(
                    {
                        "apiVersion": "modelplane.dev/v1alpha1",
                        "kind": "Agent",
                        "metadata": {"name": "crashy"},
                        "spec": {"entrypoint": "agent_handlers:crashy"},
                    }
                )
            )
        db = Database(pg.url)
        for i in range(INSTANCES):
            Instances(db).create("default", "crashy", f"i{i:03d}", {"steps": STEPS})

        def worker(url: str) -> list[str]:
            return [sys.executable, "-m", "modelplane.agents._worker", "--database-url", url,
                    "--agent-packages", "agent_handlers", "--lease-duration", "2"]  # fmt: skip

        cut_off = netns.run(worker(pg.url.replace("127.0.0.1", netns.db_host)), tmp_path / "w0.log")
        others = [
            subprocess.Popen(worker(pg.url), stderr=(tmp_path / f"w{i}.log").open("wb"))
            for i in (1, 2)
        ]
        try:
            mine = f"/{cut_off.pid}/"
            wait_until(
                lambda: len(set(_holders(pg.url).values())) == 3, timeout=60, what="three holders"
            )
            steps = "SELECT COUNT(*) FROM agent_journal WHERE kind = 'step'"
            wait_until(lambda: (db.one(steps) or (0,))[0] > 200, timeout=60, what="progress")

            # when the namespaced worker is cut off from the database past its lease
            netns.partition(cut=True)
            wait_until(
                lambda: (h := _holders(pg.url)) and not any(mine in v for v in h.values()),
                timeout=60,
                what="its shards taken over",
            )
            # and the network heals while it still believes it holds them
            netns.partition(cut=False)

            # then every instance completes
            done = "SELECT COUNT(*) FROM agent_instances WHERE status = 'completed'"
            wait_until(lambda: (db.one(done) or (0,))[0] == INSTANCES, timeout=180, what="all")
            assert cut_off.poll() is None and all(w.poll() is None for w in others)
            journal = db.query("SELECT iid, name, data FROM agent_journal WHERE kind = 'step'")
            names = dict(db.query("SELECT iid, name FROM agent_instances"))
        finally:
            db.close()
            for proc in (cut_off, *others):
                proc.kill()
                proc.wait(10)

    # with every step journaled once, its effect made once, no journaled step run again
    assert_each_step_once(effects, journal, names, INSTANCES * STEPS)
