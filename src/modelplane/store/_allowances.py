"""Allowances: slices of a per-window limit that holders in many processes take from one pool.

A pool (say, one tenant's tokens per minute) has a ``limit`` per window (windows are numbered by
the caller, e.g. ``int(time.time() // 60)``). Each holder (a gateway process) keeps one row per
pool: the window it is about, what it reported having ``used`` there (reservations of requests
in flight included) and how much of that was ``settled`` (reported by answers), what it was
``granted`` (the most it may use: its use plus the headroom it holds) and when that grant lapses.

A take is one compare-and-set inside the store's write transaction, so holders in every process
sharing the database agree: the holder reports its use and asks for ``want`` more; what others
hold counts against the limit (a live grant fully, a lapsed one only for the settled use it
reported), and the holder's allowance is at most what is left (below its use, when it
overshot). Asking for 0 gives the unused headroom back. A holder that dies stops counting beyond
its settled use once its grant lapses, so it locks nobody out for longer than the grant's
duration, and the requests it had in flight are not charged (their clients retry elsewhere and
pay there). ``used`` is the holder's total, not an increment: a take repeated (a retry) charges
nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from modelplane.api.errors import BadRequest
from modelplane.store._contract import AllowanceRequest


@dataclass(frozen=True, slots=True)
class Allowance:
    """One holder's row in a pool."""

    holder: str
    window: int
    used: float
    settled: float
    granted: float
    #: seconds since the epoch at which the headroom of the grant lapses
    expires_at: float


def check_request(request: AllowanceRequest) -> None:
    """BadRequest unless the take names a pool and a holder, with sane amounts."""
    r = request
    if not r.pool or not r.holder:
        raise BadRequest("an allowance needs a pool and a holder (who is taking it)")
    if r.limit < 0 or r.used < 0 or r.want < 0 or (r.settled or 0) < 0:
        raise BadRequest(
            f"allowance amounts must not be negative (limit {r.limit}, used {r.used},"
            f" want {r.want})"
        )
    if not r.duration > 0:
        raise BadRequest(f"allowance duration {r.duration} must be a positive number of seconds")


def held_by_others(rows: Iterable[Allowance], holder: str, window: int, now: float) -> float:
    """What the other holders count for in ``window``: a live grant in full (or the use, when a
    request overshot it), a lapsed one only for the settled use it reported."""
    return sum(
        max(r.granted, r.used) if r.expires_at > now else r.settled
        for r in rows
        if r.window == window and r.holder != holder
    )


def taken(rows: Iterable[Allowance], request: AllowanceRequest, now: float) -> Allowance:
    """The holder's row after it reports ``used`` and asks for ``want`` more of ``limit``.

    The allowance never exceeds what the others leave of the limit, even when that is below
    ``used`` (the holder's requests overshot, or reserved more than they will use): the holder
    then admits nothing until its use, settled, falls below it."""
    r = request
    left = max(0.0, r.limit - held_by_others(rows, r.holder, r.window, now))
    settled = r.used if r.settled is None else min(r.settled, r.used)
    granted = min(r.used + r.want, left)
    return Allowance(r.holder, r.window, r.used, settled, granted, now + r.duration)
