"""Approvals: tool calls a runtime Policy sent to a person, and that person's decision.

A call that needs approval is journaled by its instance with an ``agent_approvals`` row (see
:mod:`modelplane.agents.authz`); the instance waits in status ``waiting_approval``. Deciding
writes, in one transaction, the decision on the row, an ``approval`` entry in the instance's
inbox (the answer its waiting call consumes exactly once) and a row of the instance's audit
trail. A row is decided once: the first decision wins, a second is a 409 naming the first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from modelplane.api.errors import BadRequest, Conflict, NotFound

if TYPE_CHECKING:
    from modelplane.agents._execution import Clock
    from modelplane.agents._journal import Database

_COLUMNS = (
    "id, namespace, agent, name, server, tool, arguments, reason, requested, decision,"
    " decided_by, decided_reason, decided"
)
#: which approvals a list shows
STATES = ("open", "decided", "all")


def _info(row: tuple[Any, ...]) -> dict[str, Any]:
    (id_, namespace, agent, name, server, tool, arguments, reason, requested) = row[:9]
    decision, by, why, decided = row[9:]
    return {
        "id": id_,
        "namespace": namespace,
        "agent": agent,
        "instance": name,
        "server": server,
        "tool": tool,
        "arguments": orjson.loads(bytes(arguments)),
        "reason": reason,
        "requested": requested,
        "decision": decision or "pending",
        "decidedBy": by,
        "decidedReason": why,
        "decided": decided,
    }


class Approvals:
    """The approvals of one runtime database, from any process sharing it.

    ``nudge(iid)``: tells a runtime of this process that the instance has an answer (another
    process's runtime finds it by polling the inbox).
    """

    def __init__(self, db: Database, clock: Clock, nudge: Callable[[int], None]) -> None:
        self.db = db
        self.clock = clock
        self._nudge = nudge

    def list(self, *, state: str = "open", namespace: str | None = None) -> list[dict[str, Any]]:
        """Approvals, oldest request first: ``open`` (waiting), ``decided`` or ``all``."""
        if state not in STATES:
            raise BadRequest(f"state {state!r} is not one of {', '.join(STATES)}")
        where, params = ["1 = 1"], []
        if state == "open":
            where.append("decision IS NULL")
        elif state == "decided":
            where.append("decision IS NOT NULL")
        if namespace:
            where.append("namespace = ?")
            params.append(namespace)
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM agent_approvals WHERE {' AND '.join(where)}"
            " ORDER BY requested, id LIMIT 1000",
            params,
        )
        return [_info(r) for r in rows]

    def get(self, approval: str) -> dict[str, Any]:
        row = self.db.one(f"SELECT {_COLUMNS} FROM agent_approvals WHERE id = ?", (approval,))
        if row is None:
            raise NotFound(
                f"approval {approval!r} not found; `modelplane approvals list` shows those waiting",
                details={"kind": "Approval", "name": approval},
            )
        return _info(row)

    def decide(self, approval: str, allow: bool, reason: str, *, actor: str) -> dict[str, Any]:
        """Approve (``allow``) or deny ``approval`` as ``actor``; returns the decided approval."""
        current = self.get(approval)
        if current["decision"] != "pending":
            raise _decided(current)
        token, now = uuid.uuid4().hex, self.clock.now()
        decision = "approved" if allow else "denied"
        answer = orjson.dumps({"allow": allow, "reason": reason, "by": actor, "approval": approval})
        detail = orjson.dumps(
            {"approval": approval, "decision": decision, "reason": reason, "tool": current["tool"]}
        )
        mine = "FROM agent_approvals WHERE id = ? AND token = ?"
        rows = self.db.execute_now(
            [
                (
                    "UPDATE agent_approvals SET decision = ?, decided_by = ?, decided_reason = ?,"
                    " decided = ?, token = ? WHERE id = ? AND decision IS NULL RETURNING iid",
                    (decision, actor, reason, now, token, approval),
                ),
                # only the decision that won the row answers the instance (read committed:
                # a concurrent decider's update matched nothing, so these select nothing)
                (
                    f"INSERT INTO agent_inbox (iid, kind, data, at) SELECT iid, 'approval', ?, ?"
                    f" {mine}",
                    (answer, now, approval, token),
                ),
                (
                    "INSERT INTO agent_audit (namespace, agent, name, at, actor, action, detail)"
                    f" SELECT namespace, agent, name, ?, ?, ?, ? {mine}",
                    (now, actor, f"approval.{decision}", detail, approval, token),
                ),
            ]
        )
        if rows[0] is None:
            raise _decided(self.get(approval))
        self._nudge(int(rows[0][0]))
        return self.get(approval)


def _decided(approval: dict[str, Any]) -> Conflict:
    return Conflict(
        f"approval {approval['id']} was already {approval['decision']} by"
        f" {approval['decidedBy']}: {approval['decidedReason'] or 'no reason given'}"
    )
