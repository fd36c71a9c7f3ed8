"""Authorization of tool calls: the hook every :meth:`Context.call_tool` passes through.

Before a tool runs, the runtime asks the :data:`Authorizer` given to it
(``authorize(instance, server, tool, arguments) -> Decision``). Every decision, allow or deny, is
written to the instance's audit trail with its reason, in the same transaction as the journal
record of the call, so the trail and the journal never disagree. A denied call raises
:class:`~modelplane.agents.ToolDenied` in the handler; the denial is journaled, so a replay sees
the same denial without asking again. The platform plugs the runtime Policies (Cedar, in
:mod:`modelplane.policy`) in here; a runtime built without them allows every declared tool.

A decision may instead ask for a person's **approval** (``Decision.approval``): the call is
journaled as waiting, an approval request is stored (``agent_approvals``), the instance shows
status ``waiting_approval`` and holds no thread or task slot beyond a parked coroutine (it may be
passivated and the process may restart). Someone the :class:`ApprovalGate` lets decide approves
or denies it (``modelplane approvals approve|deny ID``); a denial raises
:class:`~modelplane.agents.ToolDenied` in the handler, an approval runs the call. The answer is
journaled, so a replay neither asks nor waits again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from modelplane.api import Principal


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """Which instance asks: ``namespace/agent/name``."""

    namespace: str
    agent: str
    name: str
    #: the user the instance acts for, when it acts for one (``""``: for itself)
    on_behalf_of: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.agent}/{self.name}"


@dataclass(frozen=True, slots=True)
class Decision:
    """An answer of the authorization hook: allowed or not, and why (shown in the audit trail)."""

    allow: bool
    reason: str
    #: instead of allow or deny: the call waits for a person's decision
    approval: bool = False
    #: which version of the policies decided (shown in the audit trail), if any
    policy_version: str = ""


Authorizer = Callable[[InstanceRef, str, str, Mapping[str, Any]], "Decision | Awaitable[Decision]"]
"""``authorize(instance, server, tool, arguments)``; may be sync or async."""

MessageAuthorizer = Callable[[InstanceRef, InstanceRef], "Decision | Awaitable[Decision]"]
"""``authorize(sender, recipient)`` for :meth:`Context.send` between instances; may be sync or
async. A denial is journaled and audited (``message.deny``) and raises
:class:`~modelplane.api.errors.Forbidden` in the sender (again on replay, without asking)."""


def allow_all(
    instance: InstanceRef, server: str, tool: str, arguments: Mapping[str, Any]
) -> Decision:
    """The default hook: allows any tool the Agent declares (undeclared servers never reach it)."""
    return Decision(True, "allowed: no policy restricts tool calls")


class ApprovalGate(Protocol):
    """Who may decide approvals, and where their decisions are recorded."""

    def may_decide(
        self, principal: Principal, approval: Mapping[str, Any], *, record: bool = True
    ) -> Decision:
        """May ``principal`` approve or deny ``approval`` (a row of ``modelplane approvals``)?
        ``record``: audit a refusal (False when only filtering a list)."""
        ...

    def decided(
        self, principal: Principal, approval: Mapping[str, Any], allow: bool, reason: str
    ) -> None:
        """``principal`` approved (``allow``) or denied ``approval``: record it."""
        ...


class AdminsDecide:
    """The default gate: administrators (``system:masters``) decide; nothing is recorded beyond
    the instance's audit trail."""

    def may_decide(
        self, principal: Principal, approval: Mapping[str, Any], *, record: bool = True
    ) -> Decision:
        if principal.is_admin:
            return Decision(True, "an administrator")
        return Decision(False, "only administrators decide approvals here")

    def decided(
        self, principal: Principal, approval: Mapping[str, Any], allow: bool, reason: str
    ) -> None:
        return None
