"""Agent runtime benchmark: durable steps/s beside DBOS and LangGraph, residency, resume, storage.

Everything is measured in one run on one machine, on SQLite with an fsync per commit (WAL,
``synchronous=FULL``) for all three systems:

* ``steps`` — durable steps per second: ``sequential`` (one instance, each ``ctx.step`` awaited
  after the previous one's commit: the latency path) and with 1, 16 and 256 concurrent instances
  (group commit: one fsync covers every step queued meanwhile). ``steps_per_s`` is the best
  concurrent figure. ``per_step_overhead_ms`` is our sequential time per step minus a raw SQLite
  insert + fsync'd commit of a journal-sized row (the floor any durable step pays);
* ``dbos_steps_per_s`` / ``langgraph_steps_per_s`` — the same durable steps in DBOS (SQLite system
  database, ``@DBOS.step`` inside a ``@DBOS.workflow``) and LangGraph (``SqliteSaver``, one graph
  node per step, ``durability="sync"``: each checkpoint committed before the next node runs, as a
  durable step must be), each the better of sequential and 16 concurrent workflows/threads, run in a
  child process (their globals and threads stay out of ours);
* ``resident`` — idle class instances activated into one process, memory measured with
  tracemalloc: ``resident_bytes_per_instance`` (everything the runtime keeps per instance, its
  state's bytes included), and ``registered`` passivated instances (rows in the store);
* ``resume`` — activation of a passivated instance (snapshot + tail read, checksums verified,
  instance built) with 10, 1,000 and 20,000 journal records of history behind its snapshot, among
  the registered instances: p50/p99 per history size;
* ``storage`` — a real 1,000-turn conversation (one message per turn, a step producing the reply,
  both appended to ``memory``): bytes stored for the instance (journal, memory, snapshot, row)
  against its live state (the JSON of its memory and state), and LangGraph's ``SqliteSaver``
  checkpoint file for the same conversation.

``--quick`` scales every size down (and says so in ``quick``/``sizes``). Progress goes to stderr;
the last stdout line is one JSON object with the figures, the goals and whether each was met.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import operator
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

import orjson

from modelplane.agents import Context, Database, Runtime, checksum
from modelplane.agents.runtime import Instances, shard_of
from modelplane.api import AgentSpec
from modelplane.bench._figures import parse_sized, percentile, print_summary, progress

GOALS: dict[str, float] = {
    "steps_per_s": 2000.0,
    "ratio_vs_dbos": 5.0,
    "ratio_vs_langgraph": 5.0,
    "per_step_overhead_ms": 0.5,
    "resident_instances": 100_000,
    "resident_bytes_per_instance": 4096.0,
    "registered_instances": 1_000_000,
    "resume_p50_ms": 1.0,
    "resume_p99_ms": 5.0,
    "storage_ratio": 2.0,
}
NS = "bench"


_say = progress("agents")


# -- handlers (entrypoints ``modelplane.bench.agents:...``) --------------------------------------


def _noop(i: int) -> int:
    return i


async def steps_handler(ctx: Context, input: Any) -> Any:
    """``input["steps"]`` durable steps, one after another."""
    total = 0
    for i in range(int(input["steps"])):
        total += await ctx.step("s", _noop, i)
    return total


def _reply(text: str, turn: int) -> str:
    return f"Turn {turn}: you said {len(text)} characters. " + "A considered answer. " * 12


class Chat:
    """A conversation: each message is a turn that appends the message and a reply to memory."""

    async def on_message(self, ctx: Context, message: Any) -> Any:
        turn = int(ctx.state.get("turns", 0)) + 1
        ctx.memory.append({"role": "user", "content": message})
        reply = await ctx.step("reply", _reply, message, turn)
        ctx.memory.append({"role": "assistant", "content": reply})
        ctx.state["turns"] = turn
        return turn


def _message(turn: int) -> str:
    return f"Question {turn}: what about the order, the refund and the delivery date? " * 2


def _spec(entrypoint: str) -> AgentSpec:
    return AgentSpec.model_validate(
        {
            "entrypoint": entrypoint,
            "idleTimeout": "24h",
            "retry": {"maxAttempts": 1, "backoff": {"initial": "1ms", "max": "1ms"}},
        }
    )


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


# -- durable steps ------------------------------------------------------------------------------


async def _our_steps(workdir: Path, concurrency: int, steps_each: int) -> float:
    url = _url(workdir / f"steps-{concurrency}-{uuid.uuid4().hex[:6]}.db")
    db = Database(url)
    ops = Instances(db)
    for i in range(concurrency):
        ops.create(NS, "steps", f"i{i:04d}", {"steps": steps_each})
    db.close()
    async with Runtime(url, max_resident=concurrency + 10, poll_interval=0.05) as rt:
        start = time.perf_counter()
        rt.define(NS, "steps", _spec("modelplane.bench.agents:steps_handler"))
        deadline = start + 600
        while rt.resident:
            if time.perf_counter() > deadline:
                raise RuntimeError("durable steps did not finish in 10 minutes")
            await asyncio.sleep(0.002)  # waiting on the condition, with a deadline
        elapsed = time.perf_counter() - start
        done = rt.db.one("SELECT COUNT(*) FROM agent_instances WHERE status = 'completed'")
        if done is None or done[0] != concurrency:
            raise RuntimeError(f"only {done} of {concurrency} instances completed")
    return concurrency * steps_each / elapsed


def _raw_commit_ms(workdir: Path, count: int) -> float:
    """A raw SQLite insert of a journal-sized row plus an fsync'd commit, per record (ms)."""
    path = workdir / f"raw-{uuid.uuid4().hex[:6]}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE j (iid INTEGER, seq INTEGER, data BLOB, PRIMARY KEY (iid, seq))")
    start = time.perf_counter()
    for i in range(count):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO j VALUES (1, ?, ?)", (i, orjson.dumps({"ok": i})))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return 1000 * elapsed / count


def _measure_steps(workdir: Path, sequential: int, total: int, rounds: int = 3) -> dict[str, Any]:
    """Ours and the raw fsync'd commit in alternating rounds (medians), then the concurrent runs."""
    raw: list[float] = []
    ours: list[float] = []
    for _ in range(rounds):
        raw.append(_raw_commit_ms(workdir, sequential // 2))
        ours.append(1000 / asyncio.run(_our_steps(workdir, 1, sequential)))
    raw_ms, step_ms = statistics.median(raw), statistics.median(ours)
    _say(
        f"sequential: {1000 / step_ms:,.0f} steps/s, {step_ms:.3f} ms a step"
        f" (raw fsync'd commit {raw_ms:.3f} ms; rounds {[round(x, 3) for x in ours]})"
    )
    out: dict[str, Any] = {
        "sequential_steps_per_s": round(1000 / step_ms),
        "sequential_step_ms": round(step_ms, 3),
        "raw_commit_ms": round(raw_ms, 3),
        "per_step_overhead_ms": round(max(0.0, step_ms - raw_ms), 3),
    }
    for concurrency in (1, 16, 256):
        each = max(1, total // concurrency) if concurrency > 1 else sequential
        rate = asyncio.run(_our_steps(workdir, concurrency, each))
        out[f"concurrent_{concurrency}_steps_per_s"] = round(rate)
        _say(f"{concurrency} concurrent instances: {rate:,.0f} steps/s")
    out["steps_per_s"] = max(out[f"concurrent_{c}_steps_per_s"] for c in (1, 16, 256))
    return out


# -- DBOS and LangGraph (run in a child process: ``--competitor NAME``) --------------------------


def _dbos(workdir: Path, sequential: int, concurrency: int, each: int) -> dict[str, float]:
    import logging

    from dbos import DBOS

    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS(
        config={
            "name": "bench",
            "system_database_url": f"sqlite:///{workdir / 'dbos.sqlite'}",
            "log_level": "WARNING",
        }
    )

    @DBOS.step()
    def step(i: int) -> int:
        return i

    @DBOS.workflow()
    def workflow(n: int) -> int:
        total = 0
        for i in range(n):
            total += step(i)
        return total

    DBOS.launch()
    try:
        start = time.perf_counter()
        workflow(sequential)
        seq = sequential / (time.perf_counter() - start)
        start = time.perf_counter()
        handles = [DBOS.start_workflow(workflow, each) for _ in range(concurrency)]
        for handle in handles:
            handle.get_result()
        conc = concurrency * each / (time.perf_counter() - start)
    finally:
        DBOS.destroy()
    return {"sequential": seq, "concurrent": conc}


class _TotalState(TypedDict):
    total: int


def _langgraph_graph(nodes: int, checkpointer: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(_TotalState)
    previous = START
    for i in range(nodes):

        def node(state: _TotalState, i: int = i) -> dict[str, int]:
            return {"total": state["total"] + i}

        graph.add_node(f"s{i}", node)
        graph.add_edge(previous, f"s{i}")
        previous = f"s{i}"
    graph.add_edge(previous, END)
    return graph.compile(checkpointer=checkpointer)


def _langgraph(workdir: Path, sequential: int, concurrency: int, each: int) -> dict[str, float]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(workdir / "langgraph.sqlite", check_same_thread=False)
    conn.execute("PRAGMA synchronous=FULL")  # as ours; SqliteSaver turns WAL on itself
    saver = SqliteSaver(conn)
    app = _langgraph_graph(sequential, saver)
    start = time.perf_counter()
    app.invoke(
        {"total": 0},
        {"configurable": {"thread_id": "seq"}, "recursion_limit": 10**6},
        durability="sync",
    )
    seq = sequential / (time.perf_counter() - start)
    app = _langgraph_graph(each, saver)

    def run(k: int) -> None:
        app.invoke(
            {"total": 0},
            {"configurable": {"thread_id": f"c{k}"}, "recursion_limit": 10**6},
            durability="sync",
        )

    threads = [threading.Thread(target=run, args=(k,)) for k in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conc = concurrency * each / (time.perf_counter() - start)
    conn.close()
    return {"sequential": seq, "concurrent": conc}


def _user(turn: int) -> Any:
    return {"messages": [{"role": "user", "content": _message(turn)}]}


class _ChatState(TypedDict):
    messages: Annotated[list[dict[str, str]], operator.add]
    turns: int


def _langgraph_storage(workdir: Path, turns: int) -> dict[str, float]:
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, StateGraph

    def chat(state: _ChatState) -> dict[str, Any]:
        turn = state.get("turns", 0) + 1
        text = state["messages"][-1]["content"]
        return {"messages": [{"role": "assistant", "content": _reply(text, turn)}], "turns": turn}

    graph = StateGraph(_ChatState)
    graph.add_node("chat", chat)
    graph.add_edge(START, "chat")
    graph.add_edge("chat", END)
    path = workdir / "langgraph-chat.sqlite"
    conn = sqlite3.connect(path, check_same_thread=False)
    app = graph.compile(checkpointer=SqliteSaver(conn))
    config: Any = {"configurable": {"thread_id": "chat"}}
    state: Any = None
    for turn in range(1, turns + 1):
        state = app.invoke(_user(turn), config, durability="sync")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    live = len(orjson.dumps({"messages": state["messages"], "turns": state["turns"]}))
    stored = path.stat().st_size
    return {"turns": turns, "live_bytes": live, "stored_bytes": stored, "ratio": stored / live}


def _competitor(name: str, workdir: Path, sizes: dict[str, int]) -> dict[str, Any]:
    """Run ``name`` in a child process; its figures, or the reason it could not run."""
    cmd = [
        sys.executable,
        "-m",
        "modelplane.bench.agents",
        "--competitor",
        name,
        "--workdir",
        str(workdir),
        "--sizes",
        json.dumps(sizes),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"skipped": f"{name} did not run: {' | '.join(tail)}"}
    result: dict[str, Any] = orjson.loads(lines[-1])
    return result


def _competitor_main(name: str, workdir: Path, sizes: dict[str, int]) -> dict[str, Any]:
    if name == "dbos":
        return _dbos(workdir, sizes["sequential"], 16, sizes["total"] // 16)
    if name == "langgraph":
        return _langgraph(workdir, sizes["sequential"], 16, sizes["total"] // 16)
    if name == "langgraph-storage":
        return _langgraph_storage(workdir, sizes["turns"])
    raise SystemExit(f"unknown competitor {name!r}")


# -- residency and resume ----------------------------------------------------------------------


def _register(url: str, count: int, histories: Sequence[int]) -> list[int]:
    """``count`` idle class instances (rows + snapshots) written directly, in one transaction;
    the last ``len(histories)`` get that many journal records behind their snapshot.
    Returns the iids of the history instances."""
    Database(url).close()  # the runtime's schema
    conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    state = b'{"turns":3,"topic":"refund"}'
    crc = checksum("snapshot", "", state)
    now = time.time()
    conn.execute("BEGIN")
    batch = 50_000
    for first in range(0, count, batch):
        rows = [
            (
                i + 1,
                NS,
                "chat",
                f"c{i:07d}",
                uuid.uuid4().hex,
                "1",
                shard_of(NS, "chat", f"c{i:07d}"),
                now,
                now,
                state,
            )
            for i in range(first, min(count, first + batch))
        ]
        conn.executemany(
            "INSERT INTO agent_instances (iid, namespace, agent, name, uid, version, shard,"
            " status, created, updated, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'idle', ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO agent_snapshots (iid, turn, seq, memory_len, state, crc)"
            " VALUES (?, 3, ?, 6, ?, ?)",
            [(r[0], 0, state, crc) for r in rows],
        )
    hist_iids = []
    for k, records in enumerate(histories):
        iid = count - len(histories) + k + 1
        hist_iids.append(iid)
        data = orjson.dumps({"ok": "a step result of a realistic size, " * 2})
        conn.executemany(
            "INSERT INTO agent_journal (iid, seq, kind, name, data, crc, at)"
            " VALUES (?, ?, 'step', 'reply', ?, ?, ?)",
            [(iid, s, data, checksum("step", "reply", data), now) for s in range(1, records + 1)],
        )
        conn.execute("UPDATE agent_snapshots SET seq = ? WHERE iid = ?", (records, iid))
    conn.execute("COMMIT")
    conn.close()
    return hist_iids


async def _resident_and_resume(
    workdir: Path, registered: int, resident: int, histories: Sequence[int], samples: int
) -> dict[str, Any]:
    url = _url(workdir / "resident.db")
    start = time.perf_counter()
    hist_iids = _register(url, registered, histories)
    _say(f"registered {registered:,} passivated instances in {time.perf_counter() - start:.1f} s")
    out: dict[str, Any] = {"registered_instances": registered}
    async with Runtime(
        url, max_resident=resident + len(histories) + 10, compact_journal=False, poll_interval=1.0
    ) as rt:
        rt.define(NS, "chat", _spec("modelplane.bench.agents:Chat"))
        # resume: activate a passivated instance, again and again, per history length
        for records, iid in zip(histories, hist_iids, strict=True):
            times = []
            for _ in range(samples):
                t0 = time.perf_counter()
                inst = rt.activate(iid)
                times.append(1000 * (time.perf_counter() - t0))
                assert inst is not None and inst.snap_seq == records
                rt.passivate(iid)
            out[f"resume_{records}_p50_ms"] = round(percentile(times, 0.5), 3)
            out[f"resume_{records}_p99_ms"] = round(percentile(times, 0.99), 3)
            _say(
                f"resume with {records:,} journal records: p50 {percentile(times, 0.5):.3f} ms,"
                f" p99 {percentile(times, 0.99):.3f} ms"
            )
        out["resume_p50_ms"] = max(out[f"resume_{r}_p50_ms"] for r in histories)
        out["resume_p99_ms"] = max(out[f"resume_{r}_p99_ms"] for r in histories)
        # residency: activate ``resident`` idle instances and measure what they hold
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        for iid in range(1, resident + 1):
            rt.activate(iid)
        elapsed = time.perf_counter() - start
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        if len(rt.resident) < resident:
            raise RuntimeError(f"only {len(rt.resident)} of {resident} instances are resident")
        state_bytes = sum(len(rt.resident[i].state_bytes) for i in range(1, resident + 1))
        per = (after - before) / resident
        out.update(
            resident_instances=len(rt.resident),
            resident_bytes_per_instance=round(per, 1),
            resident_state_bytes_per_instance=round(state_bytes / resident, 1),
            resident_activations_per_s=round(resident / elapsed),
        )
        _say(
            f"{len(rt.resident):,} resident instances: {per:,.0f} bytes each (tracemalloc),"
            f" activated at {resident / elapsed:,.0f}/s"
        )
    return out


# -- storage of a conversation -----------------------------------------------------------------


async def _storage(workdir: Path, turns: int) -> dict[str, Any]:
    empty = workdir / "empty.db"
    Database(_url(empty)).close()
    path = workdir / "chat.db"
    url = _url(path)
    async with Runtime(url, poll_interval=0.01) as rt:
        rt.define(NS, "chat", _spec("modelplane.bench.agents:Chat"))
        rt.instances.create(NS, "chat", "talk", None)
        for turn in range(1, turns + 1):
            rt.instances.send(NS, "chat", "talk", _message(turn))
        deadline = time.perf_counter() + 600
        while True:
            row = rt.db.one("SELECT state, status FROM agent_instances WHERE name = 'talk'")
            assert row is not None
            if orjson.loads(bytes(row[0])).get("turns") == turns and row[1] == "idle":
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the conversation did not reach {turns} turns")
            await asyncio.sleep(0.05)  # waiting on the condition, with a deadline
        info = rt.instances.get(NS, "chat", "talk")
        memory = rt.load_memory(rt.db.instance(NS, "chat", "talk").iid, info["memoryLength"])  # type: ignore[union-attr]
        payload = rt.db.one(
            "SELECT (SELECT COALESCE(SUM(LENGTH(data)), 0) FROM agent_journal)"
            " + (SELECT COALESCE(SUM(LENGTH(data)), 0) FROM agent_memory)"
            " + (SELECT COALESCE(SUM(LENGTH(state)), 0) FROM agent_snapshots)"
            " + (SELECT COALESCE(SUM(LENGTH(state) + COALESCE(LENGTH(result), 0)), 0)"
            " FROM agent_instances)"
        )
        journal_rows = rt.db.one("SELECT COUNT(*) FROM agent_journal")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DELETE FROM agent_audit")  # the audit trail is kept apart from the state
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    live = len(orjson.dumps({"memory": memory, "state": info["state"]}))
    stored = path.stat().st_size
    assert payload is not None and journal_rows is not None
    return {
        "turns": turns,
        "live_bytes": live,
        "stored_payload_bytes": int(payload[0]),
        "stored_file_bytes": stored,
        "empty_database_file_bytes": empty.stat().st_size,
        "journal_records_left": int(journal_rows[0]),
        "storage_ratio": round(stored / live, 3),
        "storage_payload_ratio": round(int(payload[0]) / live, 3),
    }


# -- the run -----------------------------------------------------------------------------------


def run(
    *,
    quick: bool,
    sequential: int,
    total: int,
    resident: int,
    registered: int,
    turns: int,
    langgraph_turns: int,
    samples: int,
    competitors: bool,
) -> dict[str, Any]:
    histories = (10, 1_000, 20_000)
    result: dict[str, Any] = {
        "benchmark": "agents",
        "quick": quick,
        "sizes": {
            "sequential_steps": sequential,
            "concurrent_steps": total,
            "resident_instances": resident,
            "registered_instances": registered,
            "conversation_turns": turns,
            "langgraph_conversation_turns": langgraph_turns,
            "resume_samples": samples,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "durability": "SQLite WAL, synchronous=FULL (fsync per commit) for all three systems",
    }
    with tempfile.TemporaryDirectory(prefix="bench-agents-") as tmp:
        work = Path(tmp)
        result.update(_measure_steps(work, sequential, total))
        sizes = {"sequential": sequential, "total": total, "turns": langgraph_turns}
        result.update(_competitor_steps(work, sizes, competitors))
        result.update(_ratios(result))
        result.update(
            asyncio.run(_resident_and_resume(work, registered, resident, histories, samples))
        )
        result.update(_storage_figures(work, turns, sizes, competitors))
    result["goals"] = GOALS
    result["met"] = _met(result)
    return result


def _competitor_steps(work: Path, sizes: dict[str, int], competitors: bool) -> dict[str, Any]:
    """DBOS's and LangGraph's steps per second, sequential and 16 concurrent (None: not run)."""
    out: dict[str, Any] = {}
    for name in ("dbos", "langgraph"):
        if not competitors:
            out[f"{name}_steps_per_s"] = None
            continue
        _say(f"{name}: {sizes['sequential']} sequential steps, then 16 concurrent workflows")
        sub = work / name
        sub.mkdir()
        got = _competitor(name, sub, sizes)
        if "skipped" in got:
            out[f"{name}_steps_per_s"] = None
            out[f"{name}_skipped"] = got["skipped"]
            _say(got["skipped"])
            continue
        out[f"{name}_sequential_steps_per_s"] = round(got["sequential"])
        out[f"{name}_concurrent_16_steps_per_s"] = round(got["concurrent"])
        out[f"{name}_steps_per_s"] = round(max(got["sequential"], got["concurrent"]))
        _say(f"{name}: {got['sequential']:,.0f} sequential, {got['concurrent']:,.0f} with 16")
    return out


def _ratios(result: dict[str, Any]) -> dict[str, float | None]:
    """Our steps per second over each competitor's (best and sequential), where it ran."""
    out: dict[str, float | None] = {}
    for name in ("dbos", "langgraph"):
        theirs = result.get(f"{name}_steps_per_s")
        out[f"ratio_vs_{name}"] = round(result["steps_per_s"] / theirs, 1) if theirs else None
        out[f"sequential_ratio_vs_{name}"] = (
            round(result["sequential_steps_per_s"] / result[f"{name}_sequential_steps_per_s"], 1)
            if theirs
            else None
        )
    return out


def _storage_figures(
    work: Path, turns: int, sizes: dict[str, int], competitors: bool
) -> dict[str, Any]:
    """Bytes stored for a long conversation against its live state, ours and LangGraph's."""
    storage = asyncio.run(_storage(work, turns))
    _say(
        f"{turns}-turn conversation: {storage['stored_file_bytes']:,} bytes stored for"
        f" {storage['live_bytes']:,} bytes of live state ({storage['storage_ratio']}x)"
    )
    out: dict[str, Any] = {"storage": storage, "storage_ratio": storage["storage_ratio"]}
    if competitors:
        sub = work / "langgraph-storage"
        sub.mkdir()
        lg = _competitor("langgraph-storage", sub, sizes)
        out["langgraph_storage"] = lg
        if "ratio" in lg:
            _say(
                f"LangGraph {lg['turns']}-turn conversation: {lg['stored_bytes']:,} bytes"
                f" for {lg['live_bytes']:,} live ({lg['ratio']:.0f}x)"
            )
    return out


def _met(r: dict[str, Any]) -> dict[str, bool | None]:
    def le(key: str) -> bool | None:
        return None if r.get(key) is None else bool(r[key] <= GOALS[key])

    def ge(key: str) -> bool | None:
        return None if r.get(key) is None else bool(r[key] >= GOALS[key])

    return {
        "steps_per_s": ge("steps_per_s"),
        "ratio_vs_dbos": ge("ratio_vs_dbos"),
        "ratio_vs_langgraph": ge("ratio_vs_langgraph"),
        "per_step_overhead_ms": le("per_step_overhead_ms"),
        "resident_instances": ge("resident_instances"),
        "resident_bytes_per_instance": le("resident_bytes_per_instance"),
        "registered_instances": ge("registered_instances"),
        "resume_p50_ms": le("resume_p50_ms"),
        "resume_p99_ms": le("resume_p99_ms"),
        "storage_ratio": le("storage_ratio"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python benchmarks/agents.py [--quick] [--no-competitors] ...``."""
    parser = argparse.ArgumentParser(
        prog="modelplane bench agents",
        description="Measure the agent runtime beside DBOS and LangGraph; prints one JSON line.",
    )
    parser.add_argument("--sequential", type=int, default=1_000, help="steps of one instance")
    parser.add_argument("--steps", type=int, default=8_192, help="steps per concurrent run")
    parser.add_argument("--resident", type=int, default=100_000)
    parser.add_argument("--registered", type=int, default=1_000_000)
    parser.add_argument("--turns", type=int, default=1_000)
    parser.add_argument("--langgraph-turns", type=int, default=1_000)
    parser.add_argument("--samples", type=int, default=500, help="resumes per history length")
    parser.add_argument("--no-competitors", action="store_true", help="skip DBOS and LangGraph")
    parser.add_argument("--competitor", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    quick = {"sequential": 200, "steps": 2_048, "resident": 5_000, "registered": 20_000}
    args = parse_sized(
        parser, argv, {**quick, "turns": 100, "langgraph_turns": 100, "samples": 100}
    )
    if args.competitor:
        got = _competitor_main(args.competitor, Path(args.workdir), json.loads(args.sizes))
        print_summary(got)
        return 0
    result = run(
        quick=args.quick,
        sequential=args.sequential,
        total=args.steps,
        resident=args.resident,
        registered=args.registered,
        turns=args.turns,
        langgraph_turns=args.langgraph_turns,
        samples=args.samples,
        competitors=not args.no_competitors,
    )
    print_summary(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
