"""Running a real Runtime on a real SQLite file inside a test, and waiting on instance states."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from modelplane.agents import Runtime

DONE = ("completed", "failed", "cancelled", "corrupt")


async def wait_status(
    rt: Runtime, agent: str, name: str, statuses: tuple[str, ...] = DONE, timeout: float = 10.0
) -> dict[str, Any]:
    """The instance once its status is one of ``statuses`` (polls the database with a deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        info = rt.instances.get("default", agent, name)
        if info["status"] in statuses:
            return info
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{agent}/{name} still {info['status']} after {timeout}s: {info}")
        await asyncio.sleep(0.005)  # polling a condition with a deadline


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro_fn())  # type: ignore[arg-type]


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'agents.db'}"


FAST_RETRY = {"maxAttempts": 3, "backoff": {"initial": "1ms", "max": "5ms"}}


def spec(entrypoint: str, **extra: Any) -> Any:
    from modelplane.api._agent import AgentSpec

    return AgentSpec.model_validate({"entrypoint": entrypoint, "retry": FAST_RETRY, **extra})


async def passivate_all(rt: Runtime, timeout: float = 5.0) -> None:
    """Passivate every resident instance, waiting (with a deadline) for running ones to pause."""
    deadline = asyncio.get_running_loop().time() + timeout
    while rt.resident:
        for iid in list(rt.resident):
            rt.passivate(iid)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"instances still busy after {timeout}s: {list(rt.resident)}")
        await asyncio.sleep(0.002)


async def wait_result(
    rt: Runtime, agent: str, name: str, result: Any, timeout: float = 10.0
) -> dict[str, Any]:
    """The instance once its last result equals ``result``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        info = rt.instances.get("default", agent, name)
        if info["result"] == result and info["status"] != "running":
            return info
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"{agent}/{name} has no result {result!r} after {timeout}s: {info}"
            )
        await asyncio.sleep(0.005)  # polling a condition with a deadline
