"""The audit contract: one record per decision, and the sink records are appended to.

Every decision the platform makes about a principal's action (admission of an API write, a
run-time decision on a model call, a tool call, an agent message, an approval) becomes one
:class:`AuditEvent` appended to an :class:`AuditSink`. The persistent, hash-chained log
implements the sink; :class:`MemoryAudit` keeps events in a list (tests, and a process with no
log configured).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from modelplane.policy._engine import Decision


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One decision, as the audit log keeps it."""

    #: what kind of decision: ``admission``, ``model``, ``tool``, ``message``, ``approval``
    category: str
    #: who asked: the principal's name (a user, or ``system:serviceaccount:<ns>:<name>``)
    principal: str
    #: what was asked: a verb (``create``) or a run-time action (``tools/call``, ``chat``)
    action: str
    #: on what: ``<Kind>/<namespace>/<name>``, a model name, ``<server>/<tool>``
    resource: str
    #: ``allow``, ``deny`` or ``approval`` (waits for a person)
    decision: str
    #: the tenant the resource belongs to (``""`` for cluster-scoped)
    namespace: str = ""
    #: ids of the policies that decided (for a deny: the forbidding ones)
    policies: tuple[str, ...] = ()
    #: their ``@reason`` annotations, or the engine's errors
    reasons: tuple[str, ...] = ()
    #: a hash naming the policy set the decision was made with
    policy_version: str = ""
    #: ``sha256:<hex>`` of the canonical JSON of the arguments (tool calls), else ``""``
    arguments_digest: str = ""
    #: when, RFC 3339 UTC
    time: str = field(default_factory=_now)
    #: the user an agent acted for (delegation), else ``""``
    on_behalf_of: str = ""

    @classmethod
    def of(
        cls,
        decision: Decision,
        *,
        category: str,
        principal: str,
        action: str,
        resource: str,
        namespace: str = "",
        arguments_digest: str = "",
    ) -> AuditEvent:
        """The record of an allow-or-deny ``decision``: its policies, reasons and version."""
        return cls(
            category=category,
            principal=principal,
            action=action,
            resource=resource,
            decision="allow" if decision.allowed else "deny",
            namespace=namespace,
            policies=decision.policies,
            reasons=decision.reasons,
            policy_version=decision.version,
            arguments_digest=arguments_digest,
        )


class AuditSink(Protocol):
    """Where decisions go: append must not raise for a valid event (a sink that cannot write
    logs and counts the loss; the decision stands)."""

    def append(self, event: AuditEvent) -> None: ...


class MemoryAudit:
    """A sink that keeps events in memory, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[AuditEvent] = []

    def append(self, event: AuditEvent) -> None:
        with self._lock:
            self.events.append(event)
