"""The agent runtime: runs instances of Agents durably, and the operations on instances.

:class:`Runtime` hosts instances in one asyncio event loop: it activates them when they have work
(a message, an input, a due timer, a turn in progress after a restart), runs their turns, and
passivates them after the Agent's ``idleTimeout`` or when more than ``max_resident`` are in memory.
Passivation keeps nothing in memory; reactivation reads the snapshot and the current turn's journal
tail, so its cost does not grow with history. :class:`Instances` is the operations surface
(create, send, input, cancel, get, list, journal, audit) that works from any process: it writes to
the runtime's tables (each write fsync'd before it returns) and the runtime that owns the
instance's shard picks the work up (at once in the same process, within ``poll_interval`` in
another). Instances are sharded by a hash of their key into :data:`SHARDS` shards; a runtime runs
only the shards its ``owns`` predicate accepts (all by default), or, given ``leases``, the shards
it holds leases for in the object store, every commit fenced by the lease's token (see
:mod:`modelplane.agents._shards`).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from modelplane.agents._approvals import Approvals
from modelplane.agents._execution import (
    INSERT_AUDIT,
    TERMINAL,
    UPSERT_SNAPSHOT,
    Definition,
    Instance,
    Turn,
    load_definition,
)
from modelplane.agents._execution import Clock as Clock
from modelplane.agents._journal import (
    ROW_COLUMNS,
    Database,
    GroupCommit,
    Op,
    Row,
    _row,
    checksum,
)
from modelplane.agents._loader import AgentCode
from modelplane.agents._metrics import COMMIT_TIME, INSTANCES, RESUME_TIME
from modelplane.agents._shards import SHARDS as SHARDS
from modelplane.agents._shards import Change, ShardLeases
from modelplane.agents._shards import shard_of as shard_of
from modelplane.agents._tools import ToolServers, call_tool
from modelplane.agents._tracing import trace_headers, turn_span
from modelplane.agents.authz import Authorizer, MessageAuthorizer, allow_all
from modelplane.agents.context import encode
from modelplane.agents.errors import (
    Fenced,
    NonDeterminism,
    NotSerializable,
    StepFailed,
    Superseded,
)
from modelplane.api import AgentSpec, Tool
from modelplane.api.errors import AlreadyExists, BadRequest, ModelplaneError, NotFound
from modelplane.egress import EgressRules
from modelplane.sandbox import NetworkEvent

logger = logging.getLogger("modelplane.agents")

STATUSES = (
    "running",
    "waiting",
    "waiting_input",
    "waiting_approval",
    "idle",
    "completed",
    "failed",
    "cancelled",
    "corrupt",
)


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock tests move by hand: :meth:`advance` three days and due timers fire at once."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds
        for listener in list(self._listeners):
            listener()

    def listen(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)


_LOCAL: dict[str, Runtime] = {}
_LOCAL_LOCK = threading.Lock()


def _info(row: Row) -> dict[str, Any]:
    return {
        "namespace": row.namespace,
        "agent": row.agent,
        "id": row.name,
        "uid": row.uid,
        "version": row.version,
        "status": row.status,
        "prompt": row.prompt,
        "wakeAt": row.wake_at,
        "result": orjson.loads(row.result) if row.result is not None else None,
        "error": row.error,
        "created": row.created,
        "updated": row.updated,
        "finished": row.finished,
    }


class Instances:
    """Operations on instances, usable from any process sharing the runtime's database.

    Every write also leaves a row in ``agent_inbox`` (a creation leaves a ``start`` signal): the
    runtime that owns the instance's shard, in this process or another, polls the inbox.
    """

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock: Clock = clock or SystemClock()
        #: tool calls waiting for a person's decision (:mod:`modelplane.agents._approvals`)
        self.approvals = Approvals(db, self.clock, self._nudge)

    def _nudge(self, iid: int) -> None:
        with _LOCAL_LOCK:
            rt = _LOCAL.get(self.db.url)
        if rt is not None:
            rt.nudge(iid)

    def _row(self, namespace: str, agent: str, name: str) -> Row:
        row = self.db.instance(namespace, agent, name)
        if row is None:
            raise NotFound(
                f"agent instance {namespace}/{agent}/{name} not found; list them with"
                f" `modelplane agents list {agent} -n {namespace}`",
                details={"kind": "AgentInstance", "name": name},
            )
        return row

    def _audit(self, row: Row, actor: str, action: str, detail: Any) -> tuple[str, Any]:
        return (
            INSERT_AUDIT,
            (
                row.namespace,
                row.agent,
                row.name,
                self.clock.now(),
                actor,
                action,
                orjson.dumps(detail),
            ),
        )

    def create(
        self,
        namespace: str,
        agent: str,
        name: str | None = None,
        input: Any = None,
        *,
        version: str = "1",
        actor: str = "anonymous",
    ) -> dict[str, Any]:
        """Register a new instance (durably) and hand it to its runtime; returns its info."""
        name = name or uuid.uuid4().hex[:12]
        data = encode({"at": self.clock.now(), "payload": input}, "the input")
        now = self.clock.now()
        key = (namespace, agent, name)
        iid_sql = "(SELECT iid FROM agent_instances WHERE namespace = ? AND agent = ? AND name = ?)"
        ops = [
            (
                "INSERT INTO agent_instances (namespace, agent, name, uid, version, shard, status,"
                " created, updated, state) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                (*key, uuid.uuid4().hex, version, shard_of(*key), now, now, b"{}"),
            ),
            (
                f"INSERT INTO agent_journal (iid, seq, kind, name, data, crc, at) VALUES ({iid_sql},"
                " 1, 'start', '', ?, ?, ?)",
                (*key, data, checksum("start", "", data), now),
            ),
            (
                "INSERT INTO agent_snapshots (iid, turn, seq, memory_len, state, crc) VALUES"
                f" ({iid_sql}, 0, 0, 0, ?, ?)",
                (*key, b"{}", checksum("snapshot", "", b"{}")),
            ),
            (
                INSERT_AUDIT,
                (*key, now, actor, "create", orjson.dumps({"version": version})),
            ),
            # the runtime that owns the shard may be another process: it polls the inbox
            (
                f"INSERT INTO agent_inbox (iid, kind, data, at) VALUES ({iid_sql}, 'start', ?, ?)",
                (*key, b"null", now),
            ),
        ]
        try:
            self.db.execute_now(ops)
        except Exception as exc:
            if "unique" in str(exc).lower() or "duplicate" in str(exc).lower():
                raise AlreadyExists(
                    f"agent instance {namespace}/{agent}/{name} already exists; choose another id"
                ) from None
            raise
        row = self._row(*key)
        self._nudge(row.iid)
        return _info(row)

    def _enqueue(self, row: Row, kind: str, payload: Any, actor: str) -> None:
        body = encode(payload, f"the {kind}")
        self.db.execute_now(
            [
                (
                    "INSERT INTO agent_inbox (iid, kind, data, at) VALUES (?, ?, ?, ?)",
                    (row.iid, kind, body, self.clock.now()),
                ),
                self._audit(row, actor, kind, {"payload": payload} if kind != "cancel" else {}),
            ]
        )
        self._nudge(row.iid)

    def send(
        self, namespace: str, agent: str, name: str, payload: Any, *, actor: str = "anonymous"
    ) -> None:
        """Queue a message (consumed by ``ctx.receive()`` or a class handler's ``on_message``)."""
        row = self._unfinished(namespace, agent, name, "send a message to")
        self._enqueue(row, "message", payload, actor)

    def give_input(
        self, namespace: str, agent: str, name: str, value: Any, *, actor: str = "anonymous"
    ) -> None:
        """Answer the instance's ``wait_for_input`` prompt."""
        row = self._unfinished(namespace, agent, name, "give input to")
        self._enqueue(row, "input", value, actor)

    def cancel(self, namespace: str, agent: str, name: str, *, actor: str = "anonymous") -> None:
        """Ask the owning runtime to stop the instance (status ``cancelled``)."""
        row = self._row(namespace, agent, name)
        if row.status in TERMINAL:
            return
        self._enqueue(row, "cancel", None, actor)

    def _unfinished(self, namespace: str, agent: str, name: str, what: str) -> Row:
        """The instance's row; a 400 saying it cannot ``what`` once the instance has finished."""
        row = self._row(namespace, agent, name)
        if row.status in TERMINAL:
            raise BadRequest(
                f"cannot {what} agent instance {row.namespace}/{row.agent}/{row.name}: it is"
                f" {row.status}; create a new instance"
            )
        return row

    def get(self, namespace: str, agent: str, name: str) -> dict[str, Any]:
        """Status, result or error, prompt, and the latest committed ``state``."""
        row = self._row(namespace, agent, name)
        info = _info(row)
        info["state"] = orjson.loads(row.state) if row.state else {}
        info["memoryLength"] = (
            self.db.one("SELECT COUNT(*) FROM agent_memory WHERE iid = ?", (row.iid,)) or (0,)
        )[0]
        return info

    def list(
        self,
        namespace: str,
        agent: str,
        *,
        status: str | None = None,
        limit: int = 100,
        continue_token: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Instances ordered by id, ``limit`` per page; returns (items, token of the next page)."""
        if status is not None and status not in STATUSES:
            raise BadRequest(f"status {status!r} is not one of {', '.join(STATUSES)}")
        if limit < 1 or limit > 1000:
            raise BadRequest("limit must be between 1 and 1000")
        where = "namespace = ? AND agent = ? AND name > ?"
        params: list[Any] = [namespace, agent, continue_token or ""]
        if status:
            where += " AND status = ?"
            params.append(status)
        rows = self.db.query(
            f"SELECT {ROW_COLUMNS} FROM agent_instances WHERE {where} ORDER BY name LIMIT ?",
            (*params, limit + 1),
        )
        items = [_info(_row(r)) for r in rows[:limit]]
        token = items[-1]["id"] if len(rows) > limit else None
        return items, token

    def journal(
        self, namespace: str, agent: str, name: str, *, after: int = 0, limit: int = 1000
    ) -> builtins.list[dict[str, Any]]:
        """Journal records after ``after`` (those not compacted behind a snapshot)."""
        row = self._row(namespace, agent, name)
        rows = self.db.query(
            "SELECT seq, kind, name, data, crc, at FROM agent_journal WHERE iid = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (row.iid, after, limit),
        )
        out = []
        for seq, kind, rname, data, crc, at in rows:
            data = bytes(data)
            ok = checksum(kind, rname, data) == crc
            try:
                value = orjson.loads(data) if ok else None
            except orjson.JSONDecodeError:
                value, ok = None, False
            out.append(
                {"seq": seq, "kind": kind, "name": rname, "data": value, "at": at, "valid": ok}
            )
        return out

    def audit(self, namespace: str, agent: str, name: str) -> builtins.list[dict[str, Any]]:
        """Who did what and when: API calls and tool-call decisions, oldest first."""
        self._row(namespace, agent, name)
        rows = self.db.query(
            "SELECT at, actor, action, detail FROM agent_audit WHERE namespace = ? AND agent = ?"
            " AND name = ? ORDER BY id",
            (namespace, agent, name),
        )
        return [
            {"at": at, "actor": actor, "action": action, "detail": orjson.loads(bytes(detail))}
            for at, actor, action, detail in rows
        ]


class Runtime:
    """Hosts instances in the running event loop. Use ``async with Runtime(url) as rt``.

    ``owns(shard) -> bool`` selects the shards this runtime runs; ``leases`` instead runs the
    shards this process holds leases for (taken before :meth:`start` returns, renewed and
    rebalanced every ``leases.interval``, released by :meth:`stop`), each instance's commits fenced
    by its shard's token: a commit refused as stale stops the instance here (it runs where its
    shard went) without failing it. ``max_resident`` bounds the
    instances kept in memory (the least recently active idle ones are passivated first);
    ``compact_journal`` deletes a class handler's turn records once the turn's snapshot is durable;
    ``finished_ttl`` (seconds) deletes finished instances that long after they finished.
    """

    def __init__(
        self,
        database_url: str,
        *,
        clock: Clock | None = None,
        authorizer: Authorizer = allow_all,
        message_authorizer: MessageAuthorizer | None = None,
        model_base_url: str = "http://127.0.0.1:8470",
        model_api_key: str | None = None,
        model_token: Callable[[str, str], str] | None = None,
        owns: Callable[[int], bool] | None = None,
        leases: ShardLeases | None = None,
        max_resident: int = 200_000,
        compact_journal: bool = True,
        finished_ttl: float | None = None,
        poll_interval: float = 0.05,
        code: AgentCode | None = None,
        tool_servers: ToolServers | None = None,
        egress: EgressRules | None = None,
    ) -> None:
        self.db = Database(database_url)
        #: which hosts streamable-http tools may be reached on (default: the egress defaults,
        #: loopback, link-local and metadata addresses refused)
        self.egress = egress if egress is not None else EgressRules()
        #: where agent code may come from (default: any installed module, no bundles)
        self.code = code if code is not None else AgentCode()
        #: the operator's ToolServers by name: what a stdio tool starts
        self.tool_servers: ToolServers = tool_servers or _no_tool_servers
        self.clock: Clock = clock or SystemClock()
        self.instances = Instances(self.db, self.clock)
        self.authorizer = authorizer
        #: the hook messages between instances pass (None: every message is allowed)
        self.message_authorizer = message_authorizer
        self.model_base_url = model_base_url.rstrip("/")
        self.model_api_key = model_api_key
        #: ``token(namespace, agent)``: the bearer token of an Agent's service account, which
        #: its model calls send (None: they send ``model_api_key``)
        self.model_token = model_token
        self.leases = leases
        #: shard -> the fencing token this runtime claimed it with (with ``leases``)
        self.fences: dict[int, int] = {}
        self.owns: Callable[[int], bool] = (
            self.fences.__contains__ if leases is not None else owns or (lambda shard: True)
        )
        self.max_resident = max_resident
        self.compact_journal = compact_journal
        self.finished_ttl = finished_ttl
        self.poll_interval = poll_interval
        self.resident: dict[int, Instance] = {}
        INSTANCES.add(self)  # /metrics counts its resident instances by status
        self._definitions: dict[tuple[str, str], Definition] = {}
        self._sleepers: dict[int, Instance] = {}
        self._inbox_seen = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._kick: asyncio.Event | None = None
        self.writer: GroupCommit = None  # type: ignore[assignment]
        self._http: Any = None
        if isinstance(self.clock, ManualClock):
            self.clock.listen(self._clock_moved)

    # -- definitions ---------------------------------------------------------------------

    def define(
        self, namespace: str, name: str, spec: AgentSpec | str, version: str = "1"
    ) -> Definition:
        """Register (or replace with a new version) the Agent ``namespace/name``."""
        if isinstance(spec, str):
            spec = AgentSpec.model_validate({"entrypoint": spec})
        definition = load_definition(namespace, name, version, spec, self.code)
        self._definitions[(namespace, name)] = definition
        if self._loop is not None and _running_loop() is self._loop:
            self.recover(namespace, name)
        return definition

    def definition(self, namespace: str, name: str) -> Definition | None:
        """The Agent ``namespace/name`` as defined here (its ``version``, ``spec``), or None."""
        return self._definitions.get((namespace, name))

    def undefine(self, namespace: str, name: str) -> None:
        self._definitions.pop((namespace, name), None)

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._kick = asyncio.Event()
        self.writer = GroupCommit(self.db)
        with _LOCAL_LOCK:
            _LOCAL[self.db.url] = self
        if self.leases is not None:
            # before recovering: a runtime alone on its database owns every shard at once
            await asyncio.to_thread(self.leases.reap)
            await self._take_shards()
        self.recover()
        self._tasks = [asyncio.create_task(self._pump(), name="agent-runtime-pump")]
        if self.leases is not None:
            self._tasks.append(asyncio.create_task(self._hold_shards(), name="agent-shard-leases"))

    async def stop(self) -> None:
        with _LOCAL_LOCK:
            if _LOCAL.get(self.db.url) is self:
                del _LOCAL[self.db.url]
        for task in self._tasks:
            task.cancel()
        for inst in list(self.resident.values()):
            if inst.task is not None:
                inst.task.cancel()
        pending = [t for t in self._tasks] + [
            i.task for i in self.resident.values() if i.task is not None
        ]
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)
        self.resident.clear()
        self.writer.close()
        if self.leases is not None:
            # after the writer drained: what was committed was committed under the leases
            await asyncio.to_thread(self.leases.release_all)
            self.fences.clear()
        if self._http is not None:
            await self._http.aclose()
        self.db.close()

    # -- shard leases and fencing ---------------------------------------------------------

    async def _hold_shards(self) -> None:
        assert self.leases is not None
        while True:
            await asyncio.sleep(self.leases.interval)  # the renewal period, not a synchronisation
            try:
                await self._take_shards()
            except asyncio.CancelledError:
                raise
            except Exception:  # a store hiccup: leases lapse only after a whole duration
                logger.exception("agent runtime: renewing shard leases")

    async def _take_shards(self) -> None:
        """One lease tick, then run what the leases say (:meth:`_follow_leases`) and hand back
        the surplus once its instances stopped."""
        assert self.leases is not None
        try:
            change: Change = await asyncio.to_thread(self.leases.tick)
        finally:
            # level-triggered: what a failed tick changed is followed now, the rest next time
            await self._follow_leases()
        if change.surplus:
            await asyncio.to_thread(self.leases.release, change.surplus)

    async def _follow_leases(self) -> None:
        """Stop running the shards no longer held under the token they were claimed with; claim
        the newly held ones with their tokens, then resume their instances."""
        assert self.leases is not None
        held = await asyncio.to_thread(self.leases.held)
        gone = {s for s, token in self.fences.items() if held.get(s) != token}
        for shard in gone:
            del self.fences[shard]
        if gone:
            await self.drop_shards(gone)
        fresh = {s: token for s, token in held.items() if s not in self.fences}
        if fresh:
            try:
                claimed = await asyncio.to_thread(self.db.claim_shards, fresh)
            except Exception:
                # not claimed, not run: hand them back to be taken again
                await asyncio.to_thread(self.leases.forget, set(fresh))
                raise
            stale = set(fresh) - claimed
            reset = await asyncio.to_thread(self.leases.current, stale) if stale else set()
            if reset:
                # the store still gives us these leases under these tokens: its tokens started
                # again below the recorded ones (a reset store), not a newer holder's
                logger.warning(
                    "agent runtime %s: shards %s had higher fencing tokens than their leases (was"
                    " the object store reset without the agent tables?); claiming them again",
                    self.leases.holder,
                    sorted(reset),
                )
                claimed |= await asyncio.to_thread(
                    self.db.claim_shards, {s: fresh[s] for s in reset}, force=True
                )
                stale -= claimed
            if stale:
                logger.warning(
                    "agent runtime %s: shards %s were claimed by a newer holder; handing them back",
                    self.leases.holder,
                    sorted(stale),
                )
                await asyncio.to_thread(self.leases.forget, stale)
            for shard in claimed:
                self.fences[shard] = fresh[shard]
            if claimed:
                self.recover()
        if gone or fresh:
            logger.info(
                "agent runtime %s: shards %s", self.leases.holder, sorted(self.fences) or "none"
            )

    async def until_lease_valid(self, inst: Instance) -> None:
        """Wait while this process cannot be sure it still holds ``inst``'s shard (its lease was
        not renewed for most of a duration: a partition, a stall). A step starts only under a
        lease known valid, so a worker cut off from the store does not run steps another worker
        is about to run; once the lease is renewed the step goes on, and if the shard was lost
        the instance is dropped (:meth:`drop_shards` cancels this wait)."""
        leases, fence = self.leases, inst.fence
        if leases is None or fence is None:
            return
        while leases.valid_for(fence[0]) <= 0:
            await asyncio.sleep(0.05)  # polling the lease tick's renewal, not a synchronisation

    async def commit(self, inst: Instance, ops: Sequence[Op]) -> None:
        """Write ``ops`` of ``inst`` in one durable transaction, fenced by its shard's token.

        Raises :class:`Superseded` (after forgetting the instance here) when the shard moved to
        another runtime: the instance runs there, from the journal."""
        began = time.perf_counter()
        try:
            await self.writer.submit(ops, inst.fence)
            COMMIT_TIME.observe(time.perf_counter() - began)
        except Fenced as exc:
            self._superseded(inst, exc)
            raise Superseded(str(exc)) from None

    def _superseded(self, inst: Instance, exc: Fenced) -> None:
        logger.info(
            "agent instance %s/%s/%s stops here: its shard %d moved",
            inst.namespace,
            inst.agent,
            inst.name,
            exc.shard,
        )
        if self.fences.get(exc.shard) == exc.token:
            # the lease tick will say so too; stop taking work for the shard until then
            self.fences.pop(exc.shard, None)
        if self.resident.get(inst.iid) is inst:
            del self.resident[inst.iid]
        self._sleepers.pop(inst.iid, None)

    def recover(self, namespace: str | None = None, agent: str | None = None) -> None:
        """Activate every owned instance with a turn in progress (after a restart, a takeover or
        the definition of its Agent), and rescan the inbox."""
        self._inbox_seen = 0
        where = "status = 'running'"
        params: tuple[str | None, ...] = ()
        if namespace is not None:
            where, params = where + " AND namespace = ? AND agent = ?", (namespace, agent)
        rows = self.db.query(f"SELECT iid, shard FROM agent_instances WHERE {where}", params)
        for iid, shard in rows:
            if self.owns(shard):
                self.activate(iid)

    # -- signals from elsewhere ----------------------------------------------------------

    def nudge(self, iid: int) -> None:
        """Thread-safe: instance ``iid`` has new work (a message, input, cancellation)."""
        loop = self._loop
        if loop is None:
            return
        try:
            if _running_loop() is loop:
                self._nudged(iid)
            else:
                loop.call_soon_threadsafe(self._nudged, iid)
        except RuntimeError:
            pass

    def _clock_moved(self) -> None:
        if self._loop is not None and self._kick is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._kick.set)

    def _nudged(self, iid: int) -> None:
        inst = self.resident.get(iid)
        if inst is None:
            self.activate(iid)
        else:
            self._refresh_inbox(inst)

    # -- activation and passivation ------------------------------------------------------

    def activate(self, iid: int) -> Instance | None:
        """Bring instance ``iid`` into memory (if it is owned, live and its Agent is known)."""
        inst = self.resident.get(iid)
        if inst is not None:
            return inst
        began = time.perf_counter()
        inst = self._load(iid)
        if inst is not None:
            RESUME_TIME.observe(time.perf_counter() - began)
        return inst

    def _load(self, iid: int) -> Instance | None:
        row = self.db.instance_by_iid(iid)
        if row is None or row.status in TERMINAL or not self.owns(row.shard):
            return None
        definition = self._definitions.get((row.namespace, row.agent))
        if definition is None:
            return None
        snap = self.db.one(
            "SELECT turn, seq, memory_len, state, crc FROM agent_snapshots WHERE iid = ?", (iid,)
        )
        records = self.db.query(
            "SELECT seq, kind, name, data, crc FROM agent_journal WHERE iid = ? AND seq > ?"
            " ORDER BY seq",
            (iid, snap[1] if snap else 0),
        )
        tail = []
        problem = None
        if snap is None or checksum("snapshot", "", bytes(snap[3])) != snap[4]:
            problem = "its snapshot fails its checksum"
        for seq, kind, name, data, crc in records:
            data = bytes(data)
            if checksum(kind, name, data) != crc:
                problem = f"journal record {seq} ({kind} {name!r}) fails its checksum"
                break
            tail.append((seq, kind, name, data))
        if problem is not None:
            self._mark_corrupt(row, problem)
            return None
        assert snap is not None
        inst = Instance(
            iid,
            row.namespace,
            row.agent,
            row.name,
            row.uid,
            row.version,
            row.shard,
            row.status,
            definition,
            snap[0],
            snap[1],
            snap[2],
            bytes(snap[3]),
            tail,
            row.wake_at,
        )
        if self.leases is not None:
            inst.fence = (row.shard, self.fences[row.shard])
        inst.last_active = self.clock.monotonic()
        self.resident[iid] = inst
        self._refresh_inbox(inst)
        if not tail and row.version != definition.version and not self._migrate(inst, definition):
            return None
        self._schedule(inst)
        return inst

    def _migrate(self, inst: Instance, definition: Definition) -> bool:
        """Bring an idle instance to ``definition``'s version; False if its shard moved."""
        hook = getattr(definition.handler, "migrate", None)
        state = orjson.loads(inst.state_bytes)
        if hook is not None:
            state = hook(state, inst.version, definition.version)
        data = encode(state, f"the state returned by {definition.spec.entrypoint}.migrate")
        try:
            self.writer.submit_sync(self._migration(inst, definition, data), fence=inst.fence)
        except Fenced as exc:
            self._superseded(inst, exc)
            return False
        inst.state_bytes = data
        inst.version = definition.version
        return True

    def _migration(self, inst: Instance, definition: Definition, data: bytes) -> list[Op]:
        return [
            (
                "UPDATE agent_instances SET version = ?, state = ? WHERE iid = ?",
                (definition.version, data, inst.iid),
            ),
            (
                UPSERT_SNAPSHOT,
                (
                    inst.iid,
                    inst.turn_no,
                    inst.snap_seq,
                    inst.memory_len,
                    data,
                    checksum("snapshot", "", data),
                ),
            ),
        ]

    def _mark_corrupt(self, row: Row, problem: str) -> None:
        message = (
            f"agent instance {row.namespace}/{row.agent}/{row.name} is corrupt: {problem}; it was"
            " stopped (other instances are unaffected). Inspect it with `modelplane agents journal`"
            " and restore the database from a backup, or cancel the instance"
        )
        logger.error(message)
        self.db.execute_now(
            [
                (
                    "UPDATE agent_instances SET status = 'corrupt', error = ?, updated = ? WHERE iid = ?",
                    (message, self.clock.now(), row.iid),
                )
            ]
        )

    def passivate(self, iid: int) -> bool:
        """Drop an instance from memory (its durable state stays); False if it is mid-work."""
        inst = self.resident.get(iid)
        if inst is None:
            return True
        if inst.task is not None and not inst.blocked:
            return False
        if inst.task is not None:
            inst.task.cancel()
        self._sleepers.pop(iid, None)
        del self.resident[iid]
        return True

    async def drop_shards(self, shards: set[int]) -> None:
        """Stop running the instances of ``shards`` (their leases went elsewhere): cancel their
        turns, wait for them to unwind, and forget them (the journal keeps everything)."""
        gone = [i for i in self.resident.values() if i.shard in shards]
        tasks = [i.task for i in gone if i.task is not None]
        for inst in gone:
            self._sleepers.pop(inst.iid, None)
            self.resident.pop(inst.iid, None)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _refresh_inbox(self, inst: Instance) -> None:
        rows = self.db.query(
            "SELECT id, kind, data FROM agent_inbox WHERE iid = ? AND id > ? ORDER BY id",
            (inst.iid, inst.inbox_seen),
        )
        if rows:
            if inst.inbox is None:
                inst.inbox = deque()
            for id_, kind, data in rows:
                if kind == "start":
                    # only the signal that the instance was created (Instances.create);
                    # it leaves the inbox with the instance's next commit
                    if inst.pending is None:
                        inst.pending = []
                    inst.pending.append(("DELETE FROM agent_inbox WHERE id = ?", (id_,)))
                    continue
                inst.inbox.append((id_, kind, bytes(data)))
            inst.inbox_seen = rows[-1][0]
            if inst.task is not None and any(kind == "cancel" for _, kind, _ in rows):
                old = inst.task
                old.cancel()
                inst.task = asyncio.get_running_loop().create_task(self._cancel_after(inst, old))
                return
            inst.wake()
            self._schedule(inst)

    def _schedule(self, inst: Instance) -> None:
        """Start the instance's driver if it has something to do and none runs."""
        if inst.task is not None:
            return
        has_cancel = inst.inbox is not None and any(k == "cancel" for _, k, _ in inst.inbox)
        has_message = inst.inbox is not None and any(k == "message" for _, k, _ in inst.inbox)
        if has_cancel or inst.tail or (inst.definition.is_class and has_message):
            inst.task = asyncio.get_running_loop().create_task(self._drive(inst))

    async def _drive(self, inst: Instance) -> None:
        try:
            while True:
                if inst.inbox is not None and any(k == "cancel" for _, k, _ in inst.inbox):
                    await self._cancel(inst)
                    return
                if inst.tail or (
                    inst.definition.is_class and any(k == "message" for _, k, _ in inst.inbox or ())
                ):
                    pass
                else:
                    return
                await self._run_turn(inst)
                if inst.status in TERMINAL:
                    self.resident.pop(inst.iid, None)
                    return
        except asyncio.CancelledError:
            raise
        except Superseded:
            return  # its shard moved: it runs there now (see commit)
        except Exception:
            logger.exception("agent instance %s/%s/%s", inst.namespace, inst.agent, inst.name)
            self.resident.pop(inst.iid, None)
        finally:
            inst.task = None
            inst.last_active = self.clock.monotonic()

    async def _cancel_after(self, inst: Instance, old: asyncio.Task[None]) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await old
        with contextlib.suppress(Superseded):
            await self._cancel(inst)
        inst.task = None

    async def _cancel(self, inst: Instance) -> None:
        ids = [i for i, k, _ in inst.inbox or () if k == "cancel"]
        await self.commit(
            inst,
            [
                (
                    "UPDATE agent_instances SET status = 'cancelled', finished = ?, updated = ?,"
                    " wake_at = NULL, prompt = NULL WHERE iid = ?",
                    (self.clock.now(), self.clock.now(), inst.iid),
                ),
                *[("DELETE FROM agent_inbox WHERE id = ?", (i,)) for i in ids],
            ],
        )
        inst.status = "cancelled"
        self.resident.pop(inst.iid, None)
        self._sleepers.pop(inst.iid, None)

    async def _run_turn(self, inst: Instance) -> None:
        d = inst.definition
        attempt = 0
        delay = d.backoff_initial
        while True:
            attempt += 1
            with turn_span(inst.namespace, inst.agent, inst.name):
                retry = await self._turn_attempt(inst, attempt)
            if not retry:
                return
            await asyncio.sleep(delay)
            delay = min(delay * d.backoff_multiplier, d.backoff_max)

    async def _turn_attempt(self, inst: Instance, attempt: int) -> bool:
        """Run the turn once: False when it ended (done or failed for good), True to retry."""
        d = inst.definition
        turn = Turn(self, inst)
        ctx = turn.ctx
        try:
            result: Any = None
            # a turn begins with its start record (the first turn) or a message it receives
            first = inst.tail[0][1] if inst.tail else None
            start = turn.replayed("start", "") if first == "start" else None
            if start is not None:
                value = orjson.loads(start)
                turn.now = value["at"]
                if d.is_class:
                    handler = d.handler()
                    if hasattr(handler, "start"):
                        result = await handler.start(ctx, value["payload"])
                else:
                    result = await d.handler(ctx, value["payload"])
            else:
                message = await turn.receive()
                result = await d.handler().on_message(ctx, message)
            await self._end_turn(turn, result)
            return False
        except asyncio.CancelledError:
            raise
        except (StepFailed, NotSerializable, NonDeterminism) as exc:
            await self._fail(turn, exc)
            return False
        except Exception as exc:
            if isinstance(exc, ModelplaneError) and exc.code in (403, 404):
                await self._fail(turn, exc)
                return False
            if attempt >= d.max_attempts:
                await self._fail(turn, exc, attempts=attempt)
                return False
            return True

    async def _end_turn(self, turn: Turn, result: Any) -> None:
        inst = turn.inst
        now = self.clock.now()
        state = encode(dict(turn.state), "state at the end of the turn")
        turn.state_dirty = False
        if not inst.definition.is_class:
            payload = encode(result, "the handler's return value")
            await turn.commit(
                [
                    (
                        "UPDATE agent_instances SET status = 'completed', result = ?, state = ?,"
                        " finished = ?, updated = ?, wake_at = NULL WHERE iid = ?",
                        (payload, state, now, now, inst.iid),
                    )
                ]
            )
            inst.status = "completed"
            return
        last = inst.next_seq - 1
        ops: list[tuple[str, Any]] = [
            (
                "UPDATE agent_instances SET status = 'idle', state = ?, result = ?, updated = ?,"
                " prompt = NULL WHERE iid = ?",
                (state, encode(result, "the handler's return value"), now, inst.iid),
            ),
            (
                UPSERT_SNAPSHOT,
                (
                    inst.iid,
                    inst.turn_no + 1,
                    last,
                    turn.memory_pos,
                    state,
                    checksum("snapshot", "", state),
                ),
            ),
        ]
        if self.compact_journal:
            ops.append(("DELETE FROM agent_journal WHERE iid = ? AND seq <= ?", (inst.iid, last)))
        await turn.commit(ops)
        inst.status = "idle"
        inst.turn_no += 1
        inst.snap_seq = last
        inst.state_bytes = state
        inst.tail = []
        if turn.entries is not None:
            inst.memory = turn.entries
        elif inst.memory is not None:
            inst.memory.extend(turn.appended)
        inst.memory_len = turn.memory_pos

    async def _fail(self, turn: Turn, exc: BaseException, attempts: int | None = None) -> None:
        inst = turn.inst
        error = str(exc) if isinstance(exc, ModelplaneError) else f"{type(exc).__name__}: {exc}"
        if attempts is not None:
            error = f"the handler raised on {attempts} attempt(s); last error: {error}"
        now = self.clock.now()
        inst.pending = None
        await self.commit(
            inst,
            [
                (
                    "UPDATE agent_instances SET status = 'failed', error = ?, finished = ?,"
                    " updated = ?, wake_at = NULL WHERE iid = ?",
                    (error, now, now, inst.iid),
                )
            ],
        )
        inst.status = "failed"

    # -- timers, inbox polling, idleness ---------------------------------------------------

    def timer_set(self, inst: Instance) -> None:
        self._sleepers[inst.iid] = inst

    async def _pump(self) -> None:
        assert self._kick is not None
        last_sweep = self.clock.monotonic()
        while True:
            try:
                self._poll_inbox()
                self._fire_timers()
                if (
                    self.clock.monotonic() - last_sweep >= 1.0
                    or len(self.resident) > self.max_resident
                ):
                    last_sweep = self.clock.monotonic()
                    self._sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("agent runtime pump")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.poll_interval)
            self._kick.clear()

    def _poll_inbox(self) -> None:
        rows = self.db.query(
            "SELECT iid, MAX(id) FROM agent_inbox WHERE id > ? GROUP BY iid", (self._inbox_seen,)
        )
        for iid, top in rows:
            self._inbox_seen = max(self._inbox_seen, top)
            self._nudged(iid)

    def _fire_timers(self) -> None:
        now = self.clock.now()
        for inst in list(self._sleepers.values()):
            if inst.wake_at is None:
                self._sleepers.pop(inst.iid, None)
            elif inst.wake_at <= now:
                self._sleepers.pop(inst.iid, None)
                inst.wake()
        for iid, shard in self.db.query(
            "SELECT iid, shard FROM agent_instances WHERE wake_at <= ? LIMIT 1000", (now,)
        ):
            if iid not in self.resident and self.owns(shard):
                self.activate(iid)

    def _sweep(self) -> None:
        now = self.clock.monotonic()
        idle = [
            i
            for i in self.resident.values()
            if (i.task is None or i.blocked) and now - i.last_active >= i.definition.idle_timeout
        ]
        for inst in idle:
            self.passivate(inst.iid)
        excess = len(self.resident) - self.max_resident
        if excess > 0:
            quiet = sorted(
                (i for i in self.resident.values() if i.task is None or i.blocked),
                key=lambda i: i.last_active,
            )
            for inst in quiet[:excess]:
                self.passivate(inst.iid)
        if self.finished_ttl is not None:
            self.expire_finished(self.clock.now() - self.finished_ttl)

    def expire_finished(self, before: float) -> int:
        """Delete instances that finished before ``before`` with their journal, memory, inbox."""
        rows = self.db.query(
            "SELECT iid FROM agent_instances WHERE finished IS NOT NULL AND finished < ? LIMIT 1000",
            (before,),
        )
        ops = []
        for (iid,) in rows:
            for table in ("agent_journal", "agent_memory", "agent_snapshots", "agent_inbox"):
                ops.append((f"DELETE FROM {table} WHERE iid = ?", (iid,)))
            ops.append(("DELETE FROM agent_instances WHERE iid = ?", (iid,)))
        if ops:
            self.writer.submit_sync(ops)
        return len(rows)

    # -- model and tool calls ------------------------------------------------------------

    async def call_model(
        self, body: dict[str, Any], caller: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        """A chat completion through the gateway, as ``caller`` (namespace, agent): with
        ``model_token`` the call is that Agent's service account's, so the gateway limits,
        charges, authorizes and audits it as the agent's."""
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(timeout=120)
        token = self.model_api_key
        if self.model_token is not None and caller is not None:
            token = self.model_token(*caller)
        # the gateway's request span joins the turn's trace
        headers = {**trace_headers(), **({"Authorization": f"Bearer {token}"} if token else {})}
        response = await self._http.post(
            f"{self.model_base_url}/v1/chat/completions", json=body, headers=headers
        )
        if response.status_code >= 400:
            raise RuntimeError(
                f"the gateway answered {response.status_code} to a chat completion for"
                f" {body.get('model')!r}: {response.text[:300]}"
            )
        result = response.json()
        assert isinstance(result, dict)
        return result

    async def call_tool(
        self,
        spec: Tool,
        tool: str,
        arguments: dict[str, Any],
        folder: Path | None = None,
        on_network: Callable[[NetworkEvent], None] | None = None,
    ) -> Any:
        """Call ``tool`` of the Agent's tool ``spec``; a stdio server starts in ``folder``;
        ``on_network`` hears each host a process tool asks for."""
        return await call_tool(
            spec, tool, arguments, self.tool_servers, folder, self.egress, on_network
        )

    def load_memory(self, iid: int, length: int) -> list[Any]:
        rows = self.db.query(
            "SELECT data FROM agent_memory WHERE iid = ? AND n < ? ORDER BY n", (iid, length)
        )
        return [orjson.loads(bytes(r[0])) for r in rows]


def _no_tool_servers(name: str) -> None:
    return None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
