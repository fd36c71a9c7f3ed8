"""Admission: the ``Policy`` objects with ``scope: admission``, compiled once per change from an
informer, and the check every API write passes.

Which Policies apply to an object:

* a Policy in the namespace :data:`~modelplane.api.CLUSTER_POLICY_NAMESPACE`
  (``modelplane-system``) applies cluster-wide: to objects of every namespace and to
  cluster-scoped objects;
* a Policy in any other namespace applies to the objects of that namespace only.

The statements that apply to a namespace are compiled into one Cedar policy set when first
needed after a change and reused for every request until the next change (the informer's
handlers drop the compiled sets); a request never reads the store for policies. When no
admission Policy applies, the check allows without evaluating anything: today's behaviour.

Break glass: an administrator's writes of ``Policy`` objects are not subject to admission
Policies, so a policy that forbids everything cannot forbid its own removal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelplane.api import CLUSTER_POLICY_NAMESPACE, Principal
from modelplane.api.errors import Forbidden, Unavailable
from modelplane.control import Informer
from modelplane.policy._audit import AuditEvent, AuditSink
from modelplane.policy._engine import CompiledPolicy, Counts, Decision, PolicySet, compile_policy

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

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

#: how long a first write waits for the Policies to be loaded before it is refused (fail closed)
SYNC_SECONDS = 10.0
#: how often the wait for the Policies asks whether the store answers at all
_SYNC_SLICE = 0.25


class Admission:
    """Admission Policies of ``store``, followed by an informer started on first use.

    ``registry``: decisions are counted there as ``modelplane_policy_decisions_total{result,
    scope}``; without one they are counted in :attr:`counts`. ``audit``: every decision of
    :meth:`admit` (allow and deny) is appended there as one ``admission`` event.
    """

    def __init__(
        self,
        store: Store,
        *,
        registry: CollectorRegistry | None = None,
        audit: AuditSink | None = None,
    ) -> None:
        self._store = store
        self._audit = audit
        self._informer = Informer(store, "Policy")
        self._lock = threading.Lock()
        self._started = False
        self._compiled: dict[tuple[str, str], CompiledPolicy] = {}
        self._sets: dict[str, PolicySet | None] = {}
        self.counts = Counts()
        self._counter: Any = None
        if registry is not None:
            from prometheus_client import Counter

            self._counter = Counter(
                "modelplane_policy_decisions_total",
                "Policy decisions by result (allow, deny, error) and scope (admission, runtime)",
                ["result", "scope"],
                registry=registry,
            )
        self._informer.add_handler(
            on_add=self._changed,
            on_update=lambda _old, new: self._changed(new),
            on_delete=self._removed,
        )

    # -- the cache ----------------------------------------------------------------------------------

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
                "the admission Policies are not loaded yet, so writes are refused (fail closed);"
                " retry shortly",
                retry_after=1,
            )

    def stop(self) -> None:
        self._informer.stop(timeout=5.0)

    def _changed(self, obj: JSON) -> None:
        key = _key(obj)
        spec = obj.get("spec") or {}
        compiled: CompiledPolicy | None = None
        if spec.get("scope") == "admission":
            try:
                compiled = compile_policy(key[0], key[1], str(spec.get("cedar") or ""))
            except ValueError:
                # stored before validation parsed Cedar: what it meant is unknown, so it
                # refuses every write it covers (fail closed) until it is fixed or deleted
                compiled = CompiledPolicy(f"{key[0]}/{key[1]}", {f"{key[0]}/{key[1]}": _UNPARSED})
        with self._lock:
            if compiled is None:
                self._compiled.pop(key, None)
            else:
                self._compiled[key] = compiled
            self._sets.clear()

    def _removed(self, obj: JSON) -> None:
        with self._lock:
            self._compiled.pop(_key(obj), None)
            self._sets.clear()

    def applies(self, namespace: str) -> bool:
        """Whether any admission Policy covers objects of ``namespace``."""
        self.start()
        return self.policy_set(namespace) is not None

    def policy_set(self, namespace: str) -> PolicySet | None:
        """The compiled set that applies to objects of ``namespace`` (``""``: cluster-scoped),
        None when no admission Policy applies there."""
        with self._lock:
            if namespace in self._sets:
                return self._sets[namespace]
            applying = [
                c
                for (ns, _), c in sorted(self._compiled.items())
                if ns == CLUSTER_POLICY_NAMESPACE or (namespace and ns == namespace)
            ]
            compiled = PolicySet(applying) if applying else None
            self._sets[namespace] = compiled
            return compiled

    # -- decisions ----------------------------------------------------------------------------------

    def decide(
        self,
        principal: Principal,
        verb: str,
        obj: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        """The admission decision for ``principal`` doing ``verb`` to ``obj``."""
        self.start()
        if principal.is_admin and obj.get("kind") == "Policy":
            return Decision(True, reasons=("break glass",))  # see the module docstring
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        policies = self.policy_set(namespace)
        if policies is None:
            return Decision(True)
        decision = policies.decide(principal, verb, obj, context)
        erred = not decision.allowed and any(r.startswith("error") for r in decision.reasons)
        self._count("allow" if decision.allowed else "error" if erred else "deny", "admission")
        return decision

    def admit(
        self,
        principal: Principal,
        verb: str,
        obj: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
    ) -> None:
        """Raise Forbidden (403) naming the deciding policies unless the write is allowed."""
        decision = self.decide(principal, verb, obj, context)
        if self._audit is not None:
            self._audit.append(_event(principal, verb, obj, decision))
        if decision.allowed:
            return
        metadata = obj.get("metadata") or {}
        kind, name = str(obj.get("kind")), str(metadata.get("name") or "")
        where = f" in namespace {metadata['namespace']!r}" if metadata.get("namespace") else ""
        why = "; ".join(
            f"{p}: {r}" if r else p
            for p, r in zip(decision.policies, decision.reasons, strict=False)
        )
        raise Forbidden(
            f"{kind} {name!r}{where}: user {principal.name!r} cannot {verb} it: denied by the"
            f" admission policy {why}; change the object, or ask an operator to change the Policy",
            details={
                "kind": kind,
                "name": name,
                "policies": list(decision.policies),
                "reasons": list(decision.reasons),
                "policyVersion": decision.version,
            },
        )

    def _count(self, result: str, scope: str) -> None:
        self.counts.inc(result, scope)
        if self._counter is not None:
            self._counter.labels(result=result, scope=scope).inc()


def _event(
    principal: Principal, verb: str, obj: Mapping[str, Any], decision: Decision
) -> AuditEvent:
    metadata = obj.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "")
    where = f"{namespace}/" if namespace else ""
    return AuditEvent(
        category="admission",
        principal=principal.name,
        action=verb,
        resource=f"{obj.get('kind')}/{where}{metadata.get('name') or ''}",
        decision="allow" if decision.allowed else "deny",
        namespace=namespace,
        policies=decision.policies,
        reasons=decision.reasons,
        policy_version=decision.version,
    )


def _key(obj: JSON) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
