"""Policy as code on Cedar (cedarpy): admission decisions on every API write.

Owns: the Cedar entities of principals, actions and objects (:mod:`._engine`), and the
admission Policies compiled from an informer and checked on every write (:mod:`._admission`).
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

__all__ = [
    "VERBS",
    "Admission",
    "AuditEvent",
    "AuditSink",
    "CompiledPolicy",
    "Decision",
    "MemoryAudit",
    "PolicySet",
    "compile_policy",
    "principal_entities",
    "resource_entity",
]
