"""Shard leases: how agent runtimes (``modelplane up``, ``agent-worker``) share one database's
instances, and the fencing tokens that keep a stalled one from writing.

Instances are hashed into :data:`~modelplane.agents.SHARDS` shards. Every runtime on leases (one
holder per process) holds a lease in the object store per shard it runs (``agents-shard-NN``) and
a membership lease (``agents-worker-NN``, one slot per live runtime). Every ``duration / 3``
seconds it renews them, counts the live members, keeps at most ``ceil(SHARDS / members)`` shards
(handing extras back, so a new member gets its share) and takes free or lapsed shards up to that
share. The first tick runs before the runtime starts: a runtime alone on its database owns every
shard at once. A runtime killed with -9 stops renewing: after ``duration`` seconds its leases
lapse and the others take its shards, resuming every instance there from the journal; a
restarted process on the same host releases at once the leases of a holder on this host whose
process is gone (see :meth:`ShardLeases.reap`). A clean stop releases everything at once.

Fencing: a lease's ``transitions`` grows every time the lease changes holder, so it is the
shard's fencing token. The runtime claims a shard it gains with that token in its own tables and
every commit for an instance checks the token inside the transaction (see
:mod:`modelplane.agents._journal`): a runtime that stalled past its lease (SIGSTOP, a paused VM, a
long GC) and wakes after another took the shard has its pending commit refused, and stops running
the instance; the new owner resumed it from the journal, where each step is recorded once.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field

from modelplane.store import Store

#: how many shards the instances are hashed into (each one lease)
SHARDS = 16


def shard_of(namespace: str, agent: str, name: str) -> int:
    """The shard of an instance: a stable hash of its key, the same in every process."""
    return zlib.crc32(f"{namespace}/{agent}/{name}".encode()) % SHARDS


SHARD_LEASE = "agents-shard-{:02d}"
MEMBER_LEASE = "agents-worker-{:02d}"
MEMBER_SLOTS = 64


def new_holder() -> str:
    """A holder name unique to this process: ``host/pid/random``."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


def _gone_here(holder: str, host: str) -> bool:
    """True when ``holder`` names a process of this host that no longer exists."""
    parts = holder.split("/")
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by another user
        return False
    return False


@dataclass
class Change:
    """What one :meth:`ShardLeases.tick` changed."""

    gained: set[int] = field(default_factory=set)  # claim with their token, then run them
    lost: set[int] = field(default_factory=set)  # lapsed or taken: stop running them at once
    surplus: set[int] = field(default_factory=set)  # to hand back once their instances stopped


class ShardLeases:
    """The shard leases of one process (``holder``), kept in ``store``.

    ``tokens`` maps each shard held to its fencing token (the lease's ``transitions``). The
    methods are thread-safe: a tick in flight when the runtime stops ends before the release.
    """

    def __init__(self, store: Store, holder: str | None = None, *, duration: float = 10.0) -> None:
        self.store = store
        self.holder = holder or new_holder()
        self.duration = duration
        self.tokens: dict[int, int] = {}
        #: shard -> local monotonic time before the call that last acquired or renewed its lease
        self.confirmed: dict[int, float] = {}
        self._slot: int | None = None
        self._lock = threading.Lock()

    @property
    def owned(self) -> set[int]:
        return set(self.held())

    def held(self) -> dict[int, int]:
        """Shard -> fencing token of the shards held now (a copy)."""
        with self._lock:
            return dict(self.tokens)

    @property
    def interval(self) -> float:
        return self.duration / 3

    def valid_for(self, shard: int) -> float:
        """Seconds this process may still act on ``shard`` by its own clock: nine tenths of a
        lease duration after the call that last renewed it began. A process cut off from the
        store (a partition, a stall) stops starting work once it can no longer be sure the lease
        is its own, before anyone else can take the shard."""
        with self._lock:
            began = self.confirmed.get(shard) if shard in self.tokens else None
        if began is None:
            return 0.0
        return began + 0.9 * self.duration - time.monotonic()

    def reap(self) -> int:
        """Release the unexpired leases of holders on this host whose process is gone (a process
        killed with -9 and started again, which would otherwise wait ``duration`` for them); how
        many. Should a pid be mistaken for gone, fencing still keeps its holder from writing."""
        host = self.holder.split("/", 1)[0]
        names = [SHARD_LEASE.format(s) for s in range(SHARDS)]
        names += [MEMBER_LEASE.format(s) for s in range(MEMBER_SLOTS)]
        now = time.time()
        reaped = 0
        for name in names:
            lease = self.store.get_lease(name)
            if (
                lease is not None
                and lease.expires_at > now
                and lease.holder != self.holder
                and _gone_here(lease.holder, host)
            ):
                reaped += self.store.release_lease(name, lease.holder)
        return reaped

    def _members(self) -> int:
        if self._slot is not None and not self.store.acquire_lease(
            MEMBER_LEASE.format(self._slot), self.holder, self.duration
        ):
            self._slot = None
        live = 0
        now = time.time()
        for slot in range(MEMBER_SLOTS):
            lease = self.store.get_lease(MEMBER_LEASE.format(slot))
            if lease is not None and lease.holder and lease.expires_at > now:
                live += 1
            elif self._slot is None and self.store.acquire_lease(
                MEMBER_LEASE.format(slot), self.holder, self.duration
            ):
                self._slot = slot
                live += 1
        return max(1, live)

    def tick(self) -> Change:
        """Renew, rebalance and take shards; what changed."""
        with self._lock:
            return self._tick()

    def _tick(self) -> Change:
        change = Change()
        share = math.ceil(SHARDS / self._members())
        for shard, token in sorted(self.tokens.items()):
            began = time.monotonic()
            lease = self.store.acquire_lease(SHARD_LEASE.format(shard), self.holder, self.duration)
            if lease is not None:
                self.confirmed[shard] = began
            if lease is None:
                change.lost.add(shard)
            elif lease.transitions != token:
                # someone held it between two renewals (this process stalled) and let it go: a
                # new term, under a new token; what ran under the old one stops
                change.lost.add(shard)
                change.gained.add(shard)
                self.tokens[shard] = lease.transitions
        for shard in change.lost - change.gained:
            del self.tokens[shard]
        while len(self.tokens) > share:
            shard = max(self.tokens)
            del self.tokens[shard]
            change.gained.discard(shard)
            change.surplus.add(shard)
        for shard in range(SHARDS):
            if len(self.tokens) >= share:
                break
            if shard in self.tokens or shard in change.surplus:
                continue
            began = time.monotonic()
            lease = self.store.acquire_lease(SHARD_LEASE.format(shard), self.holder, self.duration)
            if lease is not None:
                self.confirmed[shard] = began
                self.tokens[shard] = lease.transitions
                change.gained.add(shard)
        return change

    def current(self, shards: set[int]) -> set[int]:
        """Those of ``shards`` whose lease the store says this holder has now, under the token
        held (a claim refused for them means the runtime's tables outlived a reset store)."""
        held = self.held()
        now = time.time()
        out = set()
        for shard in shards:
            lease = self.store.get_lease(SHARD_LEASE.format(shard))
            if (
                lease is not None
                and lease.holder == self.holder
                and lease.expires_at > now
                and lease.transitions == held.get(shard)
            ):
                out.add(shard)
        return out

    def forget(self, shards: set[int]) -> None:
        """Stop holding ``shards`` (their claim failed: a newer holder has them) and release."""
        with self._lock:
            for shard in shards:
                self.tokens.pop(shard, None)
            self._release(shards)

    def release(self, shards: set[int]) -> None:
        """Hand back ``shards`` (no longer held: a tick's surplus)."""
        with self._lock:
            self._release(shards)

    def _release(self, shards: set[int]) -> None:
        for shard in shards:
            with contextlib.suppress(Exception):  # a lease not released lapses on its own
                self.store.release_lease(SHARD_LEASE.format(shard), self.holder)

    def release_all(self) -> None:
        """Hand back every shard and the membership slot (a clean stop)."""
        with self._lock:
            self._release(set(self.tokens))
            self.tokens.clear()
            if self._slot is not None:
                with contextlib.suppress(Exception):
                    self.store.release_lease(MEMBER_LEASE.format(self._slot), self.holder)
                self._slot = None
