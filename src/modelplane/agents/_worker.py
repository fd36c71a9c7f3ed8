"""``agent-worker``: a process that runs agent instances until it is stopped (or killed).

``python -m modelplane.agents._worker --agents-url URL --agent ns/name=module:handler ...``
(what ``modelplane agent-worker`` runs). It keeps no state of its own: after kill -9 a new worker
resumes every instance from the journal. On PostgreSQL (or with ``--lease-url``) several workers
share the instances: each runs only the shards it holds leases for (see
:mod:`modelplane.agents._shards`); without a lease store one worker runs every shard.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import uuid

from modelplane.agents._shards import ShardLeases
from modelplane.agents.runtime import Runtime


def _say(message: str) -> None:
    print(f"agent-worker {os.getpid()}: {message}", file=sys.stderr, flush=True)


async def serve(
    url: str,
    agents: list[str],
    model_base_url: str,
    lease_url: str | None = None,
    lease_duration: float = 10.0,
) -> None:
    started = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    leases: ShardLeases | None = None
    owned: set[int] = set()
    if lease_url is not None:
        from modelplane.store import open_store

        holder = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"
        leases = ShardLeases(open_store(lease_url), holder, duration=lease_duration)
    owns = (lambda shard: shard in owned) if leases is not None else None
    try:
        async with Runtime(url, model_base_url=model_base_url, owns=owns) as rt:
            for item in agents:
                key, _, entrypoint = item.partition("=")
                namespace, _, name = key.partition("/")
                rt.define(namespace, name, entrypoint)
            _say(
                f"ready in {1000 * (time.monotonic() - started):.1f} ms,"
                f" {len(rt.resident)} instances resumed"
            )
            while not stop.is_set():
                if leases is not None:
                    change = await asyncio.to_thread(leases.tick)
                    gone = change.lost | change.surplus
                    if gone:
                        owned.difference_update(gone)
                        await rt.drop_shards(gone)
                    if change.surplus:
                        await asyncio.to_thread(leases.release, change.surplus)
                    if change.gained:
                        owned.update(change.gained)
                        rt.recover()
                    if gone or change.gained:
                        _say(f"shards {sorted(owned)} (holder {leases.holder})")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        stop.wait(), leases.interval if leases is not None else None
                    )
            owned.clear()
    finally:
        if leases is not None:
            leases.release_all()
            leases.store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent-worker")
    parser.add_argument("--agents-url", required=True)
    parser.add_argument("--agent", action="append", default=[], help="ns/name=module:handler")
    parser.add_argument("--model-base-url", default="http://127.0.0.1:8470")
    parser.add_argument(
        "--lease-url",
        help="the object store holding shard leases (default: --agents-url on PostgreSQL;"
        " none on SQLite, where one worker runs every shard)",
    )
    parser.add_argument("--lease-duration", type=float, default=10.0)
    args = parser.parse_args(argv)
    lease_url = args.lease_url
    if lease_url is None and args.agents_url.startswith(("postgresql:", "postgres:")):
        lease_url = args.agents_url
    asyncio.run(
        serve(args.agents_url, args.agent, args.model_base_url, lease_url, args.lease_duration)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
