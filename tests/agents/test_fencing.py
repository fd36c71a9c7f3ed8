"""Shard leases and fencing for every runtime on one database (``up`` and ``agent-worker``).

Each process holds the leases of a share of the 16 shards and runs only their instances; a shard
lease's token (its ``transitions``) fences the journal: a worker that stalled past its lease and
wakes after another took the shard cannot commit. ``agent-worker`` runs the store's ``Agent``
objects as ``up`` does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import agent_handlers as h  # type: ignore[import-not-found]
import pytest
from tests.control._wait import wait_until

from modelplane.agents import SHARDS, shard_of
from modelplane.agents._execution import INSERT_RECORD
from modelplane.agents._journal import Database, GroupCommit, checksum
from modelplane.agents._routes import agents_url
from modelplane.agents._service import AgentService
from modelplane.agents._shards import SHARD_LEASE, ShardLeases
from modelplane.agents.errors import Fenced
from modelplane.agents.runtime import Instances
from modelplane.store import Store, open_store

HERE = Path(__file__).parent
EXAMPLES = HERE.parents[1] / "examples" / "quickstart" / "agent"
#: short leases keep the takeover quick; renewals come every LEASE / 3 seconds
LEASE = 1.5


def _agent(name: str, entrypoint: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"entrypoint": entrypoint, **spec},
    }


def _holder(store: Store, shard: int) -> str | None:
    """Who holds ``shard``'s lease now (None: nobody, or it lapsed)."""
    lease = store.get_lease(SHARD_LEASE.format(shard))
    return lease.holder if lease is not None and lease.expires_at > time.time() else None


def _pid(holder: str | None) -> int | None:
    return None if holder is None else int(holder.split("/")[1])


class _Worker:
    """An ``agent-worker`` process running the store's Agents, its stderr kept in a file."""

    def __init__(self, store_url: str, log: Path) -> None:
        self.log = log
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        args = [sys.executable, "-m", "modelplane.agents._worker", "--database-url", store_url]
        args += ["--agent-packages", "agent_handlers", "--lease-duration", str(LEASE)]
        args += ["--model-base-url", "http://127.0.0.1:9", "--home", str(log.parent / "home")]
        with log.open("wb") as err:
            self.proc = subprocess.Popen(args, env=env, stderr=err)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def said(self, text: str) -> bool:
        return text in self.log.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.proc.terminate()
        return self.proc.wait(30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[_Worker]]:
    started: list[_Worker] = []
    yield started
    for worker in started:
        worker.kill()


# -- the fencing token in the commit ---------------------------------------------------------


def test_a_commit_under_a_superseded_fencing_token_is_refused_inside_its_transaction(
    store_url: str,
) -> None:
    db = Database(agents_url(store_url))
    writer = GroupCommit(db)
    try:
        # given an instance whose shard was claimed with the token 4, and a commit under it
        Instances(db).create("default", "a", "i1", None)
        row = db.instance("default", "a", "i1")
        assert row is not None
        shard = row.shard

        def record(seq: int) -> tuple[str, tuple[Any, ...]]:
            name = f"s{seq}"
            return (
                INSERT_RECORD,
                (row.iid, seq, "step", name, b"1", checksum("step", name, b"1"), 0.0),
            )

        assert db.claim_shards({shard: 4}) == {shard}
        writer.submit_sync([record(2)], fence=(shard, 4))
        # when a newer holder claims the shard (token 5); an older claim (3) changes nothing
        assert db.claim_shards({shard: 5}) == {shard}
        assert db.claim_shards({shard: 3}) == set()
        # then the old holder's commit is refused, and nothing of it is written
        with pytest.raises(Fenced, match=f"shard {shard} moved to another worker"):
            writer.submit_sync([record(3)], fence=(shard, 4))
        seqs = db.query("SELECT seq FROM agent_journal WHERE iid = ? ORDER BY seq", (row.iid,))
        assert [s for (s,) in seqs] == [1, 2]
        # and the new holder's commit goes through
        writer.submit_sync([record(3)], fence=(shard, 5))
        seqs = db.query("SELECT seq FROM agent_journal WHERE iid = ? ORDER BY seq", (row.iid,))
        assert [s for (s,) in seqs] == [1, 2, 3]
    finally:
        writer.close()
        db.close()


# -- up's runtime on shard leases ------------------------------------------------------------


def test_a_runtime_alone_on_its_database_owns_every_shard_once_started_even_after_a_kill_9(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'modelplane.db'}")
    # given the leases of a runtime killed with -9 on this host, still valid for a minute
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    dead = ShardLeases(store, f"{socket.gethostname()}/{gone.pid}/0dead0", duration=60)
    assert dead.tick().gained == set(range(SHARDS))
    service = AgentService(store, api_url="http://127.0.0.1:9", home=tmp_path)
    try:
        # when the embedded platform's runtime starts on the same home
        started = time.monotonic()
        service.start()
        took = time.monotonic() - started
        # then it owns every shard as soon as start() returns, under its own leases
        rt = service.runtime
        assert rt is not None, service.error
        assert set(rt.fences) == set(range(SHARDS))
        assert rt.leases is not None
        assert {_holder(store, s) for s in range(SHARDS)} == {rt.leases.holder}
        assert took < 5, f"the runtime took {took:.1f}s to start"  # not the dead leases' minute
    finally:
        assert service.stop(10)
    # and a clean stop hands every shard back at once
    assert all(_holder(store, s) is None for s in range(SHARDS))
    store.close()


def test_a_runtime_whose_store_was_reset_without_its_agent_tables_still_claims_every_shard(
    tmp_path: Path,
) -> None:
    # given agent tables whose shards were claimed with tokens a fresh store has not reached
    db = Database(f"sqlite:///{tmp_path / 'agents.db'}")
    assert db.claim_shards(dict.fromkeys(range(SHARDS), 50)) == set(range(SHARDS))
    store = open_store(f"sqlite:///{tmp_path / 'modelplane.db'}")
    service = AgentService(store, api_url="http://127.0.0.1:9", home=tmp_path)
    try:
        # when the runtime starts on the fresh store, then it runs every shard at once
        service.start()
        assert service.runtime is not None, service.error
        assert set(service.runtime.fences) == set(range(SHARDS))
        # under its own leases' tokens
        tokens = dict(db.query("SELECT shard, token FROM agent_shards"))
        assert tokens == service.runtime.fences
        assert set(tokens.values()) == {0}
    finally:
        assert service.stop(10)
        db.close()
        store.close()


def test_two_runtimes_on_one_database_split_the_shards_and_run_each_instance_once(
    store_url: str,
) -> None:
    stores = [open_store(store_url), open_store(store_url)]
    services = [
        AgentService(
            s,
            api_url="http://127.0.0.1:9",
            home=".",
            agent_packages=("agent_handlers",),
            lease_duration=LEASE,
        )
        for s in stores
    ]
    db = Database(agents_url(store_url))
    ops = Instances(db)
    run = uuid.uuid4().hex[:6]  # the step counter is per process: names of this run only
    steps = 40  # long enough that both runtimes would be at it together, were both running it
    try:
        # given two platforms' runtimes (two `up`s) on one database, sharing the shards
        for service in services:
            service.start()
        a, b = services[0].runtime, services[1].runtime
        assert a is not None and b is not None
        wait_until(
            lambda: (
                len(a.fences) == len(b.fences) == SHARDS // 2 and not set(a.fences) & set(b.fences)
            ),
            timeout=30,
            what=f"the shards to split evenly (now {sorted(a.fences)} and {sorted(b.fences)})",
        )
        # and instances in every shard, created before their Agent
        early = [f"e{run}{i:02d}" for i in range(32)]
        assert len({shard_of("default", "count", n) for n in early}) > SHARDS // 2
        for name in early:
            ops.create("default", "count", name, {"steps": steps})
        # when the Agent is applied (both runtimes define it and resume what they run)
        stores[0].create(_agent("count", "agent_handlers:counter"))
        # and more instances are created once it is defined
        wait_until(
            lambda: a.definition("default", "count") and b.definition("default", "count"),
            timeout=30,
            what="both runtimes to define the Agent",
        )
        late = [f"l{run}{i:02d}" for i in range(32)]
        for name in late:
            ops.create("default", "count", name, {"steps": steps})

        def statuses() -> set[str]:
            return {ops.get("default", "count", n)["status"] for n in early + late}

        wait_until(lambda: statuses() == {"completed"}, timeout=60, what="every instance done")
        # then each ran in one runtime only: every step executed once, journaled once
        for name in early + late:
            assert ops.get("default", "count", name)["result"] == {"total": steps}
            journal = ops.journal("default", "count", name)
            assert [r["name"] for r in journal if r["kind"] == "step"] == [
                f"add-{i}" for i in range(steps)
            ]
            assert [h.CALLS[f"{name}/add-{i}"] for i in range(steps)] == [1] * steps, name
    finally:
        for service in services:
            assert service.stop(10)
        db.close()
        for s in stores:
            s.close()


# -- a worker paused past its lease ----------------------------------------------------------


def test_a_worker_paused_past_its_lease_cannot_commit_and_no_step_is_journaled_twice(
    store_url: str, tmp_path: Path, workers: list[_Worker]
) -> None:
    store = open_store(store_url)
    db = Database(agents_url(store_url))
    ops = Instances(db)
    steps_log, gates = tmp_path / "steps.log", tmp_path / "gates"
    gates.mkdir()
    try:
        # given two agent-workers sharing the shards of one database
        store.create(_agent("fence", "agent_handlers:fenced"))
        workers += [_Worker(store_url, tmp_path / f"worker-{i}.log") for i in range(2)]

        def split() -> bool:
            holders = [_pid(_holder(store, s)) for s in range(SHARDS)]
            return all(holders.count(w.pid) == SHARDS // 2 for w in workers)

        wait_until(split, timeout=60, what="the shards to split between the two workers")
        shard = shard_of("default", "fence", "f1")
        owner, other = sorted(workers, key=lambda w: w.pid != _pid(_holder(store, shard)))
        (gates / str(other.pid)).touch()  # the other worker's step "two" will not stall
        # and an instance of the owner's shard that committed step "one" and runs step "two"
        ops.create("default", "fence", "f1", {"log": str(steps_log), "gates": str(gates)})
        wait_until(
            lambda: steps_log.exists() and f"two {owner.pid}" in steps_log.read_text(),
            timeout=30,
            what="the owner to run step two",
        )
        # (its step holds the event loop: no renewal starts; let one in flight end, so that the
        # pause does not catch it inside a transaction)
        wait_until(
            lambda: (
                (lease := store.get_lease(SHARD_LEASE.format(shard))) is not None
                and time.time() > lease.expires_at - LEASE + 0.3
            ),
            timeout=10,
            what="the owner's renewals to stop",
        )

        # when the owner is paused past its lease (SIGSTOP)
        owner.proc.send_signal(signal.SIGSTOP)
        # then the other worker takes the shard and finishes the instance
        wait_until(
            lambda: _pid(_holder(store, shard)) == other.pid,
            timeout=30,
            what="the other worker to take the shard",
        )
        info = wait_until(
            lambda: (i := ops.get("default", "fence", "f1"))["status"] == "completed" and i,
            timeout=30,
            what="the instance to complete on the other worker",
        )
        assert info["result"] == {"one": owner.pid, "two": other.pid, "three": other.pid}

        # when the owner wakes up (SIGCONT) and its step "two" returns
        (gates / str(owner.pid)).touch()
        owner.proc.send_signal(signal.SIGCONT)
        # then its pending commit is refused (its journal writer says so)
        wait_until(
            lambda: owner.said(f"shard {shard} moved to another worker"),
            timeout=30,
            what="the woken worker's commit to be refused",
        )
        # and the journal holds each step once: "one" from before the pause (acknowledged, not
        # lost, not run again), "two" and "three" from the worker that took over
        journal = ops.journal("default", "fence", "f1")
        assert [(r["kind"], r["name"]) for r in journal] == [
            ("start", ""),
            ("step", "one"),
            ("step", "two"),
            ("step", "three"),
        ]
        assert [r["data"]["ok"] for r in journal[1:]] == [owner.pid, other.pid, other.pid]
        # (step two's code ran in both: the paused worker's execution was never acknowledged)
        assert steps_log.read_text().splitlines() == [
            f"one {owner.pid}",
            f"two {owner.pid}",
            f"two {other.pid}",
            f"three {other.pid}",
        ]
        assert ops.get("default", "fence", "f1")["status"] == "completed"
        # and both workers stop cleanly
        assert [w.stop() for w in workers] == [0, 0]
    finally:
        db.close()
        store.close()


# -- agent-worker runs the store's Agent objects ---------------------------------------------


def test_an_agent_worker_honours_the_agents_retry_models_allowlist_and_tools(
    tmp_path: Path, workers: list[_Worker]
) -> None:
    store_url = f"sqlite:///{tmp_path / 'modelplane.db'}"
    store = open_store(store_url)
    db = Database(agents_url(store_url))
    ops = Instances(db)
    fast = {"initial": "1ms", "max": "5ms"}
    try:
        # given Agents in the store: retry of 5 attempts, a models allow-list, an MCP tool
        store.create(
            _agent(
                "retrying",
                "agent_handlers:flaky",
                retry={"maxAttempts": 5, "backoff": fast},
            )
        )
        store.create(_agent("guarded", "agent_handlers:model_user", models=["other-model"]))
        store.create(
            _agent(
                "calculator",
                "agent_handlers:tool_user",
                tools=[{"name": "calc", "transport": "stdio", "server": "geo"}],
            )
        )
        store.create(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "ToolServer",
                "metadata": {"name": "geo"},
                "spec": {"command": sys.executable, "args": [str(EXAMPLES / "mcp_server.py")]},
            }
        )
        # when an agent-worker runs on that store
        worker = _Worker(store_url, tmp_path / "worker.log")
        workers.append(worker)
        ops.create("default", "retrying", "r1", {"failures": 3})
        ops.create("default", "guarded", "g1", "What is the capital of France?")
        ops.create("default", "calculator", "c1", {"a": 2, "b": 3})

        def done(agent: str, name: str) -> dict[str, Any] | None:
            info = ops.get("default", agent, name)
            return info if info["status"] in ("completed", "failed") else None

        # then a step failing 3 times succeeds on the 4th of its 5 attempts (the default is 3)
        retried = wait_until(lambda: done("retrying", "r1"), timeout=60, what="retrying/r1")
        assert (retried["status"], retried["result"]) == ("completed", "ok"), retried
        # and a model outside spec.models is refused, naming the field
        guarded = wait_until(lambda: done("guarded", "g1"), timeout=60, what="guarded/g1")
        assert guarded["status"] == "failed"
        assert "may not call model 'smollm2': add it to spec.models" in guarded["error"]
        # and the Agent's tool reaches the ToolServer's MCP server
        calc = wait_until(lambda: done("calculator", "c1"), timeout=60, what="calculator/c1")
        assert (calc["status"], calc["result"]) == ("completed", {"result": 5}), calc
        # and the worker reports the Agents Ready, as up does
        for name in ("retrying", "guarded", "calculator"):
            ready = store.get("Agent", "default", name)["status"]["conditions"]
            assert [(c["type"], c["status"]) for c in ready] == [("Ready", "True")]
        assert worker.stop() == 0
    finally:
        db.close()
        store.close()


def test_an_agent_worker_with_a_store_refuses_agent_flags_saying_what_to_do(
    tmp_path: Path,
) -> None:
    # given a store, when a worker is also given --agent, then it says to apply an Agent instead
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    args = [sys.executable, "-m", "modelplane.agents._worker"]
    args += ["--database-url", f"sqlite:///{tmp_path / 'modelplane.db'}"]
    args += ["--agent", "default/count=agent_handlers:counter"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "apply them (`modelplane apply -f agent.yaml`) and drop --agent" in done.stderr
    assert "Traceback" not in done.stderr
