"""Per-tenant rate limits and budgets: requests and tokens per minute, spend per period.

A tenant is (namespace, endpoint, caller): each authenticated principal calling the Endpoint gets
its ``spec.limits`` for itself. The caller comes from authentication, never from the request body
(OpenAI's ``user`` field is an end-user id the client chooses: it decides nothing here).

Charging, so that concurrent requests overshoot a limit by at most one request's tokens: a
request is admitted only while what was used in the window *plus what admitted requests have
reserved* is below the limit; admission then reserves the request's worst case (its prompt
estimate plus ``max_tokens``) and the answer settles it with the usage the upstream reported.
Admission and reservation happen with no ``await`` between them, on the serving loop, so two
requests can never both see the same headroom.

Windows slide in 60 buckets (one second each for per-minute limits), so memory is bounded and
old use leaves the window gradually. This sliding window is each gateway process's own.

Across gateways: a Limiter given :class:`~modelplane.gateway._shared_limits.SharedLimits`
(``modelplane gateway``, and any gateway on PostgreSQL) also admits a request only from this
process's slice of the tenant's allowance for the current fixed window, taken from the store;
with N gateways sharing the store, together they admit at most the limit plus one request's
worth per gateway in a window (that module has the bound and how slices are leased). Its
:meth:`Limiter.acquire` is the admission to use then; :meth:`Limiter.admit` alone is this
process's sliding window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from modelplane.gateway._errors import GatewayError
from modelplane.gateway._shared_limits import Denied, Share, SharedLimits
from modelplane.gateway._table import Limits

_BUCKETS = 60


@dataclass(slots=True)
class _Window:
    period: float
    buckets: dict[int, float] = field(default_factory=dict)
    used: float = 0.0
    reserved: float = 0.0

    def _prune(self, now: float) -> None:
        size = self.period / _BUCKETS
        oldest = int(now / size) - _BUCKETS + 1
        for b in [b for b in self.buckets if b < oldest]:
            self.used -= self.buckets.pop(b)
        if not self.buckets:
            self.used = 0.0

    def level(self, now: float) -> float:
        self._prune(now)
        return self.used + self.reserved

    def add(self, now: float, amount: float) -> None:
        if amount:
            b = int(now / (self.period / _BUCKETS))
            self.buckets[b] = self.buckets.get(b, 0.0) + amount
            self.used += amount

    def retry_after(self, now: float, limit: float) -> float:
        """Seconds until enough use leaves the window to fall below ``limit``."""
        size = self.period / _BUCKETS
        level = self.used + self.reserved
        for b in sorted(self.buckets):
            if level < limit:
                break
            level -= self.buckets[b]
            wait = (b + _BUCKETS) * size - now
            if level < limit:
                return max(wait, 0.0)
        return size if level < limit else self.period

    def idle(self, now: float) -> bool:
        self._prune(now)
        return not self.buckets and not self.reserved


@dataclass(slots=True)
class _Tenant:
    requests: _Window
    tokens: _Window
    spend: _Window


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted request's reservation; hand it back to :meth:`Limiter.settle` exactly once."""

    tenant: tuple[str, str, str]
    tokens: int
    usd_per_token: float
    #: what the request took from the allowances shared by every gateway, if they are
    share: Share | None = None


class Limiter:
    """Admission against ``Limits`` per tenant (see the module docstring)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, shared: SharedLimits | None = None
    ) -> None:
        self.clock = clock
        self.shared = shared
        self._tenants: dict[tuple[str, str, str], _Tenant] = {}
        self._since_sweep = 0

    def _tenant(self, key: tuple[str, str, str], limits: Limits) -> _Tenant:
        tenant = self._tenants.get(key)
        if tenant is None:
            self._since_sweep += 1
            if self._since_sweep > 10_000:
                self._sweep()
            tenant = self._tenants[key] = _Tenant(
                _Window(60.0), _Window(60.0), _Window(limits.budget_period_s)
            )
        return tenant

    def _sweep(self) -> None:
        now = self.clock()
        self._since_sweep = 0
        for key in [
            k for k, t in self._tenants.items() if t.requests.idle(now) and t.tokens.idle(now)
        ]:
            if self._tenants[key].spend.idle(now):
                del self._tenants[key]

    def admit(
        self, namespace: str, endpoint: str, user: str, limits: Limits, tokens: int
    ) -> Ticket:
        """Admit one request expected to use at most ``tokens``, or raise a 429 GatewayError."""
        key = (namespace, endpoint, user)
        tenant = self._tenant(key, limits)
        now = self.clock()
        who = f"user {user!r} of " if user else ""
        rpm, tpm, budget = limits.requests_per_minute, limits.tokens_per_minute, limits.budget_usd
        for limit, window, unit in (
            (rpm, tenant.requests, "requests"),
            (tpm, tenant.tokens, "tokens"),
        ):
            if limit is not None and window.level(now) >= limit:
                raise _limited(
                    f"{who}endpoint {namespace}/{endpoint} is over its limit of {limit} {unit} per"
                    " minute",
                    f"{unit}_per_minute",
                    window.retry_after(now, limit),
                )
        if budget is not None and limits.usd_per_token > 0 and tenant.spend.level(now) >= budget:
            raise _limited(
                f"{who}endpoint {namespace}/{endpoint} has spent its budget of ${budget:g}",
                "budget_exceeded",
                tenant.spend.retry_after(now, budget),
            )
        tenant.requests.add(now, 1)
        tenant.tokens.reserved += tokens
        tenant.spend.reserved += tokens * limits.usd_per_token
        return Ticket(key, tokens, limits.usd_per_token)

    async def acquire(
        self, namespace: str, endpoint: str, user: str, limits: Limits, tokens: int
    ) -> Ticket:
        """As :meth:`admit`, and with :attr:`shared` limits also from this gateway's slice of the
        tenant's allowance (which may wait for one refill from the store, never a round trip of
        the request's own)."""
        if self.shared is None:
            return self.admit(namespace, endpoint, user, limits, tokens)
        share = await self.shared.take((namespace, endpoint, user), limits, tokens)
        if isinstance(share, Denied):
            raise _shared_denied(namespace, endpoint, user, share)
        try:
            ticket = self.admit(namespace, endpoint, user, limits, tokens)
        except GatewayError:
            self.shared.cancel(share)
            raise
        return Ticket(ticket.tenant, ticket.tokens, ticket.usd_per_token, share)

    async def aclose(self) -> None:
        """Give this gateway's unused slices of shared allowances back."""
        if self.shared is not None:
            await self.shared.aclose()

    def settle(self, ticket: Ticket, used_tokens: int) -> None:
        """Replace the reservation by what the request really used."""
        if ticket.share is not None and self.shared is not None:
            self.shared.settle(ticket.share, used_tokens)
        tenant = self._tenants.get(ticket.tenant)
        if tenant is None:
            return
        now = self.clock()
        tenant.tokens.reserved = max(0.0, tenant.tokens.reserved - ticket.tokens)
        tenant.tokens.add(now, used_tokens)
        tenant.spend.reserved = max(
            0.0, tenant.spend.reserved - ticket.tokens * ticket.usd_per_token
        )
        tenant.spend.add(now, used_tokens * ticket.usd_per_token)

    def used(self, namespace: str, endpoint: str, user: str) -> tuple[float, float]:
        """(requests, tokens) in the current minute window, reservations included."""
        tenant = self._tenants.get((namespace, endpoint, user))
        if tenant is None:
            return (0.0, 0.0)
        now = self.clock()
        return (tenant.requests.level(now), tenant.tokens.level(now))


def _shared_denied(namespace: str, endpoint: str, user: str, denied: Denied) -> GatewayError:
    who = f"user {user!r} of " if user else ""
    where = f"{who}endpoint {namespace}/{endpoint}"
    if denied.unit == "budget":
        return _limited(
            f"{where} has spent its budget of ${denied.limit:g} (counted across every gateway)",
            "budget_exceeded",
            denied.retry_after,
        )
    return _limited(
        f"{where} is over its limit of {denied.limit:g} {denied.unit} per minute (counted"
        " across every gateway)",
        f"{denied.unit}_per_minute",
        denied.retry_after,
    )


def _limited(message: str, code: str, retry_after: float) -> GatewayError:
    return GatewayError(
        429,
        message,
        type="rate_limit_error" if code != "budget_exceeded" else "insufficient_quota",
        code=code,
        retry_after=max(1.0, math.ceil(retry_after)),
    )
