"""Policy as code on Cedar (cedarpy): admission decisions on every API write.

Owns: the Cedar entities of principals, actions and objects (:mod:`._engine`), the
admission Policies compiled from an informer and checked on every write (:mod:`._admission`),
and the tenancy rules (namespaces are tenants) every read, write and model call passes
(:mod:`._tenancy`).
Runtime Policies (model access, tool calls) are not enforced yet. See ``docs/policy.md``.
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
from modelplane.policy._tenancy import READS, TENANCY_CEDAR, Tenancy

__all__ = [
    "READS",
    "TENANCY_CEDAR",
    "VERBS",
    "Admission",
    "AuditEvent",
    "AuditSink",
    "CompiledPolicy",
    "Decision",
    "MemoryAudit",
    "PolicySet",
    "Tenancy",
    "compile_policy",
    "principal_entities",
    "resource_entity",
]
