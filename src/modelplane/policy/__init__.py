"""Policy as code on Cedar (cedarpy): admission decisions on every API write, and run-time
decisions on what agents do.

Owns: the Cedar entities of principals, actions and objects (:mod:`._engine`), the Policies of
a scope compiled once per change from an informer (:mod:`._cache`), the admission check every
write passes (:mod:`._admission`), run-time decisions with their three outcomes (allow, deny,
needs approval) audited to an :class:`AuditSink` (:mod:`._runtime`), the agent runtime's
tool-call hook and approval gate built on them (:mod:`._agent_calls`), and the audit log
(:mod:`._log`, routes in :mod:`._log_routes`): every decision appended once to a hash-chained
table in the platform's database; Relationship tuples resolved into Cedar entity parents
(:mod:`._relations`) and delegation, an agent acting for a user with at most the user's
permissions (:mod:`._delegation`), and the tenancy rules (namespaces are tenants) every read,
write and model call passes (:mod:`._tenancy`). See ``docs/policy.md``.
Must not touch: other subsystems' internals; it reads ``Policy`` objects from the store.
"""

from modelplane.policy._admission import Admission
from modelplane.policy._agent_calls import AgentPolicy
from modelplane.policy._audit import AuditEvent, AuditSink, MemoryAudit
from modelplane.policy._delegation import NOT_DELEGATED, decide_on_behalf
from modelplane.policy._engine import (
    VERBS,
    CompiledPolicy,
    Decision,
    PolicySet,
    PrincipalResolver,
    compile_policy,
    principal_entities,
    resource_entity,
)
from modelplane.policy._log import (
    AuditLog,
    AuditQuery,
    AuditRecord,
    Verification,
    open_audit_log,
    parse_retention,
    record_hash,
)
from modelplane.policy._log_routes import (
    RECORDS_PATH,
    VERIFY_PATH,
    audit_openapi_paths,
    audit_routes,
)
from modelplane.policy._relations import RelationGraph, Relations
from modelplane.policy._runtime import (
    RuntimeDecision,
    RuntimePolicies,
    canonical_json,
)
from modelplane.policy._tenancy import READS, TENANCY_CEDAR, Tenancy

__all__ = [
    "NOT_DELEGATED",
    "READS",
    "RECORDS_PATH",
    "TENANCY_CEDAR",
    "VERBS",
    "VERIFY_PATH",
    "Admission",
    "AgentPolicy",
    "AuditEvent",
    "AuditLog",
    "AuditQuery",
    "AuditRecord",
    "AuditSink",
    "CompiledPolicy",
    "Decision",
    "MemoryAudit",
    "PolicySet",
    "PrincipalResolver",
    "RelationGraph",
    "Relations",
    "RuntimeDecision",
    "RuntimePolicies",
    "Tenancy",
    "Verification",
    "audit_openapi_paths",
    "audit_routes",
    "canonical_json",
    "compile_policy",
    "decide_on_behalf",
    "open_audit_log",
    "parse_retention",
    "principal_entities",
    "record_hash",
    "resource_entity",
]
