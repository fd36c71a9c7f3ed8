"""Admission: the ``Policy`` objects with ``scope: admission``, compiled once per change from an
informer (:class:`~modelplane.policy._cache.PolicyCache`, which says which Policies apply to
which namespace), and the check every API write passes.

When no admission Policy applies, the check allows without evaluating anything: today's
behaviour.

Break glass: an administrator's writes of ``Policy`` objects are not subject to admission
Policies, so a policy that forbids everything cannot forbid its own removal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelplane.api import Principal
from modelplane.api.errors import Forbidden
from modelplane.policy._audit import AuditEvent, AuditSink
from modelplane.policy._cache import PolicyCache
from modelplane.policy._engine import Counts, Decision, PolicySet, PrincipalResolver
from modelplane.policy._metrics import DECISIONS, decisions_counter

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from modelplane.store import Store


class Admission:
    """Admission Policies of ``store``, followed by an informer started on first use.

    ``registry``: decisions are counted there as ``modelplane_policy_decisions_total{result,
    scope}``; without one they are counted in :attr:`counts`. ``audit``: every decision of
    :meth:`admit` (allow and deny) is appended there as one ``admission`` event. ``relations``:
    where principals' entities come from (:class:`~modelplane.policy.Relations`: relationship
    parents too).
    """

    def __init__(
        self,
        store: Store,
        *,
        registry: CollectorRegistry | None = None,
        audit: AuditSink | None = None,
        relations: PrincipalResolver | None = None,
    ) -> None:
        self._cache = PolicyCache(store, "admission")
        self._audit = audit
        self._relations = relations
        self.counts = Counts()
        # the process's series (``/metrics`` of up and server), or a registry of the caller's own
        self._counter: Any = DECISIONS if registry is None else decisions_counter(registry)

    # -- the cache ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start following the Policies and wait until they are loaded (Unavailable if not)."""
        self._cache.start()

    def stop(self) -> None:
        self._cache.stop()

    def applies(self, namespace: str) -> bool:
        """Whether any admission Policy covers objects of ``namespace``."""
        self.start()
        return self.policy_set(namespace) is not None

    def policy_set(self, namespace: str) -> PolicySet | None:
        """The compiled set that applies to objects of ``namespace`` (``""``: cluster-scoped),
        None when no admission Policy applies there."""
        return self._cache.policy_set(namespace)

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
        decision = policies.decide(principal, verb, obj, context, relations=self._relations)
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
        self._counter.labels(result=result, scope=scope).inc()


def _event(
    principal: Principal, verb: str, obj: Mapping[str, Any], decision: Decision
) -> AuditEvent:
    metadata = obj.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "")
    where = f"{namespace}/" if namespace else ""
    return AuditEvent.of(
        decision,
        category="admission",
        principal=principal.name,
        action=verb,
        resource=f"{obj.get('kind')}/{where}{metadata.get('name') or ''}",
        namespace=namespace,
    )
