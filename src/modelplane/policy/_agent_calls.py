"""What agents do, decided by the runtime Policies: the tool-call and message hooks of the agent
runtime (:data:`~modelplane.agents.Authorizer`, :data:`~modelplane.agents.MessageAuthorizer`) and
who may decide approvals
(:class:`~modelplane.agents.ApprovalGate`), both on one :class:`RuntimePolicies`.

A tool call is ``Action::"tools/call"`` by the Agent's service account
(``system:serviceaccount:<ns>:<agent>``, a member of ``Namespace::"<ns>"``) on
``Tool::"<ns>/<server>/<tool>"``, whose attributes are ``server``, ``tool``, ``agent``,
``namespace`` and ``labels`` (the labels of the namespace), with ``context.arguments`` (the
arguments as a Cedar record) and ``context.onBehalfOf`` when the instance acts for a user. For
example, with the namespace ``team-a`` not labelled ``sandbox``::

    @reason("shell commands run only in sandbox namespaces")
    forbid(principal, action == Action::"tools/call", resource)
    when { resource.tool == "shell.exec" && !(resource.labels has "sandbox") };

A message to another instance (:meth:`Context.send`) is ``Action::"agent.message"`` by the
sender's service account on the recipient's ``Agent::"<ns>/<agent>"``; a message has no approval
step, so "needs approval" is a deny there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from modelplane.agents import Decision, InstanceRef
from modelplane.api import Principal, service_account
from modelplane.policy._audit import AuditEvent
from modelplane.policy._engine import Decision as PolicyDecision
from modelplane.policy._runtime import RuntimeDecision, RuntimePolicies

#: ``(principal, namespace, server, tool, arguments or None for tools/list) -> Decision``
ToolAuthorizer = Callable[[Principal, str, str, str, Mapping[str, Any] | None], PolicyDecision]


class AgentPolicy:
    """The agent runtime's tool-call hook and approval gate, on ``policies``."""

    def __init__(self, policies: RuntimePolicies) -> None:
        self.policies = policies

    async def __call__(
        self, instance: InstanceRef, server: str, tool: str, arguments: Mapping[str, Any]
    ) -> Decision:
        # off the event loop: the first decision may wait for the Policies to load
        return await asyncio.to_thread(self.decide_tool, instance, server, tool, arguments)

    def decide_tool(
        self, instance: InstanceRef, server: str, tool: str, arguments: Mapping[str, Any]
    ) -> Decision:
        """The decision on one tool call (``__call__`` runs it in a thread)."""
        namespace = instance.namespace
        resource = self._tool(namespace, server, tool, instance.agent)
        context = {"onBehalfOf": instance.on_behalf_of} if instance.on_behalf_of else {}
        decided = self.policies.decide(
            service_account(namespace, instance.agent),
            "tools/call",
            resource,
            context,
            arguments=arguments,
        )
        return _hook_decision(decided)

    def _tool(self, namespace: str, server: str, tool: str, agent: str) -> dict[str, Any]:
        """``Tool::"<ns>/<server>/<tool>"``, the resource of ``tools/call`` and ``tools/list``."""
        return {
            "uid": {"type": "Tool", "id": f"{namespace}/{server}/{tool}"},
            "attrs": {
                "server": server,
                "tool": tool,
                "agent": agent,
                "namespace": namespace,
                "labels": self.policies.namespace_labels(namespace),
            },
            "parents": [{"type": "Namespace", "id": namespace}],
        }

    def tool_authorizer(self, first: ToolAuthorizer) -> ToolAuthorizer:
        """The MCP gateway's authorizer: ``first`` (tenancy), then the runtime Policies on
        ``Action::"tools/call"`` with ``context.arguments``, or ``Action::"tools/list"`` when
        ``arguments`` is None (may the caller see the tool at all); ``agent`` is ``""``."""

        def authorize(
            principal: Principal,
            namespace: str,
            server: str,
            tool: str,
            arguments: Mapping[str, Any] | None,
        ) -> PolicyDecision:
            decision = first(principal, namespace, server, tool, arguments)
            if not decision.allowed:
                return decision
            resource = self._tool(namespace, server, tool, "")
            if arguments is None:
                decided = self.policies.decide(principal, "tools/list", resource)
            else:
                decided = self.policies.decide(
                    principal, "tools/call", resource, arguments=arguments
                )
            return PolicyDecision(
                decided.allowed, decided.policies, decided.reasons, decided.version
            )

        return authorize

    async def authorize_message(self, sender: InstanceRef, recipient: InstanceRef) -> Decision:
        """The agents' message hook (:data:`~modelplane.agents.MessageAuthorizer`)."""
        return await asyncio.to_thread(self.decide_message, sender, recipient)

    def decide_message(self, sender: InstanceRef, recipient: InstanceRef) -> Decision:
        """``Action::"agent.message"`` by the sender's service account on the recipient
        ``Agent::"<ns>/<agent>"`` (attributes ``namespace``, ``name``, ``instance``, ``labels``)."""
        namespace = recipient.namespace
        resource = {
            "uid": {"type": "Agent", "id": f"{namespace}/{recipient.agent}"},
            "attrs": {
                "namespace": namespace,
                "name": recipient.agent,
                "instance": recipient.name,
                "labels": self.policies.namespace_labels(namespace),
            },
            "parents": [{"type": "Namespace", "id": namespace}],
        }
        context = {"onBehalfOf": sender.on_behalf_of} if sender.on_behalf_of else {}
        principal = service_account(sender.namespace, sender.agent)
        decided = self.policies.decide(principal, "agent.message", resource, context)
        return _hook_decision(decided, approvals=False)

    # -- the approval gate --------------------------------------------------------------------

    def may_decide(
        self, principal: Principal, approval: Mapping[str, Any], *, record: bool = True
    ) -> Decision:
        decided = self.policies.may_decide(principal, approval, record=record)
        return Decision(decided.allowed, decided.reason, policy_version=decided.version)

    def decided(
        self, principal: Principal, approval: Mapping[str, Any], allow: bool, reason: str
    ) -> None:
        sink = self.policies.audit
        if sink is None:
            return
        sink.append(
            AuditEvent(
                category="approval",
                principal=principal.name,
                action="approval.decide",
                resource=f"Approval/{approval.get('id')}",
                decision="allow" if allow else "deny",
                namespace=str(approval.get("namespace") or ""),
                reasons=(reason,) if reason else (),
            )
        )


def _hook_decision(decided: RuntimeDecision, *, approvals: bool = True) -> Decision:
    if decided.outcome == "approval" and approvals:
        return Decision(False, decided.reason, approval=True, policy_version=decided.version)
    reason = decided.reason if decided.allowed else f"denied by {decided.reason}"
    return Decision(decided.allowed, reason, policy_version=decided.version)
