"""Three ``agent-worker`` processes ride out a PostgreSQL restart: no step lost, none run twice.

The database is a private PostgreSQL server (``tests/_postgres.py``), stopped the way a crash
stops it (``pg_ctl -m immediate``: no checkpoint, every client cut off) while the workers are
running steps, and started again. Each step writes a side effect keyed by its idempotency key into
another database and logs every execution, as in ``test_crash.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests._postgres import private_postgres, unavailable
from tests.agents._effects import assert_each_step_once, make_effects_db

from modelplane.agents._journal import Database
from modelplane.agents.runtime import Instances
from modelplane.store import open_store

HERE = Path(__file__).parent
INSTANCES = 24
STEPS = 150


def _count(db: Database, sql: str) -> int:
    return int((db.one(sql) or (0,))[0])


def _until_all_complete(url: str, workers: list[subprocess.Popen[bytes]]) -> None:
    """Wait while steps keep being journaled (a stall fails after 60 s without progress)."""
    progress, deadline = -1, 0.0
    while True:
        for worker in workers:
            assert worker.poll() is None, f"a worker exited with {worker.returncode}"
        try:
            db = Database(url)
            try:
                rows = dict(
                    db.query("SELECT status, COUNT(*) FROM agent_instances GROUP BY status")
                )
                steps = _count(db, "SELECT COUNT(*) FROM agent_journal WHERE kind = 'step'")
            finally:
                db.close()
        except Exception:  # the database is still starting: no progress, the deadline holds
            rows, steps = {}, progress
        if rows.get("completed") == INSTANCES:
            return
        if steps > progress:
            progress, deadline = steps, time.monotonic() + 60
        assert time.monotonic() < deadline, f"no step journaled for 60 s: {rows}"
        time.sleep(0.1)  # polling a condition with a deadline


@pytest.mark.slow
def test_a_postgres_restart_under_three_workers_loses_no_step_and_runs_none_twice(
    tmp_path: Path,
) -> None:
    if why := unavailable():
        pytest.skip(why)
    effects = tmp_path / "effects.db"
    make_effects_db(effects)
    with private_postgres() as pg:
        # given instances of an agent with side effects, run by three workers on PostgreSQL
        with open_store(pg.url) as store:
            store.create(
                {
                    "apiVersion": "modelplane.dev/v1alpha1",
                    "kind": "Agent",
                    "metadata": {"name": "crashy", "namespace": "default"},
                    "spec": {"entrypoint": "agent_handlers:crashy"},
                }
            )
        db = Database(pg.url)
        instances = Instances(db)
        for i in range(INSTANCES):
            instances.create("default", "crashy", f"i{i:03d}", {"steps": STEPS})
        env = {
            **os.environ,
            "CRASH_EFFECTS_DB": str(effects),
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        args = [
            sys.executable, "-m", "modelplane.agents._worker", "--database-url", pg.url,
            "--agent-packages", "agent_handlers", "--lease-duration", "2",
        ]  # fmt: skip
        logs = [(tmp_path / f"worker-{i}.log").open("wb") for i in range(3)]
        workers = [subprocess.Popen(args, env=env, stderr=log) for log in logs]
        try:
            deadline = time.monotonic() + 120
            while _count(db, "SELECT COUNT(*) FROM agent_journal WHERE kind = 'step'") < 300:
                assert time.monotonic() < deadline, "the workers made no progress"
                time.sleep(0.05)  # polling a condition with a deadline
            before = _count(db, "SELECT COUNT(*) FROM agent_journal WHERE kind = 'step'")
            db.close()
            assert before < INSTANCES * STEPS, "everything ran before the restart: add work"

            # when PostgreSQL crashes under them and comes back
            stopped = time.monotonic()
            pg.stop("immediate")
            pg.start()
            down = time.monotonic() - stopped

            # then every instance completes
            _until_all_complete(pg.url, workers)
            db = Database(pg.url)
            journal = db.query("SELECT iid, name, data FROM agent_journal WHERE kind = 'step'")
            names = dict(db.query("SELECT iid, name FROM agent_instances"))
            db.close()
        finally:
            for worker in workers:
                worker.kill()
                worker.wait(10)
            for log in logs:
                log.close()

    # with every step journaled once, its side effect made once, and no journaled step run again
    executions, deduplicated = assert_each_step_once(effects, journal, names, INSTANCES * STEPS)
    print(
        f"\npostgres restart: down {down:.1f}s at step {before} of {INSTANCES * STEPS};"
        f" {executions} executions, {deduplicated} deduplicated by key"
    )
