"""What a handler sees: :class:`Context`, its durable ``state`` and ``memory``, and the errors.

An agent is ``async def handler(ctx: Context, input)`` or a class with
``async def on_message(self, ctx, message)`` (and optionally ``async def start(self, ctx, input)``),
named by ``Agent.spec.entrypoint``.

Execution semantics (what runs again after a crash, and what never does)
------------------------------------------------------------------------
An instance runs in **turns**. A function handler's whole run is one turn; a class handler has one
turn for ``start`` and one per message given to ``on_message``. Everything a turn does that touches
the world goes through this context and is written to the instance's **journal** before the call
returns: step results, model and tool calls, messages received and sent, timers, human input.

After a crash, a passivation or a retry of the handler, the current turn's handler code runs again
from its beginning — **replay** — and each context call returns the journaled value instead of
doing the work again:

* a :meth:`Context.step` whose result was journaled is **never** executed again; a step that
  was running when the process died (its result not yet journaled) **is** executed again, with the
  same :meth:`Context.idempotency_key`, so external systems can drop the duplicate;
* :meth:`Context.send` delivers exactly once (the journal record and the recipient's inbox row are
  one transaction); :meth:`Context.receive` and :meth:`Context.wait_for_input` consume each message
  or input exactly once;
* timers survive restarts: a :meth:`Context.sleep` fires at its deadline, or at once on restart if
  the deadline passed while nobody ran the instance;
* plain Python code between context calls runs again on every replay, so it must be deterministic:
  use :meth:`Context.now` and :meth:`Context.random` (journal-derived) instead of ``time.time()`` and
  ``random``; do I/O only inside steps;
* finished turns are never replayed: their effect is in the snapshot of ``state`` and in
  ``memory``, and resuming an instance reads that snapshot plus the current turn's records only.

A replay that asks for something the journal does not hold at that position (the code changed
under a live instance) fails the instance with a message naming both; deploy changes as a new
Agent version and migrate live instances with a migration hook.
"""

from __future__ import annotations

import hashlib
import random as _random
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Protocol

import orjson

# the errors a handler may catch, importable from here too
from modelplane.agents.errors import NonDeterminism as NonDeterminism
from modelplane.agents.errors import NotSerializable as NotSerializable
from modelplane.agents.errors import StepFailed as StepFailed
from modelplane.agents.errors import ToolDenied as ToolDenied


class _Instance(Protocol):
    namespace: str
    agent: str
    name: str
    version: str


class _Turn(Protocol):
    """What the handler's door needs of the turn it runs in (the runtime's turn implements it;
    declared here so that this public module depends on nothing of the runtime's)."""

    @property
    def inst(self) -> _Instance: ...  # read-only: the turn's own Instance is a subtype

    now: float

    def where(self) -> str: ...
    def state_changed(self) -> None: ...
    def memory_append(self, entry: Any) -> None: ...
    def memory_entries(self) -> list[Any]: ...
    def idempotency_key(self) -> str: ...
    def random(self) -> float: ...
    def clock_now(self) -> float: ...
    async def step(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any: ...
    async def sleep_until(self, when: float) -> None: ...
    async def receive(self) -> Any: ...
    async def wait_for_input(self, prompt: str) -> Any: ...
    async def send(self, target: str, payload: Any) -> None: ...
    async def call_model(
        self, model: str, messages: list[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> dict[str, Any]: ...
    async def call_tool(self, server: str, tool: str, arguments: dict[str, Any]) -> Any: ...


def encode(value: Any, what: str) -> bytes:
    """``value`` as JSON bytes, or :class:`NotSerializable` naming ``what`` and how to fix it."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise NotSerializable(
            f"{what} is not serialisable ({exc}); durable values must be JSON: dict, list, str,"
            " int, float, bool or None — convert it (e.g. str(value), value.isoformat(),"
            " dataclasses.asdict(value)) before returning or storing it"
        ) from None


class State(MutableMapping[str, Any]):
    """Durable key-value state of one instance.

    Reads and writes are in memory; a change is made durable with the next journal write of the
    turn (a step, a wait, the end of the turn). Values must be JSON-serialisable; a value that is
    not is refused when set, naming the key and the step it followed. After a crash, ``state`` is
    what it was at the start of the current turn, and the replay repeats the turn's changes.
    """

    __slots__ = ("_data", "_turn")

    def __init__(self, data: dict[str, Any], turn: _Turn | None) -> None:
        self._data = data
        self._turn = turn

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        where = self._turn.where() if self._turn is not None else "the handler"
        encode(value, f"state[{key!r}] (set {where})")
        self._data[key] = value
        if self._turn is not None:
            self._turn.state_changed()

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        if self._turn is not None:
            self._turn.state_changed()

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"State({self._data!r})"


class Memory:
    """The conversation of one instance: an append-only list of JSON values (O(1) append).

    Each :meth:`append` is one row in the store, written with the next journal write of the turn;
    entries are loaded on first access, not on resume, so a long conversation does not slow a
    resume. A replay re-appends at the same positions, which overwrites rather than duplicates.
    """

    __slots__ = ("_turn",)

    def __init__(self, turn: _Turn) -> None:
        self._turn = turn

    def append(self, entry: Any) -> None:
        """Add ``entry`` (JSON-serialisable) at the end."""
        self._turn.memory_append(entry)

    def __len__(self) -> int:
        return len(self._turn.memory_entries())

    def __getitem__(self, index: int | slice) -> Any:
        return self._turn.memory_entries()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._turn.memory_entries()))

    def last(self, n: int) -> list[Any]:
        """The newest ``n`` entries, oldest first (what to send a model as context)."""
        entries = self._turn.memory_entries()
        return list(entries[-n:]) if n > 0 else []


class Context:
    """The handler's door to durable execution. One per turn; do not keep it across turns.

    ``namespace``, ``agent``, ``instance`` name the instance; ``version`` is the Agent version it
    started on.
    """

    __slots__ = ("_turn", "memory", "state")

    def __init__(self, turn: _Turn, state: State) -> None:
        self._turn = turn
        self.state: State = state
        self.memory: Memory = Memory(turn)

    @property
    def namespace(self) -> str:
        return self._turn.inst.namespace

    @property
    def agent(self) -> str:
        return self._turn.inst.agent

    @property
    def instance(self) -> str:
        return self._turn.inst.name

    @property
    def version(self) -> str:
        return self._turn.inst.version

    async def step(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` once and return its (JSON-serialisable) result.

        The result is journaled before this returns; on replay it comes from the journal and ``fn``
        is not called. ``fn`` may be sync (runs on the event loop: keep it short, or use
        ``asyncio.to_thread`` inside an async ``fn``) or async. If it raises, it is retried with the
        Agent's ``retry`` policy (attempts and backoff); when attempts run out the failure is
        journaled and :class:`StepFailed` is raised here (and again on every replay). A result that
        is not JSON-serialisable raises :class:`NotSerializable` naming the step.
        """
        return await self._turn.step(name, fn, args, kwargs)

    async def sleep(self, seconds: float) -> None:
        """A durable timer: resume ``seconds`` after this call (the runtime's clock), even across
        restarts.

        The deadline is journaled when the timer is first set; a replay reuses it, so a restart
        neither restarts nor shortens the sleep. The instance may be passivated while it sleeps;
        the timer brings it back.
        """
        await self._turn.sleep_until(self._turn.clock_now() + seconds)

    async def sleep_until(self, when: float) -> None:
        """A durable timer until ``when`` (seconds since the epoch, the runtime's clock)."""
        await self._turn.sleep_until(when)

    async def receive(self) -> Any:
        """The next message sent to this instance (by the API or another instance's :meth:`send`).

        Each message is consumed exactly once; the instance may be passivated while it waits.
        """
        return await self._turn.receive()

    async def send(self, instance: str, payload: Any) -> None:
        """Send ``payload`` to another instance, exactly once.

        ``instance`` is ``name`` (same agent and namespace), ``agent/name`` or
        ``namespace/agent/name``. An unknown instance raises
        :class:`~modelplane.api.errors.NotFound` (journaled, so replay raises it too).
        """
        await self._turn.send(instance, payload)

    async def wait_for_input(self, prompt: str) -> Any:
        """Ask a person: the instance shows ``prompt`` (status ``waiting_input``) until someone
        answers through the API or ``modelplane agents input``; that may be days later, across
        restarts and passivation. Returns the answer."""
        return await self._turn.wait_for_input(prompt)

    def idempotency_key(self) -> str:
        """A key for an external side effect, stable across retries, replays and crashes.

        The n-th call in a turn returns the same key on every replay of that turn; pass it to the
        external system (a payment, an email) so it can drop duplicates when a step that was
        running at a crash executes again.
        """
        return self._turn.idempotency_key()

    def now(self) -> float:
        """Deterministic time (seconds since the epoch): when the latest event the turn consumed
        (its start, a message, a timer, an input) was journaled. Stable on replay."""
        return self._turn.now

    def random(self) -> float:
        """A deterministic pseudo-random float in [0, 1): the same sequence on every replay."""
        return self._turn.random()

    async def call_model(
        self, model: str, messages: list[Mapping[str, Any]], **params: Any
    ) -> dict[str, Any]:
        """A chat completion through the gateway (``POST {base}/v1/chat/completions``), journaled.

        ``model`` must be listed in the Agent's ``models``; ``params`` (``temperature``,
        ``max_tokens``, ...) go into the request body. Returns the OpenAI-shaped response. Retried
        like a step; on replay the journaled response is returned without calling the model.
        """
        return await self._turn.call_model(model, list(messages), params)

    async def call_tool(
        self, server: str, tool: str, arguments: Mapping[str, Any] | None = None
    ) -> Any:
        """Call ``tool`` on the MCP server named ``server`` in the Agent's ``tools``, journaled.

        The call first passes the runtime's authorization hook; its decision is audited, and a
        denial raises :class:`ToolDenied`. Returns the tool's structured content when it has one,
        else the list of its content blocks (``{"type": "text", "text": ...}``). Retried like a
        step; on replay the journaled result is returned without calling the server.
        """
        return await self._turn.call_tool(server, tool, dict(arguments or {}))


def deterministic_random(uid: str, turn: int) -> _random.Random:
    """The PRNG of one turn, seeded from the instance uid and the turn number."""
    seed = int.from_bytes(hashlib.blake2b(f"{uid}/{turn}".encode(), digest_size=8).digest(), "big")
    return _random.Random(seed)
