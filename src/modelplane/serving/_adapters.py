"""LoRA adapters of a worker: which it may serve (registered by the node agent), which are resident.

The node agent registers each adapter of the replica's version by name and artifact digest
(``PUT /adapters/{name}``, authenticated with the worker's token); nothing is loaded then. The first
request naming an adapter loads it from the content-addressed artifact store (found by digest,
verified, never a path a client chose) into the running model; at most ``capacity`` adapters are
resident, the least recently used one that no request is using is unloaded to make room.
``DELETE /adapters/{name}`` unregisters and unloads one (refused while requests use it).

A request pins its adapter from the moment it is admitted until its generation ends, so an adapter
is never unloaded under a running sequence.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from modelplane.serving._artifacts import ArtifactStore, refuse_pickle, verify
from modelplane.serving._errors import ArtifactError, EngineError

#: how an adapter is named: a Model version name (a DNS label)
ADAPTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
DEFAULT_CAPACITY = 4
#: the environment variable holding the token of the worker's adapter routes (set by the agent)
WORKER_TOKEN_ENV = "MODELPLANE_WORKER_TOKEN"


class AdapterModel(Protocol):
    """What an engine offers to hold adapters (:class:`~modelplane.serving._transformers.
    TransformersEngine` does)."""

    def load_adapter(self, name: str, folder: Path) -> None: ...

    def unload_adapter(self, name: str) -> None: ...


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    """One registered adapter: its name, digest, whether it is loaded, requests using it."""

    name: str
    digest: str
    resident: bool
    in_use: int


class AdapterSet:
    """The adapters of one worker (module docstring); used on the worker's event loop only."""

    def __init__(
        self, engine: AdapterModel, home: str | Path, *, capacity: int = DEFAULT_CAPACITY
    ) -> None:
        self.engine = engine
        self.artifacts = ArtifactStore(home)
        self.capacity = max(1, capacity)
        self.registered: dict[str, str] = {}
        #: resident adapters, least recently used first
        self.resident: OrderedDict[str, None] = OrderedDict()
        self.in_use: dict[str, int] = {}
        self.loads = 0
        self.unloads = 0
        self._lock = asyncio.Lock()

    def describe(self) -> list[AdapterInfo]:
        return [
            AdapterInfo(n, d, n in self.resident, self.in_use.get(n, 0))
            for n, d in sorted(self.registered.items())
        ]

    # -- which adapter a request names ------------------------------------------------------------

    def resolve(self, asked: str, served_as: str) -> str | None:
        """The adapter a request's ``model`` names: the adapter's own name or
        ``<served_as>:<adapter>``; None for the base model. An ``x:y`` naming no adapter is an
        error (404), so a misspelt adapter never silently gets the base model's answer."""
        if asked in self.registered:
            return asked
        if ":" not in asked:
            return None
        prefix, _, name = asked.rpartition(":")
        if name in self.registered and prefix.rpartition("/")[2] in (served_as, ""):
            return name
        known = ", ".join(sorted(self.registered)) or "none"
        raise EngineError(
            f"model {asked!r} names an adapter this replica does not serve (its adapters:"
            f" {known}); name one of them as {served_as}:<adapter>",
            status=404,
            param="model",
        )

    # -- registering ------------------------------------------------------------------------------

    def register(self, name: str, digest: str) -> None:
        """Allow ``name`` (artifact ``digest``); a new digest for a loaded name reloads it on use."""
        if not ADAPTER_NAME.match(name):
            raise EngineError(
                f"adapter name {name[:80]!r} is not a lowercase DNS label (a Model version name)",
                param="name",
            )
        if not _DIGEST.match(digest):
            raise EngineError(
                "digest must be 'sha256:' and 64 lowercase hex digits", param="digest"
            )
        if self.artifacts.get(digest) is None:
            raise EngineError(
                f"adapter {name}: no artifact with digest {digest[:80]} in this node's artifact"
                " store; import it (modelplane models import) before registering it",
                status=404,
                param="digest",
            )
        old = self.registered.get(name)
        self.registered[name] = digest
        if (
            old is not None
            and old != digest
            and name in self.resident
            and not self.in_use.get(name)
        ):
            self.engine.unload_adapter(name)  # the next request loads the new artifact
            self._unloaded(name)

    async def unregister(self, name: str) -> bool:
        """Forget ``name`` and unload it; False when it was not registered. Refused (409) while
        requests use it."""
        async with self._lock:
            if name not in self.registered:
                return False
            if self.in_use.get(name):
                raise EngineError(
                    f"adapter {name} is used by {self.in_use[name]} request(s); retry when they"
                    " end",
                    status=409,
                )
            del self.registered[name]
            if name in self.resident:
                await asyncio.to_thread(self.engine.unload_adapter, name)
                self._unloaded(name)
            return True

    # -- using ------------------------------------------------------------------------------------

    async def acquire(self, name: str, count: int = 1) -> None:
        """Load ``name`` if it is not resident (unloading the least recently used idle adapter
        when full) and pin it ``count`` times; each :meth:`release` unpins once."""
        async with self._lock:
            if name not in self.resident:
                digest = self.registered.get(name)
                if digest is None:
                    raise EngineError(f"adapter {name} is not registered", status=404)
                while len(self.resident) >= self.capacity:
                    idle = next((n for n in self.resident if not self.in_use.get(n)), None)
                    if idle is None:
                        raise EngineError(
                            f"all {self.capacity} adapter slots are in use by running requests;"
                            " retry shortly",
                            status=503,
                        )
                    await asyncio.to_thread(self.engine.unload_adapter, idle)
                    self._unloaded(idle)
                await asyncio.to_thread(self._load, name, digest)
                self.resident[name] = None
                self.loads += 1
            self.resident.move_to_end(name)
            self.in_use[name] = self.in_use.get(name, 0) + count

    def release(self, name: str) -> None:
        left = self.in_use.get(name, 0) - 1
        if left > 0:
            self.in_use[name] = left
        else:
            self.in_use.pop(name, None)

    # -- loading (off the event loop) -------------------------------------------------------------

    def _load(self, name: str, digest: str) -> None:
        artifact = self.artifacts.get(digest)
        if artifact is None:
            raise EngineError(f"adapter {name}: artifact {digest} left the store", status=404)
        try:
            verify(artifact.path, digest)
            refuse_pickle(artifact.path, False)
        except ArtifactError as exc:
            raise EngineError(f"adapter {name} refused: {exc.message}", status=500) from None
        if not (artifact.path / "adapter_config.json").is_file():
            raise EngineError(
                f"adapter {name}: the artifact has no adapter_config.json (save it with peft's"
                " save_pretrained)",
                status=500,
            )
        try:
            self.engine.load_adapter(name, artifact.path)
        except EngineError:
            raise
        except Exception as exc:  # a peft folder for another architecture, say so
            raise EngineError(f"adapter {name} could not be loaded: {exc}", status=500) from None

    def _unloaded(self, name: str) -> None:
        self.resident.pop(name, None)
        self.unloads += 1
