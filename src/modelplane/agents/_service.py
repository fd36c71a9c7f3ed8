"""The agent runtime as a ``platform.services`` entry of ``modelplane up``.

Runs a :class:`~modelplane.agents.Runtime` in a thread with its own event loop, and keeps its Agent
definitions in step with the ``Agent`` objects of the store through an
:class:`~modelplane.control.Informer` (a watch, not a re-list): a new Agent, or a new generation
of one, is (re)defined as that version; a deleted one is undefined (its instances stay in the
runtime's tables and resume if it comes back). The runtime never waits on the store to run a turn.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from modelplane.agents._loader import import_entrypoint
from modelplane.agents._routes import agents_url
from modelplane.agents._tools import locate_tools
from modelplane.agents.runtime import Runtime
from modelplane.api._agent import AgentSpec
from modelplane.control import SOURCE_DIR_ANNOTATION, Informer
from modelplane.store import Store

logger = logging.getLogger("modelplane.agents")

Key = tuple[str, str]


class AgentService:
    """Start once, stop once: the runtime of one process."""

    def __init__(self, store: Store, *, api_url: str) -> None:
        self._store = store
        self._api_url = api_url
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._known: dict[Key, str] = {}
        self._informer = Informer(store, "Agent")
        #: the runtime, once started (None before, or if it could not start)
        self.runtime: Runtime | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="agent-runtime", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        self._informer.add_handler(
            on_add=self._changed,
            on_update=lambda _old, new: self._changed(new),
            on_delete=self._deleted,
        )
        self._informer.start()

    def stop(self, timeout: float) -> bool:
        informer_stopped = self._informer.stop(timeout)
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
        try:
            rt = Runtime(agents_url(self._store.url), model_base_url=self._api_url)
            await rt.start()
            self.runtime = rt
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

    def _changed(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", "default"), meta["name"])
        version = str(meta.get("generation", 1))
        if self._known.get(key) == version:
            return
        self._known[key] = version
        try:
            source_dir = (meta.get("annotations") or {}).get(SOURCE_DIR_ANNOTATION) or None
            spec = locate_tools(AgentSpec.model_validate(obj["spec"]), source_dir)
            if source_dir is not None:
                # imported here, from the Agent's folder; the runtime finds it in sys.modules
                import_entrypoint(spec.entrypoint, source_dir)
            assert self.runtime is not None
            self._in_loop(self.runtime.define, key[0], key[1], spec, version)
        except Exception as exc:
            logger.error("agent %s/%s: %s", key[0], key[1], exc)

    def _deleted(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", "default"), meta["name"])
        self._known.pop(key, None)
        if self.runtime is not None:
            self._in_loop(self.runtime.undefine, *key)
