"""Handlers used by the agent tests (entrypoints ``agent_handlers:<name>``)."""

from __future__ import annotations

import os
import sqlite3
import uuid
from typing import Any

from modelplane.agents import Context

#: how often each step function ran, per (instance, step): the tests' witness of re-execution
CALLS: dict[str, int] = {}


def _count(key: str) -> int:
    CALLS[key] = CALLS.get(key, 0) + 1
    return CALLS[key]


async def counter(ctx: Context, input: Any) -> Any:
    total = 0
    for i in range(int(input["steps"])):
        total += await ctx.step(f"add-{i}", _count, f"{ctx.instance}/add-{i}")
        ctx.state["done"] = i + 1
    return {"total": total}


async def sleeper(ctx: Context, input: Any) -> Any:
    before = ctx.now()
    await ctx.sleep(float(input["seconds"]))
    return {"slept": ctx.now() - before}


async def asker(ctx: Context, input: Any) -> Any:
    answer = await ctx.wait_for_input("approve the refund?")
    return {"answer": answer, "at": ctx.now()}


async def echo(ctx: Context, input: Any) -> Any:
    got = []
    for _ in range(int(input["messages"])):
        got.append(await ctx.receive())
    return got


def _flaky(key: str, failures: int) -> str:
    if _count(key) <= failures:
        raise ConnectionError(f"attempt {CALLS[key]} failed")
    return "ok"


async def flaky(ctx: Context, input: Any) -> Any:
    return await ctx.step("flaky", _flaky, f"{ctx.instance}/flaky", int(input["failures"]))


async def raiser(ctx: Context, input: Any) -> Any:
    await ctx.step("before", _count, f"{ctx.instance}/before")
    raise ValueError("the handler cannot go on: the order has no items")


async def bad_state(ctx: Context, input: Any) -> Any:
    await ctx.step("load", lambda: 1)
    ctx.state["when"] = object()
    return None


async def bad_result(ctx: Context, input: Any) -> Any:
    return await ctx.step("fetch", lambda: {1, 2})


async def sender(ctx: Context, input: Any) -> Any:
    await ctx.send(input["to"], {"hello": ctx.instance})
    return "sent"


async def keys(ctx: Context, input: Any) -> Any:
    a = ctx.idempotency_key()
    r = ctx.random()
    await ctx.step("one", _count, f"{ctx.instance}/one")
    b = ctx.idempotency_key()
    if input.get("crash") and _count(f"{ctx.instance}/crash") == 1:
        raise RuntimeError("crash once after the step")
    return {"keys": [a, b], "random": r}


async def tool_user(ctx: Context, input: Any) -> Any:
    return await ctx.call_tool("calc", "add", {"a": input["a"], "b": input["b"]})


async def model_user(ctx: Context, input: Any) -> Any:
    reply = await ctx.call_model("smollm2", [{"role": "user", "content": input}])
    return reply["choices"][0]["message"]["content"]


class Chat:
    """A conversation: each message is a turn; memory holds the dialogue."""

    async def start(self, ctx: Context, input: Any) -> None:
        ctx.state["turns"] = 0

    async def on_message(self, ctx: Context, message: Any) -> Any:
        ctx.memory.append({"role": "user", "content": message})
        reply = await ctx.step("reply", lambda m: f"echo: {m}", message)
        ctx.memory.append({"role": "assistant", "content": reply})
        ctx.state["turns"] = ctx.state.get("turns", 0) + 1
        return reply

    @staticmethod
    def migrate(state: dict[str, Any], old: str, new: str) -> dict[str, Any]:
        return {**state, "migrated": f"{old}->{new}"}


def _effect(db: str, key: str, instance: str, step: int) -> str:
    """A side effect in another database: unique per idempotency key; every execution logged."""
    token = uuid.uuid4().hex
    conn = _EFFECTS.get(db)
    if conn is None:
        conn = _EFFECTS[db] = sqlite3.connect(db, timeout=30, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO executions (instance, step, token) VALUES (?, ?, ?)",
            (instance, step, token),
        )
        try:
            conn.execute(
                "INSERT INTO effects (key, instance, step) VALUES (?, ?, ?)", (key, instance, step)
            )
        except sqlite3.IntegrityError:
            conn.execute("UPDATE effects SET deduplicated = deduplicated + 1 WHERE key = ?", (key,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return token


_EFFECTS: dict[str, sqlite3.Connection] = {}


async def crashy(ctx: Context, input: Any) -> Any:
    db = os.environ["CRASH_EFFECTS_DB"]
    for i in range(int(input["steps"])):
        key = ctx.idempotency_key()
        await ctx.step(f"effect-{i}", _effect, db, key, ctx.instance, i)
    return "done"


async def _slow_step(i: int) -> int:
    import asyncio

    await asyncio.sleep(0.01)
    return i


async def plodder(ctx: Context, input: Any) -> Any:
    """``input["steps"]`` steps of about 10 ms each: long enough to kill its worker mid-way."""
    total = 0
    for i in range(int(input["steps"])):
        total += await ctx.step(f"s-{i}", _slow_step, i)
    return {"total": total, "pid": os.getpid()}


def _logged(log: str, name: str) -> int:
    """A step that appends ``name pid`` to ``log`` (the witness of every execution)."""
    with open(log, "a") as f:
        f.write(f"{name} {os.getpid()}\n")
    return os.getpid()


def _gated(log: str, gates: str, name: str) -> int:
    """A step that logs its execution, then holds its whole process (the event loop included,
    as a stall would) until the file ``gates/<pid>`` exists."""
    import time
    from pathlib import Path

    pid = _logged(log, name)
    gate = Path(gates) / str(pid)
    while not gate.exists():
        time.sleep(0.01)  # the step's own work: waiting for its gate
    return pid


async def fenced(ctx: Context, input: Any) -> Any:
    """Three steps; the second stalls its process until the test opens the process's gate."""
    one = await ctx.step("one", _logged, input["log"], "one")
    two = await ctx.step("two", _gated, input["log"], input["gates"], "two")
    three = await ctx.step("three", _logged, input["log"], "three")
    return {"one": one, "two": two, "three": three}


async def odd_tool_args(ctx: Context, input: Any) -> Any:
    return await ctx.call_tool("calc", "add", {"a": {1, 2}, "b": 2})
