"""The Policies of one scope, followed by an informer and compiled once per change per namespace:
the cache admission and run-time decisions both read.

Which Policies apply to a namespace:

* a Policy in the namespace :data:`~modelplane.api.CLUSTER_POLICY_NAMESPACE`
  (``modelplane-system``) applies cluster-wide: to every namespace and to cluster-scoped objects;
* a Policy in any other namespace applies to that namespace only.

The statements that apply to a namespace are compiled into one Cedar policy set when first
needed after a change and reused for every request until the next change (the informer's
handlers drop the compiled sets); a request never reads the store for policies. A set is never
changed once built, so a decision made with it names the version it used even while a change
lands. A stored Policy that Cedar cannot parse (written before validation parsed Cedar) becomes
a ``forbid`` of everything it covers: what it meant is unknown, so it fails closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelplane.api import CLUSTER_POLICY_NAMESPACE
from modelplane.api.errors import Unavailable
from modelplane.control import Informer
from modelplane.policy._engine import CompiledPolicy, PolicySet, compile_policy

if TYPE_CHECKING:
    from modelplane.store import Store

JSON = dict[str, Any]

_UNPARSED: JSON = {
    "effect": "forbid",
    "principal": {"op": "All"},
    "action": {"op": "All"},
    "resource": {"op": "All"},
    "conditions": [],
    "annotations": {"reason": "Cedar cannot parse this Policy; fix or delete it"},
}

#: how long a first request waits for the Policies to be loaded before it is refused (fail closed)
SYNC_SECONDS = 10.0
#: how often the wait for the Policies asks whether the store answers at all
_SYNC_SLICE = 0.25


class PolicyCache:
    """The ``scope`` Policies of ``store`` (``admission`` or ``runtime``), compiled per namespace.

    Also keeps the ``entities`` the Policies declare (``spec.entities``, Cedar's JSON entity
    format) per Policy, for decisions that add them to a request.
    """

    def __init__(self, store: Store, scope: str) -> None:
        self._store = store
        self._scope = scope
        self._informer = Informer(store, "Policy")
        self._lock = threading.Lock()
        self._started = False
        self._compiled: dict[tuple[str, str], CompiledPolicy] = {}
        self._entities: dict[tuple[str, str], list[JSON]] = {}
        self._sets: dict[tuple[str, bool], PolicySet | None] = {}
        self._informer.add_handler(
            on_add=self._changed,
            on_update=lambda _old, new: self._changed(new),
            on_delete=self._removed,
        )

    def start(self) -> None:
        """Start following the Policies and wait until they are loaded (Unavailable if not)."""
        with self._lock:
            if not self._started:
                self._informer.start()
                self._started = True
        deadline = time.monotonic() + SYNC_SECONDS
        while not self._informer.wait_for_sync(_SYNC_SLICE):
            # a store that is down says so now (its own 503), instead of after the whole wait
            self._store.current_resource_version()
            if time.monotonic() < deadline:
                continue
            raise Unavailable(
                f"the {self._scope} Policies are not loaded yet, so this is refused (fail"
                " closed); retry shortly",
                retry_after=1,
            )

    def stop(self) -> None:
        self._informer.stop(timeout=5.0)

    def _changed(self, obj: JSON) -> None:
        key = _key(obj)
        spec = obj.get("spec") or {}
        compiled: CompiledPolicy | None = None
        if spec.get("scope") == self._scope:
            try:
                compiled = compile_policy(key[0], key[1], str(spec.get("cedar") or ""))
            except ValueError:
                compiled = CompiledPolicy(f"{key[0]}/{key[1]}", {f"{key[0]}/{key[1]}": _UNPARSED})
        entities = spec.get("entities") if compiled is not None else None
        with self._lock:
            if compiled is None:
                self._compiled.pop(key, None)
                self._entities.pop(key, None)
            else:
                self._compiled[key] = compiled
                self._entities[key] = [dict(e) for e in entities or () if isinstance(e, Mapping)]
            self._sets.clear()

    def _removed(self, obj: JSON) -> None:
        with self._lock:
            self._compiled.pop(_key(obj), None)
            self._entities.pop(_key(obj), None)
            self._sets.clear()

    def policy_set(self, namespace: str, *, baseline: bool = True) -> PolicySet | None:
        """The compiled set that applies to ``namespace`` (``""``: cluster-scoped), None when no
        Policy of this scope applies there. ``baseline``: see :class:`PolicySet`."""
        with self._lock:
            if (namespace, baseline) in self._sets:
                return self._sets[(namespace, baseline)]
            applying = [c for key, c in sorted(self._compiled.items()) if _covers(key, namespace)]
            compiled = PolicySet(applying, baseline=baseline) if applying else None
            self._sets[(namespace, baseline)] = compiled
            return compiled

    def entities(self, namespace: str) -> list[JSON]:
        """The entities declared by the Policies that apply to ``namespace``."""
        with self._lock:
            return [
                e
                for key, declared in sorted(self._entities.items())
                if _covers(key, namespace)
                for e in declared
            ]


def _covers(key: tuple[str, str], namespace: str) -> bool:
    return key[0] == CLUSTER_POLICY_NAMESPACE or bool(namespace and key[0] == namespace)


def _key(obj: JSON) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
