"""Policy as code on Cedar (cedarpy): admission decisions on every API write.

Owns: the Cedar entities of principals, actions and objects (:mod:`._engine`), and the
admission Policies compiled from an informer and checked on every write (:mod:`._admission`).
The audit log (:mod:`._log`, routes in :mod:`._log_routes`): every decision appended once to a
hash-chained table in the platform's database. Runtime Policies (model access, tool calls) are
not enforced yet. See ``docs/policy.md``.
"""

from modelplane.policy._admission import Admission
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

__all__ = [
    "RECORDS_PATH",
    "VERBS",
    "VERIFY_PATH",
    "Admission",
    "AuditEvent",
    "AuditLog",
    "AuditQuery",
    "AuditRecord",
    "AuditSink",
    "CompiledPolicy",
    "Decision",
    "MemoryAudit",
    "PolicySet",
    "Verification",
    "audit_openapi_paths",
    "audit_routes",
    "compile_policy",
    "open_audit_log",
    "parse_retention",
    "principal_entities",
    "record_hash",
    "resource_entity",
]
