"""One resident instance and the execution of its turns (live and replay)."""

from __future__ import annotations

import asyncio
import inspect
import random
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from modelplane.agents._journal import Database, InstanceIdentity, Op, checksum
from modelplane.agents._metrics import STEPS
from modelplane.agents._tracing import step_span
from modelplane.agents.authz import Authorizer, Decision, InstanceRef, MessageAuthorizer
from modelplane.agents.context import Context, State, deterministic_random, encode
from modelplane.agents.errors import (
    NonDeterminism,
    NotSerializable,
    StepFailed,
    ToolDenied,
)
from modelplane.api import parse_duration
from modelplane.api.errors import Forbidden, NotFound

if TYPE_CHECKING:
    from modelplane.agents._loader import AgentCode
    from modelplane.api import AgentSpec, Tool
    from modelplane.sandbox import NetworkEvent

INSERT_RECORD = (
    "INSERT INTO agent_journal (iid, seq, kind, name, data, crc, at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
UPSERT_MEMORY = (
    "INSERT INTO agent_memory (iid, n, data) VALUES (?, ?, ?)"
    " ON CONFLICT (iid, n) DO UPDATE SET data = excluded.data"
)
UPSERT_SNAPSHOT = (
    "INSERT INTO agent_snapshots (iid, turn, seq, memory_len, state, crc) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (iid) DO UPDATE SET turn = excluded.turn, seq = excluded.seq,"
    " memory_len = excluded.memory_len, state = excluded.state, crc = excluded.crc"
)
INSERT_AUDIT = (
    "INSERT INTO agent_audit (namespace, agent, name, at, actor, action, detail)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)

TERMINAL = frozenset({"completed", "failed", "cancelled", "corrupt"})


class Clock(Protocol):
    """Where the runtime reads time: wall time for timers and ``ctx.now``, monotonic for idleness."""

    def now(self) -> float: ...

    def monotonic(self) -> float: ...


class Host(Protocol):
    """What a turn needs of the runtime it runs in (:class:`~modelplane.agents.Runtime`);
    declared here, below the runtime, so that the turn does not import the runtime back."""

    clock: Clock
    db: Database
    authorizer: Authorizer
    message_authorizer: MessageAuthorizer | None

    def load_memory(self, iid: int, length: int) -> list[Any]: ...
    async def commit(self, inst: Instance, ops: Sequence[Op]) -> None: ...

    async def until_lease_valid(self, inst: Instance) -> None: ...
    def timer_set(self, inst: Instance) -> None: ...
    def nudge(self, iid: int) -> None: ...
    async def call_model(
        self, body: dict[str, Any], caller: tuple[str, str] | None = None
    ) -> dict[str, Any]: ...
    async def call_tool(
        self,
        spec: Tool,
        tool: str,
        arguments: dict[str, Any],
        folder: Path | None = None,
        on_network: Callable[[NetworkEvent], None] | None = None,
    ) -> Any: ...


@dataclass(slots=True)
class Definition:
    """An Agent as the runtime needs it: the loaded handler and its settings."""

    namespace: str
    name: str
    version: str
    spec: AgentSpec
    handler: Any
    is_class: bool
    max_attempts: int
    backoff_initial: float
    backoff_max: float
    backoff_multiplier: float
    idle_timeout: float
    tools: dict[str, Any] = field(default_factory=dict)
    #: the extracted bundle the code came from (stdio tool servers start there), if any
    folder: Path | None = None


Record = tuple[int, str, str, bytes]


# eq and repr as an object's: an instance is itself, and its snapshot bytes stay out of logs
@dataclass(slots=True, eq=False, repr=False)
class Instance(InstanceIdentity):
    """An instance in memory. Idle ones are small: the snapshot bytes and a few numbers."""

    definition: Definition
    turn_no: int
    snap_seq: int
    memory_len: int
    state_bytes: bytes
    tail: list[Record]
    wake_at: float | None
    next_seq: int = field(init=False)
    memory: list[Any] | None = field(default=None, init=False)
    inbox: deque[tuple[int, str, bytes]] | None = field(default=None, init=False)
    inbox_seen: int = field(default=0, init=False)
    task: asyncio.Task[None] | None = field(default=None, init=False)
    waiter: asyncio.Future[None] | None = field(default=None, init=False)
    blocked: bool = field(default=False, init=False)
    pending: list[Op] | None = field(default=None, init=False)
    last_active: float = field(default=0.0, init=False)
    #: (shard, fencing token) its commits are written under; None without leases
    fence: tuple[int, int] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.next_seq = (self.tail[-1][0] if self.tail else self.snap_seq) + 1

    def ref(self) -> InstanceRef:
        return InstanceRef(self.namespace, self.agent, self.name)

    def take_inbox(self, kind: str) -> tuple[int, bytes] | None:
        if not self.inbox:
            return None
        for item in self.inbox:
            if item[1] == kind:
                self.inbox.remove(item)
                return item[0], item[2]
        return None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Turn:
    """The execution of one turn: replays the journal tail, then runs live."""

    def __init__(self, rt: Host, inst: Instance) -> None:
        self.rt = rt
        self.inst = inst
        self.pos = 0
        self.keys = 0
        self.step_name: str | None = None
        self.state_dirty = False
        self.memory_pos = inst.memory_len
        self.appended: list[Any] = []
        self.entries: list[Any] | None = None
        self.now = rt.clock.now()
        self._rng: random.Random | None = None
        self.state = State(orjson.loads(inst.state_bytes), self)
        self.ctx = Context(self, self.state)

    # -- helpers used by State / Memory --------------------------------------------------

    def where(self) -> str:
        return f"after step {self.step_name!r}" if self.step_name else "before any step"

    def state_changed(self) -> None:
        self.state_dirty = True

    def memory_append(self, entry: Any) -> None:
        data = encode(entry, f"a memory entry (appended {self.where()})")
        n = self.memory_pos
        self.memory_pos += 1
        value = orjson.loads(data)
        if self.entries is not None:
            self.entries.append(value)
        else:
            self.appended.append(value)
        self._pending().append((UPSERT_MEMORY, (self.inst.iid, n, data)))

    def memory_entries(self) -> list[Any]:
        if self.entries is None:
            inst = self.inst
            if inst.memory is None:
                inst.memory = self.rt.load_memory(inst.iid, inst.memory_len)
            self.entries = list(inst.memory) + self.appended
        return self.entries

    def idempotency_key(self) -> str:
        self.keys += 1
        return f"{self.inst.uid}-t{self.inst.turn_no}-k{self.keys}"

    def clock_now(self) -> float:
        return self.rt.clock.now()

    def random(self) -> float:
        if self._rng is None:
            self._rng = deterministic_random(self.inst.uid, self.inst.turn_no)
        return self._rng.random()

    # -- journal -------------------------------------------------------------------------

    def _pending(self) -> list[Op]:
        inst = self.inst
        if inst.pending is None:
            inst.pending = []
        return inst.pending

    def replayed(self, kind: str, name: str) -> bytes | None:
        tail = self.inst.tail
        if self.pos < len(tail):
            seq, k, n, data = tail[self.pos]
            if k != kind or n != name:
                raise NonDeterminism(
                    f"replay of {self.inst.namespace}/{self.inst.agent}/{self.inst.name} diverged at"
                    f" journal record {seq}: the journal holds {k} {n!r} but the handler asked for"
                    f" {kind} {name!r}; the code changed under a live instance — deploy it as a new"
                    " Agent version and migrate live instances with a migration hook"
                )
            self.pos += 1
            return data
        return None

    def record(self, kind: str, name: str, data: bytes) -> Op:
        inst = self.inst
        seq = inst.next_seq
        inst.next_seq = seq + 1
        inst.tail.append((seq, kind, name, data))
        self.pos += 1
        return (
            INSERT_RECORD,
            (inst.iid, seq, kind, name, data, checksum(kind, name, data), self.rt.clock.now()),
        )

    def status_op(self, status: str, **extra: Any) -> Op:
        self.inst.status = status
        sets = ", ".join(f"{k} = ?" for k in extra)
        text = f"UPDATE agent_instances SET status = ?, updated = ?{', ' if sets else ''}{sets} WHERE iid = ?"
        return (text, (status, self.rt.clock.now(), *extra.values(), self.inst.iid))

    async def commit(self, ops: list[Op]) -> None:
        inst = self.inst
        batch: list[Op] = inst.pending or []
        inst.pending = None
        batch.extend(ops)
        if self.state_dirty:
            self.state_dirty = False
            batch.append(
                (
                    "UPDATE agent_instances SET state = ? WHERE iid = ?",
                    (encode(dict(self.state), f"state ({self.where()})"), inst.iid),
                )
            )
        await self.rt.commit(inst, batch)

    async def wait(self) -> None:
        inst = self.inst
        loop = asyncio.get_running_loop()
        inst.waiter = loop.create_future()
        inst.blocked = True
        inst.last_active = self.rt.clock.monotonic()
        try:
            await inst.waiter
        finally:
            inst.blocked = False
            inst.waiter = None
            inst.last_active = self.rt.clock.monotonic()

    # -- operations ----------------------------------------------------------------------

    async def step(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        self.step_name = name
        data = self.replayed("step", name)
        executed = data is None
        if data is None:
            with step_span(name):  # a replayed step did not run again: no span
                data = await self._execute(name, fn, args, kwargs)
            await self.commit([self.record("step", name, data)])
        value = orjson.loads(data)
        if executed:
            STEPS.labels("error" if "error" in value else "ok").inc()
        if "error" in value:
            raise StepFailed(
                f"step {name!r} failed after {value['attempts']} attempt(s): {value['error']}"
            )
        return value["ok"]

    async def _execute(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> bytes:
        d = self.inst.definition
        delay = d.backoff_initial
        attempt = 0
        while True:
            attempt += 1
            await self.rt.until_lease_valid(self.inst)
            try:
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            except (asyncio.CancelledError, NotSerializable, ToolDenied):
                raise
            except Exception as exc:
                if attempt >= d.max_attempts:
                    error = f"{type(exc).__name__}: {exc}"
                    return orjson.dumps({"error": error, "attempts": attempt})
                await asyncio.sleep(delay)
                delay = min(delay * d.backoff_multiplier, d.backoff_max)
                continue
            return encode({"ok": result}, f"the result of step {name!r}")

    async def sleep_until(self, when: float) -> None:
        data = self.replayed("timer", "")
        if data is None:
            await self.commit(
                [
                    self.record("timer", "", orjson.dumps(when)),
                    self.status_op("waiting", wake_at=when),
                ]
            )
        else:
            when = orjson.loads(data)
        fired = self.replayed("fired", "")
        if fired is not None:
            self.now = orjson.loads(fired)
            return
        inst = self.inst
        inst.wake_at = when
        self.rt.timer_set(inst)
        while self.rt.clock.now() < when:
            await self.wait()
        at = self.rt.clock.now()
        inst.wake_at = None
        await self.commit(
            [self.record("fired", "", orjson.dumps(at)), self.status_op("running", wake_at=None)]
        )
        self.now = at

    async def _consume(self, kind: str, record_kind: str, waiting: str) -> Any:
        data = self.replayed(record_kind, "")
        if data is None:
            inst = self.inst
            while True:
                item = inst.take_inbox(kind)
                if item is not None:
                    break
                if inst.status != waiting:
                    await self.commit([self.status_op(waiting)])
                await self.wait()
            inbox_id, payload = item
            at = self.rt.clock.now()
            data = b'{"at":' + repr(at).encode() + b',"payload":' + payload + b"}"
            ops = [
                self.record(record_kind, "", data),
                ("DELETE FROM agent_inbox WHERE id = ?", (inbox_id,)),
            ]
            if inst.status != "running" or kind == "input":
                ops.append(self.status_op("running", prompt=None))
            await self.commit(ops)
        value = orjson.loads(data)
        self.now = value["at"]
        return value["payload"]

    async def receive(self) -> Any:
        return await self._consume("message", "recv", "waiting")

    async def wait_for_input(self, prompt: str) -> Any:
        data = self.replayed("ask", "")
        if data is None:
            await self.commit(
                [
                    self.record("ask", "", encode(prompt, "the prompt")),
                    self.status_op("waiting_input", prompt=prompt),
                ]
            )
            self.inst.status = "waiting_input"
        return await self._consume("input", "input", "waiting_input")

    async def send(self, target: str, payload: Any) -> None:
        data = self.replayed("send", target)
        if data is None:
            body = encode(payload, f"the message to {target!r}")
            inst = self.inst
            parts = target.split("/")
            key = (
                [inst.namespace, inst.agent, *parts]
                if len(parts) == 1
                else [inst.namespace, *parts]
                if len(parts) == 2
                else parts
            )
            row = self.rt.db.instance(*key[:3]) if len(key) == 3 else None
            refused = None if row is None else await self._authorize_message(target, key)
            if row is None:
                error = (
                    f"no agent instance {'/'.join(key)}; create it first"
                    " (POST /agents/{namespace}/{agent}/instances)"
                )
                data = orjson.dumps({"error": error})
                await self.commit([self.record("send", target, data)])
            elif refused is not None:
                data, audit = refused
                await self.commit([self.record("send", target, data), audit])
            else:
                data = orjson.dumps({"to": row.iid})
                at = self.rt.clock.now()
                await self.commit(
                    [
                        self.record("send", target, data),
                        (
                            "INSERT INTO agent_inbox (iid, kind, data, at) VALUES (?, 'message', ?, ?)",
                            (row.iid, body, at),
                        ),
                    ]
                )
                self.rt.nudge(row.iid)
        value = orjson.loads(data)
        if "denied" in value:
            raise Forbidden(value["denied"])
        if "error" in value:
            raise NotFound(value["error"])

    async def _authorize_message(self, target: str, key: list[str]) -> tuple[bytes, Op] | None:
        """None when the message may go; else the journal data and audit row of its denial."""
        hook = self.rt.message_authorizer
        if hook is None:
            return None
        inst = self.inst
        decision = hook(inst.ref(), InstanceRef(key[0], key[1], key[2]))
        if inspect.isawaitable(decision):
            decision = await decision
        assert isinstance(decision, Decision)
        if decision.allow:
            return None
        why = f"message to {'/'.join(key)} denied: {decision.reason}"
        detail = orjson.dumps({"to": "/".join(key), "reason": decision.reason})
        actor = f"instance:{inst.ref()}"
        row = (inst.namespace, inst.agent, inst.name, self.rt.clock.now(), actor, "message.deny")
        return orjson.dumps({"denied": why}), (INSERT_AUDIT, (*row, detail))

    async def call_model(
        self, model: str, messages: list[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> dict[str, Any]:
        d = self.inst.definition
        if d.spec.models and model not in d.spec.models:
            raise Forbidden(
                f"agent {d.namespace}/{d.name} may not call model {model!r}: add it to"
                f" spec.models (now {d.spec.models})"
            )
        body = {"model": model, "messages": messages, **params}
        caller = {"caller": (d.namespace, d.name)}  # the call is the Agent's service account's
        result = await self.step(f"model:{model}", self.rt.call_model, (body,), caller)
        assert isinstance(result, dict)
        return result

    async def call_tool(self, server: str, tool: str, arguments: dict[str, Any]) -> Any:
        inst = self.inst
        name = f"{server}.{tool}"
        self.step_name = f"tool:{name}"
        data = self.replayed("authz", name)
        if data is None:
            data = await self._authorize(server, tool, arguments)
        verdict = orjson.loads(data)
        if verdict.get("approval"):
            answer = await self._consume("approval", "approved", "waiting_approval")
            if not answer.get("allow"):
                raise ToolDenied(
                    f"tool call {name} denied by {answer.get('by') or 'a person'} (approval"
                    f" {verdict['approval']}): {answer.get('reason') or 'no reason given'}"
                )
        elif not verdict["allow"]:
            raise ToolDenied(f"tool call {name} denied: {verdict['reason']}")
        spec = inst.definition.tools[server]
        heard = {"on_network": self._network_audit(server, tool)}
        return await self.step(
            f"tool:{name}",
            self.rt.call_tool,
            (spec, tool, arguments, inst.definition.folder),
            heard if spec.transport == "process" else {},
        )

    def _network_audit(self, server: str, tool: str) -> Callable[[NetworkEvent], None]:
        """Audits each host a process tool asks for (``network.allow`` or ``network.deny``),
        committed with the step's record (or the next commit of the instance)."""
        inst = self.inst

        def heard(event: NetworkEvent) -> None:
            action = "network.allow" if event.allowed else "network.deny"
            detail = {"server": server, "tool": tool, "host": event.target, "reason": event.reason}
            now = self.rt.clock.now()
            actor = f"instance:{inst.ref()}"
            row = (inst.namespace, inst.agent, inst.name, now, actor, action, orjson.dumps(detail))
            self._pending().append((INSERT_AUDIT, row))

        return heard

    async def _authorize(self, server: str, tool: str, arguments: dict[str, Any]) -> bytes:
        """Ask the hook, and journal its answer with the audit row (and the approval request
        when it asks for one) in one commit; returns the journaled answer."""
        inst = self.inst
        name = f"{server}.{tool}"
        if server not in inst.definition.tools:
            raise NotFound(
                f"agent {inst.namespace}/{inst.agent} has no tool server {server!r}; declare it"
                f" in spec.tools (known: {sorted(inst.definition.tools) or 'none'})"
            )
        decision = self.rt.authorizer(inst.ref(), server, tool, arguments)
        if inspect.isawaitable(decision):
            decision = await decision
        assert isinstance(decision, Decision)
        verdict: dict[str, Any] = {"allow": decision.allow, "reason": decision.reason}
        try:
            shown: Any = orjson.loads(encode(arguments, f"the arguments of tool {name!r}"))
        except NotSerializable as exc:
            shown = f"(not JSON: {exc.message})"
        detail = {"server": server, "tool": tool, "arguments": shown, "reason": decision.reason}
        if decision.policy_version:
            detail["policyVersion"] = decision.policy_version
        ops: list[Op] = []
        action = "tool.allow" if decision.allow else "tool.deny"
        if decision.approval and not decision.allow:
            action, verdict["approval"] = "tool.approval", uuid.uuid4().hex[:12]
            detail["approval"] = verdict["approval"]
            ops.append(self._approval_op(verdict["approval"], server, tool, shown, decision))
            ops.append(self.status_op("waiting_approval", prompt=f"approve {name}? {detail}"))
        now = self.rt.clock.now()
        actor = f"instance:{inst.ref()}"
        row = (inst.namespace, inst.agent, inst.name, now, actor, action, orjson.dumps(detail))
        audit = (INSERT_AUDIT, row)
        data = orjson.dumps(verdict)
        await self.commit([self.record("authz", name, data), audit, *ops])
        return data

    def _approval_op(
        self, approval: str, server: str, tool: str, arguments: Any, decision: Decision
    ) -> Op:
        inst = self.inst
        return (
            "INSERT INTO agent_approvals (id, iid, namespace, agent, name, server, tool,"
            " arguments, reason, requested) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                approval,
                inst.iid,
                inst.namespace,
                inst.agent,
                inst.name,
                server,
                tool,
                orjson.dumps(arguments),
                decision.reason,
                self.rt.clock.now(),
            ),
        )


def load_definition(
    namespace: str, name: str, version: str, spec: AgentSpec, code: AgentCode
) -> Definition:
    """Import the entrypoint of ``spec`` from where ``code`` allows, and read its settings."""
    handler = code.load(spec)
    retry = spec.retry
    return Definition(
        namespace=namespace,
        name=name,
        version=version,
        spec=spec,
        handler=handler,
        is_class=inspect.isclass(handler),
        max_attempts=retry.max_attempts,
        backoff_initial=parse_duration(retry.backoff.initial),
        backoff_max=parse_duration(retry.backoff.max),
        backoff_multiplier=retry.backoff.multiplier,
        idle_timeout=parse_duration(spec.idle_timeout),
        tools={t.name: t for t in spec.tools},
        folder=code.folder(spec),
    )
