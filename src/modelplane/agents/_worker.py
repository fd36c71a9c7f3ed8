"""``agent-worker``: a process that runs agent instances until it is stopped (or killed).

``python -m modelplane.agents._worker --agents-url URL --agent ns/name=module:handler ...``
(what ``modelplane agent-worker`` runs). ``--agent ns/name=module:handler@sha256:<hex>`` runs an
Agent's bundle: it is read from ``--home``'s bundle store, or fetched from ``--api-url`` by digest
and verified against it (with the bearer token in ``MODELPLANE_TOKEN``). ``--agent-packages`` limits the installed modules an ``--agent`` without
a bundle may name. It keeps no state of its own: after kill -9 a new worker
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
from collections.abc import Callable

import httpx
from pydantic import ValidationError

from modelplane.agents._bundles import BundleError, BundleStore
from modelplane.agents._loader import AgentCode, parse_packages
from modelplane.agents._shards import ShardLeases
from modelplane.agents.runtime import Runtime
from modelplane.api._agent import AgentSpec
from modelplane.api.errors import ModelplaneError


def _say(message: str) -> None:
    print(f"agent-worker {os.getpid()}: {message}", file=sys.stderr, flush=True)


def parse_agent(item: str) -> tuple[str, str, AgentSpec]:
    """``ns/name=module:handler[@sha256:<hex>]`` as (namespace, name, spec)."""
    key, _, target = item.partition("=")
    namespace, _, name = key.partition("/")
    entrypoint, _, bundle = target.partition("@")
    spec = AgentSpec.model_validate({"entrypoint": entrypoint, "bundle": bundle or None})
    return namespace, name, spec


def bundle_fetcher(api_url: str, token: str | None) -> Callable[[str], bytes]:
    """``fetch(digest)``: a bundle's bytes from the API (the store verifies them by digest)."""

    def fetch(digest: str) -> bytes:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            r = httpx.get(f"{api_url.rstrip('/')}/bundles/{digest}", headers=headers, timeout=60)
        except httpx.HTTPError as exc:
            raise BundleError(
                "BundleUnavailable", f"cannot fetch bundle {digest} from {api_url}: {exc}"
            ) from None
        if r.status_code != 200:
            raise BundleError(
                "BundleNotFound" if r.status_code == 404 else "BundleUnavailable",
                f"{api_url} answered {r.status_code} for bundle {digest}: {r.text[:200]}",
            )
        return r.content

    return fetch


async def serve(
    url: str,
    agents: list[str],
    model_base_url: str,
    lease_url: str | None = None,
    lease_duration: float = 10.0,
    code: AgentCode | None = None,
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
        async with Runtime(url, model_base_url=model_base_url, owns=owns, code=code) as rt:
            for item in agents:
                namespace, name, spec = parse_agent(item)
                rt.define(namespace, name, spec)
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
    parser.add_argument(
        "--agent",
        action="append",
        default=[],
        help="ns/name=module:handler or ns/name=module:handler@sha256:<hex> (a bundle)",
    )
    parser.add_argument("--agent-packages", help="mod1,mod2: what an --agent may import")
    parser.add_argument("--home", default=os.environ.get("MODELPLANE_HOME", ".modelplane"))
    parser.add_argument("--api-url", help="fetch bundles the home lacks from this API")

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
    # the token travels in the environment, never on a command line other users can read
    token = os.environ.get("MODELPLANE_TOKEN")
    fetch = bundle_fetcher(args.api_url, token) if args.api_url else None
    code = AgentCode(
        packages=None if args.agent_packages is None else parse_packages(args.agent_packages),
        bundles=BundleStore(args.home, fetch=fetch),
    )
    try:
        asyncio.run(
            serve(
                args.agents_url,
                args.agent,
                args.model_base_url,
                lease_url,
                args.lease_duration,
                code,
            )
        )
    except (ModelplaneError, ValidationError, ValueError) as exc:
        # an --agent the worker may not or cannot run: say which, without a traceback
        _say(f"cannot start: {getattr(exc, 'message', exc)}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
