"""Several ``agent-worker`` processes on PostgreSQL run the store's Agent on shards shared by
leases; kill -9 one and the others take its shards over, with no completed step lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelplane.agents import SHARDS
from modelplane.agents._journal import Database
from modelplane.agents._shards import SHARD_LEASE
from modelplane.agents.runtime import Instances
from modelplane.store import open_store

HERE = Path(__file__).parent
INSTANCES = 48
STEPS = 120


def _holders(store_url: str) -> dict[int, str]:
    store = open_store(store_url)
    try:
        now = time.time()
        out = {}
        for shard in range(SHARDS):
            lease = store.get_lease(SHARD_LEASE.format(shard))
            if lease is not None and lease.holder and lease.expires_at > now:
                out[shard] = lease.holder
        return out
    finally:
        store.close()


def _wait(condition: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.05)  # polling a condition with a deadline


@pytest.mark.postgres
@pytest.mark.slow
def test_killed_worker_shards_move_to_the_others_with_no_step_lost(pg_url: str) -> None:
    # given instances of a long-running agent in PostgreSQL and three workers sharing them
    store = open_store(pg_url)
    store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Agent",
            "metadata": {"name": "plod", "namespace": "default"},
            "spec": {"entrypoint": "agent_handlers:plodder"},
        }
    )
    store.close()
    db = Database(pg_url)
    ops = Instances(db)
    for i in range(INSTANCES):
        ops.create("default", "plod", f"p{i:03d}", {"steps": STEPS})
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    args = [
        sys.executable,
        "-m",
        "modelplane.agents._worker",
        "--database-url",
        pg_url,
        "--agent-packages",
        "agent_handlers",
        "--lease-duration",
        "1.5",
    ]
    workers = [subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL) for _ in range(3)]
    try:
        # the shards are spread over all three (at most ceil(16 / 3) = 6 each)
        def spread() -> bool:
            holders = _holders(pg_url)
            counts = [list(holders.values()).count(h) for h in set(holders.values())]
            return len(holders) == SHARDS and len(counts) == 3 and max(counts) <= 6

        _wait("the shards to spread over three workers", spread, 30)
        holders = _holders(pg_url)
        victim = workers[0]
        victim_shards = {s for s, h in holders.items() if f"/{victim.pid}/" in h}
        assert victim_shards, holders
        # each worker ran only instances of its own shards so far: steps were journaled
        _wait(
            "the victim's instances to make progress",
            lambda: (
                (
                    db.one(
                        "SELECT COUNT(*) FROM agent_journal j JOIN agent_instances i USING (iid)"
                        " WHERE j.kind = 'step' AND i.shard IN ("
                        + ",".join(str(s) for s in victim_shards)
                        + ")"
                    )
                    or (0,)
                )[0]
                > 0
            ),
            30,
        )
        done_before = (db.one("SELECT COUNT(*) FROM agent_journal WHERE kind = 'step'") or (0,))[0]
        assert done_before < INSTANCES * STEPS, "everything finished before the kill: add work"

        # when one worker is killed with SIGKILL
        victim.kill()
        finished_before = {
            r[0] for r in db.query("SELECT iid FROM agent_instances WHERE status = 'completed'")
        }
        victim.wait(10)
        killed_at = time.monotonic()

        # then its shards move to the two others, and every instance completes
        _wait(
            "the victim's shards to be taken over",
            lambda: (
                set(_holders(pg_url)) == set(range(SHARDS))
                and not any(f"/{victim.pid}/" in h for h in _holders(pg_url).values())
            ),
            30,
        )
        takeover = time.monotonic() - killed_at

        def all_done() -> bool:
            rows = db.query("SELECT status, COUNT(*) FROM agent_instances GROUP BY status")
            return dict(rows).get("completed") == INSTANCES

        _wait("every instance to complete", all_done, 90)
        # with every step journaled exactly once (none lost, none repeated)
        per_instance = db.query(
            "SELECT iid, COUNT(*), COUNT(DISTINCT name) FROM agent_journal WHERE kind = 'step'"
            " GROUP BY iid"
        )
        assert len(per_instance) == INSTANCES
        assert all(count == distinct == STEPS for _, count, distinct in per_instance)
        # and the instances of the victim's shards were finished by the survivors
        finishers = {
            bytes(result).decode()
            for iid, result in db.query(
                "SELECT iid, result FROM agent_instances WHERE shard IN ("
                + ",".join(str(s) for s in victim_shards)
                + ")"
            )
            if iid not in finished_before
        }
        assert finishers
        assert not any(f'"pid":{victim.pid}' in f for f in finishers)
        print(f"\nscale-out: the victim's shards were taken over {takeover:.2f}s after kill -9")

        # and a clean stop releases the survivors' leases at once
        for worker in workers[1:]:
            worker.send_signal(signal.SIGTERM)
        for worker in workers[1:]:
            assert worker.wait(20) == 0
        assert _holders(pg_url) == {}
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
        db.close()
