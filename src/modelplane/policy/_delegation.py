"""Delegation: an agent acting on behalf of a user gets at most that user's permissions.

An Agent (or a service account) may act for a user only where a ``delegated-to`` Relationship
says so (``Agent team-a/helper delegated-to User alice``). Acting for the user, a request is
decided twice, once for the agent and once for the user, and allowed only when both are allowed:
the intersection of their permissions. Delegation never widens: the agent's entity does not
inherit the user's groups or relationships, so an agent acting for an administrator can do no
more than the agent itself may, and a user cannot lend an agent more than the user has.

Each decision is appended to the audit sink, when one is given, as one :class:`AuditEvent` whose
principal is the agent and whose ``on_behalf_of`` is the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.api import Principal
from modelplane.policy._audit import AuditEvent, AuditSink
from modelplane.policy._engine import Decision, PolicySet
from modelplane.policy._relations import Relations

#: the id a refusal names when no ``delegated-to`` Relationship lets the agent act for the user
NOT_DELEGATED = "modelplane:delegation"


def decide_on_behalf(
    agent: Principal,
    user: Principal,
    policies: PolicySet,
    verb: str,
    obj: Mapping[str, Any],
    context: Mapping[str, Any] | None = None,
    *,
    relations: Relations,
    audit: AuditSink | None = None,
    category: str = "admission",
) -> Decision:
    """Whether ``agent``, acting for ``user``, may ``verb`` ``obj``: allowed only when a
    ``delegated-to`` Relationship lets it act for ``user`` and both of them are allowed.

    A denial names the policies that denied, and says whose permissions lacked (the agent's,
    or the user's with ``on behalf of user ...`` before each reason).
    """
    decision = _decide(agent, user, policies, verb, obj, context, relations)
    if audit is not None:
        metadata = obj.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "")
        name = str(metadata.get("name") or "")
        audit.append(
            AuditEvent(
                category=category,
                principal=agent.name,
                action=verb,
                resource=f"{obj.get('kind')}/{namespace}/{name}"
                if namespace
                else f"{obj.get('kind')}/{name}",
                decision="allow" if decision.allowed else "deny",
                namespace=namespace,
                policies=decision.policies,
                reasons=decision.reasons,
                on_behalf_of=user.name,
            )
        )
    return decision


def _decide(
    agent: Principal,
    user: Principal,
    policies: PolicySet,
    verb: str,
    obj: Mapping[str, Any],
    context: Mapping[str, Any] | None,
    relations: Relations,
) -> Decision:
    if not relations.delegates(agent, user):
        return Decision(
            False,
            (NOT_DELEGATED,),
            (
                f"{agent.name!r} may not act on behalf of {user.name!r}: no delegated-to"
                " Relationship says so; an administrator or the namespace's owner can create one",
            ),
        )
    own = policies.decide(agent, verb, obj, context, relations=relations)
    if not own.allowed:
        return own
    lent = policies.decide(user, verb, obj, context, relations=relations)
    if lent.allowed:
        return lent
    return Decision(
        False, lent.policies, tuple(f"on behalf of user {user.name!r}: {r}" for r in lent.reasons)
    )
