"""Rate limits and budgets shared by every gateway on one store: slices of each window, leased.

With N gateways behind a load balancer, per-process limits would admit N times a tenant's limit.
So each gateway also takes, per tenant and unit (requests, tokens, spend), a *slice* of the
tenant's allowance for the current window from the store (:meth:`Store.take_allowance`, one
atomic compare-and-set on SQLite or PostgreSQL) and admits requests from that slice in memory.
The store is asked again only when a slice runs low (in the background, before it is empty) or
runs out (then the requests of that tenant wait for that one refill together); no request makes
a round trip to the store of its own (DESIGN.md: the data plane never waits on the control plane).

Windows are fixed: minute ``n`` is ``[60n, 60n + 60)`` seconds of the Unix clock, and a budget's
period likewise (``budget.period`` long, counted from the epoch), so gateways agree on them as far
as their clocks agree (keep them in sync with NTP, as leases already ask).

**The bound.** In one window, all gateways together admit at most the limit plus one request's
worth per gateway: a gateway admits while its slice has any headroom left, reserving the
request's worst case (prompt estimate plus ``max_tokens``; its cost, for budgets), as the
per-process :class:`~modelplane.gateway._limits.Limiter` does. For requests per minute a request
is one, so no more than the limit is admitted. A gateway that dies adds at most what it had not
reported as settled (the requests in flight at its last report, and those it admitted after: at
most their reservations and its slice, plus one request): its slice lapses ``lease`` seconds
after its last renewal, after which the store counts only the settled use it reported, so a dead
gateway locks its tenants out for no longer than ``lease`` either. The usage an answer reports is charged
once: a gateway reports its total use per window, not increments, so a retried report charges
nothing twice; and it reports which part is settled, so the reservations of requests a dead
gateway had in flight are not charged once its slice lapsed (their clients retry on another
gateway, which charges them).

Slices are a tenth of the limit (at least the request at hand). Every ``lease / 4`` seconds a
gateway reports the use of its tenants: slices in use are renewed, the headroom of idle ones is
given back for other gateways to take, and pools of past windows are forgotten.

When the store cannot be reached (or takes longer than ``refill_wait``, 2 s, to answer a
refill that requests wait for), a gateway admits on its own limits alone (the per-process
limiter still applies) and asks the store again a second later: serving does not stop because
the store did, and the limits hold again across gateways once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from modelplane.gateway._table import Limits
from modelplane.store import AllowanceRequest, Store

log = logging.getLogger("modelplane.gateway.limits")

#: the part of a limit one slice takes
SLICE_FRACTION = 0.1
#: after the store refused more headroom, requests are refused from memory this long
_REFUSED_FOR = 0.5
#: after the store failed, requests are admitted on local limits this long before asking again
_OFFLINE_FOR = 1.0


@dataclass(slots=True, eq=False)  # a pool is itself: compared and hashed by identity
class _Pool:
    """One tenant's allowance of one unit in the current window, as this gateway holds it."""

    #: the pool's name in the store: ``limits/<namespace>/<endpoint>/<caller>/<unit>``
    name: str
    #: seconds per window: 60, or the budget's period
    period: float
    limit: float = 0.0
    slice: float = 0.0
    window: int = -1
    #: admitted in the window: settled use plus ``reserved``
    used: float = 0.0
    #: the reservations of requests in flight (tokens and budget; a request counts at once)
    reserved: float = 0.0
    granted: float = 0.0
    #: monotonic time at which the last take was asked (its slice lapses ``lease`` after it)
    asked_at: float = float("-inf")
    #: admitted a request since the last take (its slice is renewed, not given back)
    active: bool = False
    #: monotonic time before which the store is not asked again (after a refusal or a failure)
    ask_after: float = 0.0
    #: the store could not be reached: admit on local limits until ``ask_after``
    offline: bool = False
    refill: asyncio.Future[None] | None = None

    def roll(self, window: int) -> None:
        if window != self.window:
            self.window, self.used, self.reserved, self.granted = window, 0.0, 0.0, 0.0
            self.active = False
            self.asked_at = float("-inf")


@dataclass(frozen=True, slots=True)
class _Part:
    pool: _Pool
    window: int
    reserved: float
    #: what one used token costs in this unit; None for the request count (settled as reserved)
    per_token: float | None


@dataclass(frozen=True, slots=True)
class Share:
    """What an admitted request took from its tenant's shared allowances."""

    parts: tuple[_Part, ...]


class Denied(NamedTuple):
    """The allowance of ``unit`` (``requests``, ``tokens`` or ``budget``) is used up."""

    unit: str
    limit: float
    #: seconds until the window ends, or until slices may come back (the lease), if sooner
    retry_after: float


@dataclass(frozen=True, slots=True)
class _Ask:
    pool: _Pool
    unit: str
    limit: float
    amount: float
    per_token: float | None


class SharedLimits:
    """This gateway's slices of every tenant's allowances (see the module docstring).

    ``lease``: seconds a slice lasts unless renewed (a dead gateway's slice comes back after
    it); ``holder``: this gateway's name in the store (unique per process by default);
    ``refill_wait``: the longest a request waits for a refill before it is admitted on local
    limits (the store is slow or unreachable).
    """

    def __init__(
        self,
        store: Store,
        *,
        lease: float = 10.0,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        refill_wait: float = 2.0,
    ) -> None:
        self.store = store
        self.lease = lease
        self.refill_wait = refill_wait
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self.monotonic = monotonic
        self._pools: dict[tuple[str, float], _Pool] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def take(
        self, tenant: tuple[str, str, str], limits: Limits, tokens: int
    ) -> Share | Denied:
        """Take one request expected to use at most ``tokens`` from the tenant's allowances."""
        self._start_keeper()
        asks = self._asks(tenant, limits, tokens)
        self._roll(asks)
        short = [a for a in asks if not self._room(a.pool)]
        if short:
            await asyncio.gather(*(self._refill(a.pool, a.amount) for a in short))
            self._roll(asks)
        for a in asks:
            if not self._room(a.pool):
                return Denied(a.unit, a.limit, self._retry_after(a.pool))
        parts = []
        for a in asks:
            pool = a.pool
            pool.used += a.amount
            if a.per_token is not None:
                pool.reserved += a.amount
            pool.active = True
            parts.append(_Part(pool, pool.window, a.amount, a.per_token))
            low = pool.granted - pool.used < pool.slice / 2
            if low and pool.refill is None and not pool.offline:
                pool.refill = asyncio.ensure_future(self._take(pool, pool.slice))
        return Share(tuple(parts))

    def settle(self, share: Share, used_tokens: int) -> None:
        """Replace the share's reservations by what the request used (once per request)."""
        for part in share.parts:
            if part.per_token is not None and part.pool.window == part.window:
                part.pool.used += used_tokens * part.per_token - part.reserved
                part.pool.reserved -= part.reserved

    def cancel(self, share: Share) -> None:
        """Give back a share whose request was not admitted after all."""
        for part in share.parts:
            if part.pool.window == part.window:
                part.pool.used -= part.reserved
                if part.per_token is not None:
                    part.pool.reserved -= part.reserved

    async def refresh(self) -> None:
        """Report use to the store: renew the slices in use, give back the headroom of idle
        ones, retry after a failure, forget pools of past windows."""
        now, mono = self.clock(), self.monotonic()
        jobs: list[asyncio.Future[None]] = []
        for key, pool in list(self._pools.items()):
            if pool.refill is not None:
                continue
            if pool.window != self._window(pool, now):
                del self._pools[key]
                continue
            if pool.offline:
                want = pool.slice if mono >= pool.ask_after else None
            elif mono - pool.asked_at < self.lease / 2:
                want = None
            else:
                want = pool.slice if pool.active else 0.0 if pool.granted > pool.used else None
            if want is not None:
                pool.refill = asyncio.ensure_future(self._take(pool, want))
                jobs.append(pool.refill)
        if jobs:
            await asyncio.gather(*jobs)

    async def aclose(self) -> None:
        """Stop renewing and give every unused slice back (a gateway shutting down)."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None and self._loop is asyncio.get_running_loop():
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        jobs = [self._take(p, 0.0) for p in self._pools.values() if p.granted > p.used]
        if jobs:
            await asyncio.gather(*jobs)

    # -- internals ----------------------------------------------------------------------------

    def _asks(self, tenant: tuple[str, str, str], limits: Limits, tokens: int) -> list[_Ask]:
        base = "limits/" + "/".join(tenant)
        asks: list[_Ask] = []
        if limits.requests_per_minute is not None:
            asks.append(self._ask(base, "requests", 60.0, limits.requests_per_minute, 1, None))
        if limits.tokens_per_minute is not None:
            asks.append(self._ask(base, "tokens", 60.0, limits.tokens_per_minute, tokens, 1.0))
        if limits.budget_usd is not None and limits.usd_per_token > 0:
            rate = limits.usd_per_token
            period = limits.budget_period_s
            asks.append(self._ask(base, "budget", period, limits.budget_usd, tokens * rate, rate))
        return asks

    def _ask(
        self,
        base: str,
        unit: str,
        period: float,
        limit: float,
        amount: float,
        per_token: float | None,
    ) -> _Ask:
        key = (f"{base}/{unit}", period)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(key[0], period)
        pool.limit = limit
        share = limit * SLICE_FRACTION
        # whole requests and tokens, so that a gateway never holds a fraction of a request
        pool.slice = max(share if unit == "budget" else math.ceil(share), amount)
        return _Ask(pool, unit, limit, amount, per_token)

    def _window(self, pool: _Pool, now: float) -> int:
        return int(now // pool.period)

    def _roll(self, asks: list[_Ask]) -> None:
        now = self.clock()
        for a in asks:
            a.pool.roll(self._window(a.pool, now))

    def _room(self, pool: _Pool) -> bool:
        if pool.offline:
            return True
        # the slice is trusted only while the store's lease on it runs (counted from the ask)
        live = self.monotonic() < pool.asked_at + self.lease
        return live and pool.used < pool.granted

    def _retry_after(self, pool: _Pool) -> float:
        """Until the window ends, or sooner when slices may come back (lapsed or given back)."""
        return min(pool.period - self.clock() % pool.period, self.lease)

    async def _refill(self, pool: _Pool, need: float) -> None:
        """Ask for a slice (at least ``need``), or wait for the refill already asked for."""
        if pool.refill is None:
            if self.monotonic() < pool.ask_after:
                return
            pool.refill = asyncio.ensure_future(self._take(pool, max(pool.slice, need)))
        try:
            await asyncio.wait_for(asyncio.shield(pool.refill), self.refill_wait)
        except TimeoutError:  # the store is slow: admit on local limits until it answers
            if pool.refill is not None:
                log.warning("shared limit %s: the store is slow to answer", pool.name)
                pool.offline = True

    async def _take(self, pool: _Pool, want: float) -> None:
        """One take from the store, off the serving loop; the pool's new slice when it answers."""
        window, used, asked = pool.window, max(pool.used, 0.0), self.monotonic()
        settled = max(0.0, min(used, pool.used - pool.reserved))
        try:
            request = AllowanceRequest(
                pool.name, self.holder, window, pool.limit, used, want, self.lease, settled
            )
            granted = await asyncio.to_thread(self.store.take_allowance, request)
        except Exception as exc:  # the store is away: serve on local limits meanwhile
            log.warning("shared limit %s: the store did not answer (%s)", pool.name, exc)
            pool.offline, pool.ask_after = True, asked + _OFFLINE_FOR
            return
        finally:
            pool.refill = None
        pool.offline = False
        if pool.window != window:
            return
        pool.granted, pool.asked_at, pool.active = granted, asked, False
        if granted <= pool.used:
            pool.ask_after = asked + _REFUSED_FOR

    def _start_keeper(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new serving loop: what ran on the old one is gone
            self._loop, self._keeper = loop, None
            for pool in self._pools.values():
                pool.refill = None
        if self._keeper is None or self._keeper.done():
            self._keeper = loop.create_task(self._keep())

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 4)
            try:
                await self.refresh()
            except Exception:  # never let the keeper die; it reports again next time
                log.exception("reporting shared limits failed")
