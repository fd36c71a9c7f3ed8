"""``agent-worker``: a process that runs agent instances until it is stopped (or killed).

``python -m modelplane.agents._worker --database-url URL`` (what ``modelplane agent-worker`` runs)
runs the store's ``Agent`` objects as ``modelplane up`` does: the same
:class:`~modelplane.agents._service.AgentService` (an informer of Agents, their tools, retry,
models allow-list and idleTimeout, ``Ready`` on their status), the same shard leases in the store
(every ``up`` and ``agent-worker`` on one database shares the shards; see
:mod:`modelplane.agents._shards`) and fenced commits. The runtime's tables are ``--agents-url``
(default: beside the store, as ``up`` keeps them). Code comes from where the operator put it:
``--agent-packages`` (installed modules an Agent without a bundle may name; default none) and
bundles in ``--home``'s bundle store, or fetched from ``--api-url`` by digest and verified against
it (with the bearer token in ``MODELPLANE_TOKEN``). On PostgreSQL the store defaults to
``--agents-url``.

Without a store (a SQLite ``--agents-url`` alone), ``--agent ns/name=module:handler[@sha256:<hex>]``
defines Agents by entrypoint only and one worker runs every shard, unleased (tests, a single
machine). It keeps no state of its own: after kill -9 a new worker resumes every instance from the
journal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
from pydantic import ValidationError

from modelplane.agents._bundles import BundleStore
from modelplane.agents._loader import AgentCode, parse_packages
from modelplane.agents.errors import BundleError
from modelplane.agents.runtime import Runtime
from modelplane.api import AgentSpec
from modelplane.api.errors import ModelplaneError

if TYPE_CHECKING:
    from modelplane.agents._service import AgentService


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


async def serve(url: str, agents: list[str], model_base_url: str, code: AgentCode) -> None:
    """Run the ``--agent`` definitions on every shard of ``url`` (no store, no leases)."""
    started = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Runtime(url, model_base_url=model_base_url, code=code) as rt:
        for item in agents:
            namespace, name, spec = parse_agent(item)
            rt.define(namespace, name, spec)
        _say(
            f"ready in {1000 * (time.monotonic() - started):.1f} ms,"
            f" {len(rt.resident)} instances resumed"
        )
        await stop.wait()


def serve_objects(
    store_url: str,
    agents_url: str | None,
    model_base_url: str,
    lease_duration: float,
    code: AgentCode,
    token: str | None = None,
    model_token: Callable[[str, str], str] | None = None,
    on_started: Callable[[AgentService], None] | None = None,
) -> int:
    """Run the store's Agent objects on the shards this process leases, until SIGTERM/SIGINT.

    ``token``: the bearer token its agents' model calls send to ``model_base_url``; with
    ``model_token(namespace, agent)`` they send their Agent's service account's instead.
    ``on_started(service)``: told once the runtime runs (what ``/readyz`` waits for)."""
    from modelplane.agents._service import AgentService
    from modelplane.store import open_store

    started = time.monotonic()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    store = open_store(store_url)
    try:
        service = AgentService(
            store,
            api_url=model_base_url,
            code=code,
            database_url=agents_url,
            lease_duration=lease_duration,
            api_token=token,
            model_token=model_token,
        )
        service.component = "agent-worker"
        service.start()
        rt = service.runtime
        if rt is None:
            service.stop(10)
            error = service.error
            _say(f"cannot start: {getattr(error, 'message', error)}")
            return 2
        _say(
            f"ready in {1000 * (time.monotonic() - started):.1f} ms, shards"
            f" {sorted(rt.fences)}, {len(rt.resident)} instances resumed"
        )
        if on_started is not None:
            on_started(service)
        stop.wait()
        return 0 if service.stop(30) else 1
    finally:
        store.close()


def main(
    argv: list[str] | None = None,
    *,
    model_token: Callable[[str, str], str] | None = None,
    on_started: Callable[[AgentService], None] | None = None,
) -> int:
    """The agent worker's command line. ``model_token(namespace, agent)``: the token an Agent's
    model calls send, its service account's (None: ``MODELPLANE_TOKEN``, the same for all);
    ``on_started``: as :func:`serve_objects`'."""
    parser = argparse.ArgumentParser(prog="agent-worker")
    parser.add_argument(
        "--database-url",
        help="the object store: Agent objects, ToolServers and shard leases (default:"
        " --agents-url on PostgreSQL)",
    )
    parser.add_argument(
        "--agents-url", help="the runtime's tables (default: beside the --database-url store)"
    )
    parser.add_argument(
        "--agent",
        action="append",
        default=[],
        help="without a store: ns/name=module:handler or ns/name=module:handler@sha256:<hex>",
    )
    parser.add_argument("--agent-packages", help="mod1,mod2: what an entrypoint may import")
    parser.add_argument("--home", default=os.environ.get("MODELPLANE_HOME", ".modelplane"))
    parser.add_argument("--api-url", help="fetch bundles the home lacks from this API")
    parser.add_argument("--model-base-url", default="http://127.0.0.1:8470")
    parser.add_argument("--lease-duration", type=float, default=10.0)
    args = parser.parse_args(argv)
    store_url = args.database_url
    if store_url is None and (args.agents_url or "").startswith(("postgresql:", "postgres:")):
        store_url = args.agents_url
    if store_url is None and not args.agents_url:
        _say("cannot start: give --database-url (the store whose Agents it runs)")
        return 2
    if store_url is not None and args.agent:
        _say(
            "cannot start: --agent is for a worker without a store; with a store the worker runs"
            " its Agent objects: apply them (`modelplane apply -f agent.yaml`) and drop --agent"
        )
        return 2
    logging.basicConfig(
        level=logging.WARNING, format=f"agent-worker {os.getpid()}: %(levelname)s %(message)s"
    )
    logging.getLogger("modelplane.agents").setLevel(logging.INFO)
    # the token travels in the environment, never on a command line other users can read
    token = os.environ.get("MODELPLANE_TOKEN")
    fetch = bundle_fetcher(args.api_url, token) if args.api_url else None
    try:
        if args.agent_packages is not None:
            packages: tuple[str, ...] | None = parse_packages(args.agent_packages)
        else:
            # --agent is the operator's own command line; an Agent object is anyone's who may
            # write one, so without --agent-packages it may name no installed module (as in up)
            packages = None if store_url is None else ()
        code = AgentCode(packages=packages, bundles=BundleStore(args.home, fetch=fetch))
        if store_url is not None:
            return serve_objects(
                store_url,
                args.agents_url,
                args.model_base_url,
                args.lease_duration,
                code,
                token=token,
                model_token=model_token,
                on_started=on_started,
            )
        asyncio.run(serve(args.agents_url, args.agent, args.model_base_url, code))
    except (ModelplaneError, ValidationError, ValueError) as exc:
        # an --agent the worker may not or cannot run: say which, without a traceback
        _say(f"cannot start: {getattr(exc, 'message', exc)}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
