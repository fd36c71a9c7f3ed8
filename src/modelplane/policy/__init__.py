"""Policy as code on Cedar (cedarpy): admission decisions on every API write.

Owns: the Cedar entities of principals, actions and objects (:mod:`._engine`), the
admission Policies compiled from an informer and checked on every write (:mod:`._admission`),
Relationship tuples resolved into Cedar entity parents (:mod:`._relations`) and delegation, an
agent acting for a user with at most the user's permissions (:mod:`._delegation`).
Runtime Policies (model access, tool calls) are not enforced yet. See ``docs/policy.md``.
"""

from modelplane.policy._admission import Admission
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
from modelplane.policy._relations import RelationGraph, Relations, service_account

__all__ = [
    "NOT_DELEGATED",
    "VERBS",
    "Admission",
    "AuditEvent",
    "AuditSink",
    "CompiledPolicy",
    "Decision",
    "MemoryAudit",
    "PolicySet",
    "PrincipalResolver",
    "RelationGraph",
    "Relations",
    "compile_policy",
    "decide_on_behalf",
    "principal_entities",
    "resource_entity",
    "service_account",
]
