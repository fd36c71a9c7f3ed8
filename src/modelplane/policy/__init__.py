"""Policy as code on Cedar (cedarpy): admission decisions on every API write, and run-time
decisions on what agents do.

Owns: the Cedar entities of principals, actions and objects (:mod:`._engine`), the Policies of
a scope compiled once per change from an informer (:mod:`._cache`), the admission check every
write passes (:mod:`._admission`), run-time decisions with their three outcomes (allow, deny,
needs approval) audited to an :class:`AuditSink` (:mod:`._runtime`), and the agent runtime's
tool-call hook and approval gate built on them (:mod:`._agent_calls`). See ``docs/policy.md``.
Must not touch: other subsystems' internals; it reads ``Policy`` objects from the store.
"""

from modelplane.policy._admission import Admission
from modelplane.policy._agent_calls import AgentPolicy
from modelplane.policy._audit import AuditEvent, AuditSink, MemoryAudit
from modelplane.policy._engine import (
    VERBS,
    CompiledPolicy,
    Decision,
    PolicySet,
    compile_policy,
    principal_entities,
    resource_entity,
)
from modelplane.policy._runtime import (
    RuntimeDecision,
    RuntimePolicies,
    canonical_json,
    namespaces_of,
    service_account,
)

__all__ = [
    "VERBS",
    "Admission",
    "AgentPolicy",
    "AuditEvent",
    "AuditSink",
    "CompiledPolicy",
    "Decision",
    "MemoryAudit",
    "PolicySet",
    "RuntimeDecision",
    "RuntimePolicies",
    "canonical_json",
    "compile_policy",
    "namespaces_of",
    "principal_entities",
    "resource_entity",
    "service_account",
]
