"""The witness of side effects for the crash, restart and partition tests: every execution of a
``crashy`` step is logged in another SQLite database, and its effect is kept once per idempotency
key (``agent_handlers._effect``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson


def make_effects_db(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE executions (id INTEGER PRIMARY KEY AUTOINCREMENT, instance TEXT,"
            " step INT, token TEXT)"
        )
        conn.execute(
            "CREATE TABLE effects (key TEXT PRIMARY KEY, instance TEXT, step INT,"
            " deduplicated INT DEFAULT 0)"
        )


def assert_each_step_once(
    effects: Path, journal: list[tuple[Any, ...]], names: dict[Any, str], steps: int
) -> tuple[int, int]:
    """Every one of ``steps`` steps journaled once, its effect made once, and no journaled step
    run again after it was journaled (its journaled token is its last execution's). Returns
    (executions, effects deduplicated by key)."""
    assert len(journal) == steps
    assert len({(iid, bytes(n) if not isinstance(n, str) else n) for iid, n, _ in journal}) == steps
    with sqlite3.connect(effects) as conn:
        last = {
            (inst, step): token
            for inst, step, token in conn.execute(
                "SELECT instance, step, token FROM executions ORDER BY id"
            )
        }
        made, deduplicated = conn.execute(
            "SELECT COUNT(*), SUM(deduplicated) FROM effects"
        ).fetchone()
        executions = conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
    for iid, name, data in journal:
        text = name if isinstance(name, str) else bytes(name).decode()
        assert last[(names[iid], int(text.split("-")[1]))] == orjson.loads(bytes(data))["ok"]
    assert made == steps
    return int(executions), int(deduplicated or 0)
