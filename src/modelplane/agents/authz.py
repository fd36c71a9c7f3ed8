"""Authorization of tool calls: the hook every :meth:`Context.call_tool` passes through.

Before a tool runs, the runtime asks the :data:`Authorizer` given to it
(``authorize(instance, server, tool, arguments) -> Decision``). Every decision, allow or deny, is
written to the instance's audit trail with its reason, in the same transaction as the journal
record of the call, so the trail and the journal never disagree. A denied call raises
:class:`~modelplane.agents.ToolDenied` in the handler; the denial is journaled, so a replay sees
the same denial without asking again. The policy engine (Cedar) plugs in here later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """Which instance asks: ``namespace/agent/name``."""

    namespace: str
    agent: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.agent}/{self.name}"


@dataclass(frozen=True, slots=True)
class Decision:
    """An answer of the authorization hook: allowed or not, and why (shown in the audit trail)."""

    allow: bool
    reason: str


Authorizer = Callable[[InstanceRef, str, str, Mapping[str, Any]], "Decision | Awaitable[Decision]"]
"""``authorize(instance, server, tool, arguments)``; may be sync or async."""


def allow_all(
    instance: InstanceRef, server: str, tool: str, arguments: Mapping[str, Any]
) -> Decision:
    """The default hook: allows any tool the Agent declares (undeclared servers never reach it)."""
    return Decision(True, "allowed: no policy restricts tool calls")
