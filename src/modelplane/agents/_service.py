"""The agent runtime of a process: a ``platform.services`` entry of ``modelplane up``, and what
``agent-worker`` runs.

Runs a :class:`~modelplane.agents.Runtime` in a thread with its own event loop, and keeps its Agent
definitions in step with the ``Agent`` objects of the store through an
:class:`~modelplane.control.Informer` (a watch, not a re-list): a new Agent, or a new generation
of one, is (re)defined as that version; a deleted one is undefined (its instances stay in the
runtime's tables and resume if it comes back). The runtime never waits on the store to run a turn.

Agent code comes only from where the operator put it (:class:`~modelplane.agents._loader.AgentCode`):
bundles in the home's bundle store, or the installed packages ``agent_packages`` names. An Agent
that cannot be defined (code refused, bundle missing, import error) gets ``Ready=False`` with the
reason and a Warning Event; one that is defined gets ``Ready=True``. Stdio tools find their
``ToolServer`` in a second informer's cache, at call time.

The runtime holds shard leases in the store (:mod:`modelplane.agents._shards`), one holder per
process: every ``up`` and ``agent-worker`` sharing a database runs a share of the instances, each
instance in one process at a time, its commits fenced by the lease's token. Alone on its
database, a process owns every shard as soon as it has started.

``authorizer`` and ``message_authorizer``: the hooks every tool call and every message between
instances pass (:mod:`modelplane.agents.authz`); the platform gives the runtime Policies'
(``modelplane.policy.AgentPolicy``). A tool call that installs packages is checked by the
dependency guard before either (:mod:`modelplane.agents._installs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from modelplane.agents._bundles import BundleStore
from modelplane.agents._installs import PackageInstalls, guard_installs
from modelplane.agents._loader import AgentCode, CodeRefused
from modelplane.agents._routes import agents_url
from modelplane.agents._shards import ShardLeases
from modelplane.agents.authz import Authorizer, MessageAuthorizer, allow_all
from modelplane.agents.runtime import Runtime
from modelplane.api import AgentSpec, ToolServerSpec
from modelplane.api.errors import ModelplaneError, NotFound
from modelplane.control import Informer, commit_status, set_condition
from modelplane.egress import EgressRules
from modelplane.store import Store

logger = logging.getLogger("modelplane.agents")

Key = tuple[str, str]


class AgentService:
    """Start once, stop once: the runtime of one process.

    ``api_url``: where models are called (the gateway); ``home``: the platform's home (bundles
    under ``bundles/``); ``agent_packages``: module prefixes an Agent without a bundle may name
    (default: none); ``code``: instead of those two, where code comes from (``agent-worker``
    fetches missing bundles from the API). ``database_url``: the runtime's tables (default:
    beside the store, :func:`~modelplane.agents._routes.agents_url`); ``lease_duration``: seconds
    a shard stays with a process that stopped renewing it.
    """

    component = "agent-runtime"

    def __init__(
        self,
        store: Store,
        *,
        api_url: str,
        home: str | Path = ".modelplane",
        agent_packages: Sequence[str] = (),
        code: AgentCode | None = None,
        database_url: str | None = None,
        lease_duration: float = 10.0,
        api_token: str | None = None,
        model_token: Callable[[str, str], str] | None = None,
        egress: EgressRules | None = None,
        authorizer: Authorizer = allow_all,
        message_authorizer: MessageAuthorizer | None = None,
    ) -> None:
        self._store = store
        self._tool_servers = Informer(store, "ToolServer")
        #: the runtime as configured here, made in the service's own thread and event loop
        self._new_runtime = partial(
            Runtime,
            database_url or agents_url(store.url),
            model_base_url=api_url,
            # the bearer token the runtime's model calls send to the API (None: auth is off)
            model_api_key=api_token,
            # with it, an Agent's model calls send its own service account's token instead
            model_token=model_token,
            # the operator's rules for the hosts streamable-http tools may be reached on
            egress=egress,
            # the hook every tool call passes (the platform gives the runtime Policies'), with
            # the dependency guard before it for tools that install packages
            authorizer=guard_installs(authorizer, PackageInstalls()),
            message_authorizer=message_authorizer,
            code=code or AgentCode(packages=tuple(agent_packages), bundles=BundleStore(home)),
            tool_servers=self._tool_server,
            leases=ShardLeases(store, duration=lease_duration),
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._known: dict[Key, str] = {}
        #: why the runtime could not start (None once it started)
        self.error: Exception | None = None
        self._informer = Informer(store, "Agent")
        #: the runtime, once started (None before, or if it could not start)
        self.runtime: Runtime | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="agent-runtime", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self.error is not None:
            logger.error("the agent runtime could not start: %s", self.error)
            return
        self._informer.add_handler(
            on_add=self._changed,
            on_update=lambda _old, new: self._changed(new),
            on_delete=self._deleted,
        )
        self._tool_servers.start()
        self._informer.start()

    def stop(self, timeout: float) -> bool:
        agents_stopped = self._informer.stop(timeout)
        informer_stopped = self._tool_servers.stop(timeout) and agents_stopped
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            return informer_stopped and not self._thread.is_alive()
        return informer_stopped

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        rt: Runtime | None = None
        try:
            rt = self._new_runtime()
            await rt.start()
            self.runtime = rt
        except Exception as exc:  # start() says why (the database, the store) in its thread
            self.error = exc
            if rt is not None:
                with contextlib.suppress(Exception):
                    await rt.stop()
            return
        finally:
            self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await rt.stop()

    # -- informer callbacks (on the informer's thread) -----------------------------------

    def _in_loop(self, fn: Any, *args: Any) -> None:
        if self._loop is None or self.runtime is None:
            return

        async def call() -> None:
            fn(*args)

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(30)

    def _tool_server(self, name: str) -> ToolServerSpec | None:
        obj = self._tool_servers.get("", name)
        return None if obj is None else ToolServerSpec.model_validate(obj.get("spec") or {})

    def _changed(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", "default"), meta["name"])
        version = str(meta.get("generation", 1))
        if self._known.get(key) == version:
            return
        self._known[key] = version
        try:
            spec = AgentSpec.model_validate(obj["spec"])
            assert self.runtime is not None
            self._in_loop(self.runtime.define, key[0], key[1], spec, version)
        except CodeRefused as exc:
            self._report(obj, False, exc.cause, exc.message)
        except ModelplaneError as exc:
            self._report(obj, False, "LoadFailed", exc.message)
        except Exception as exc:
            # the handler's own module raised while importing: its author needs the message
            self._report(obj, False, "LoadFailed", f"{type(exc).__name__}: {exc}")
        else:
            where = f"bundle {spec.bundle}" if spec.bundle else "an installed package"
            self._report(obj, True, "Defined", f"{spec.entrypoint} from {where}")

    def _report(self, obj: dict[str, Any], ready: bool, reason: str, message: str) -> None:
        """``Ready`` on the Agent's status, and an Event when it changed."""
        meta = obj["metadata"]
        if not ready:
            logger.error("agent %s/%s: %s", meta.get("namespace"), meta["name"], message)
        try:
            current = self._store.get("Agent", meta.get("namespace", "default"), meta["name"])
            if current["metadata"].get("uid") != meta.get("uid"):
                return
            status = copy.deepcopy(current.get("status") or {})
            generation = meta.get("generation")
            if generation is not None:
                status["observedGeneration"] = generation
            set_condition(status, "Ready", ready, reason, message, generation)
            # lost races need nothing: a newer generation (or the deletion) is on its way
            commit_status(
                self._store, current, status, component=self.component, observed_generation=False
            )
        except NotFound:
            return
        except Exception as exc:  # status is a report: a store hiccup must not stop the runtime
            logger.warning("agent %s: could not report status: %s", meta["name"], exc)

    def _deleted(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", "default"), meta["name"])
        self._known.pop(key, None)
        if self.runtime is not None:
            self._in_loop(self.runtime.undefine, *key)
