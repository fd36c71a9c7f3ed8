"""kill -9 of a real worker process at random instants, over and over: nothing lost, nothing twice."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelplane.agents._journal import Database
from modelplane.agents.runtime import Instances

HERE = Path(__file__).parent
INSTANCES = 60
STEPS = 300  # enough work that 100 kills land before the instances finish
KILLS = int(os.environ.get("CRASH_KILLS", "100"))


def _journaled_steps(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM agent_journal WHERE kind = 'step'").fetchone()[0]
        )


@pytest.mark.slow
def test_kill_minus_nine_loses_no_step_and_runs_none_twice(tmp_path: Path) -> None:
    # given many instances of an agent whose every step writes a side effect keyed by its
    # idempotency key into another database
    effects = tmp_path / "effects.db"
    with sqlite3.connect(effects) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE executions (id INTEGER PRIMARY KEY AUTOINCREMENT, instance TEXT, step INT, token TEXT)"
        )
        conn.execute(
            "CREATE TABLE effects (key TEXT PRIMARY KEY, instance TEXT, step INT, deduplicated INT DEFAULT 0)"
        )
    agents_db = tmp_path / "agents.db"
    url = f"sqlite:///{agents_db}"
    db = Database(url)
    instances = Instances(db)
    for i in range(INSTANCES):
        instances.create("default", "crashy", f"i{i:03d}", {"steps": STEPS})
    db.close()
    env = {
        **os.environ,
        "CRASH_EFFECTS_DB": str(effects),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    args = [
        sys.executable,
        "-m",
        "modelplane.agents._worker",
        "--agents-url",
        url,
        "--agent",
        "default/crashy=agent_handlers:crashy",
    ]
    rng = random.Random(7)
    recoveries: list[float] = []

    # when the worker is killed with SIGKILL at a random instant, 100 times
    started = time.monotonic()
    for _ in range(KILLS):
        before = _journaled_steps(agents_db)
        t0 = time.monotonic()
        proc = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
        deadline = t0 + 30
        while _journaled_steps(agents_db) == before and proc.poll() is None:
            assert before < INSTANCES * STEPS, "all steps ran before 100 kills: add work"
            assert time.monotonic() < deadline, "the worker made no progress after a restart"
            time.sleep(0.002)  # polling a condition with a deadline
        recoveries.append(time.monotonic() - t0)
        time.sleep(rng.uniform(0, 0.05))  # the random instant of the kill
        proc.kill()
        proc.wait(10)
        if proc.returncode == 0:
            break
    crash_phase = time.monotonic() - started

    # and finally runs to the end
    proc = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
    try:
        # a stall, not slowness, fails: the deadline moves on while steps keep being journaled
        # (a busy machine runs them slower, a stuck worker runs none)
        progress, deadline = -1, 0.0
        db = Database(url)
        while True:
            rows = db.query("SELECT status, COUNT(*) FROM agent_instances GROUP BY status")
            if dict(rows).get("completed") == INSTANCES:
                break
            steps = _journaled_steps(agents_db)
            if steps > progress:
                progress, deadline = steps, time.monotonic() + 60
            assert time.monotonic() < deadline, f"no step journaled for 60 s: {rows}"
            time.sleep(0.05)
        journal = db.query("SELECT iid, name, data FROM agent_journal WHERE kind = 'step'")
        names = dict(db.query("SELECT iid, name FROM agent_instances"))
        db.close()
    finally:
        proc.kill()
        proc.wait(10)

    # then every step is journaled once, and its side effect exists exactly once
    import orjson

    assert len(journal) == INSTANCES * STEPS  # no completed step lost
    with sqlite3.connect(effects) as conn:
        last = {
            (inst, step): token
            for inst, step, token in conn.execute(
                "SELECT instance, step, token FROM executions ORDER BY id"
            )
        }
        effect_rows = conn.execute("SELECT COUNT(*), SUM(deduplicated) FROM effects").fetchone()
        executions = conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
    for iid, name, data in journal:
        step = int(bytes(name).decode() if isinstance(name, bytes) else name.split("-")[1])
        token = orjson.loads(bytes(data))["ok"]
        # the journaled execution is the last one: no journaled step ran again
        assert last[(names[iid], step)] == token
    assert effect_rows[0] == INSTANCES * STEPS  # one effect per idempotency key, none doubled
    recoveries.sort()
    print(
        f"\ncrash test: {len(recoveries)} kills in {crash_phase:.1f}s; {executions} executions for"
        f" {INSTANCES * STEPS} steps ({effect_rows[1]} deduplicated by key); time to recover"
        f" (process start to first new step) p50 {1000 * recoveries[len(recoveries) // 2]:.0f} ms,"
        f" max {1000 * recoveries[-1]:.0f} ms"
    )
    assert len(recoveries) >= KILLS
