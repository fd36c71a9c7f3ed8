"""Shard leases: how ``agent-worker`` processes share the instances of one database.

Instances are hashed into :data:`~modelplane.agents.SHARDS` shards. A worker holds a lease in the
object store per shard it runs (``agents-shard-NN``) and a membership lease (``agents-worker-NN``,
one slot per live worker). Every ``duration / 3`` seconds it renews them, counts the live
members, keeps at most ``ceil(SHARDS / members)`` shards (handing extras back, so a new worker
gets its share) and takes free or lapsed shards up to that share. A worker killed with -9 stops
renewing: after ``duration`` seconds its leases lapse and the others take its shards, resuming
every instance there from the journal. A clean stop releases everything at once.

A worker that stalls longer than ``duration`` (a paused VM) may overlap with the new owner for as
long as it stalls; journal records are keyed by ``(instance, seq)``, so the second writer of a
record fails its commit instead of duplicating it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from modelplane.agents.runtime import SHARDS
from modelplane.store import Store

SHARD_LEASE = "agents-shard-{:02d}"
MEMBER_LEASE = "agents-worker-{:02d}"
MEMBER_SLOTS = 64


@dataclass
class Change:
    """What one :meth:`ShardLeases.tick` changed."""

    gained: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)  # lapsed or taken: stop running them at once
    surplus: set[int] = field(default_factory=set)  # to hand back once their instances stopped


class ShardLeases:
    """The shard leases of one worker (``holder``), kept in ``store``."""

    def __init__(self, store: Store, holder: str, *, duration: float = 10.0) -> None:
        self.store = store
        self.holder = holder
        self.duration = duration
        self.owned: set[int] = set()
        self._slot: int | None = None

    @property
    def interval(self) -> float:
        return self.duration / 3

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
        change = Change()
        share = math.ceil(SHARDS / self._members())
        for shard in sorted(self.owned):
            if not self.store.acquire_lease(SHARD_LEASE.format(shard), self.holder, self.duration):
                change.lost.add(shard)
        self.owned -= change.lost
        while len(self.owned) > share:
            shard = max(self.owned)
            self.owned.discard(shard)
            change.surplus.add(shard)
        for shard in range(SHARDS):
            if len(self.owned) >= share:
                break
            if shard in self.owned or shard in change.surplus:
                continue
            if self.store.acquire_lease(SHARD_LEASE.format(shard), self.holder, self.duration):
                self.owned.add(shard)
                change.gained.add(shard)
        return change

    def release(self, shards: set[int]) -> None:
        for shard in shards:
            self.store.release_lease(SHARD_LEASE.format(shard), self.holder)

    def release_all(self) -> None:
        """Hand back every shard and the membership slot (a clean stop)."""
        self.release(set(self.owned))
        self.owned.clear()
        if self._slot is not None:
            self.store.release_lease(MEMBER_LEASE.format(self._slot), self.holder)
            self._slot = None
