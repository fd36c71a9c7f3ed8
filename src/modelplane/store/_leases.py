"""Leases: named, expiring claims that one holder at a time may have (leader election, shards).

A lease is taken by compare-and-set inside a write transaction, so holders in every process sharing
the database agree. Leases compare the caller's clock with ``expires_at``; processes sharing a
PostgreSQL should keep their clocks in sync (NTP), as Kubernetes leader election assumes.
``transitions`` grows by one whenever the holder changes, so it serves as a fencing token.
"""

from __future__ import annotations

from modelplane.api.errors import BadRequest
from modelplane.store._contract import Lease


def check_request(name: str, holder: str, duration: float) -> None:
    """BadRequest unless the lease request names a lease and a holder for a positive time."""
    if not name or not holder:
        raise BadRequest("a lease needs a name and a holder (who is taking it)")
    if not duration > 0:
        raise BadRequest(f"lease duration {duration} must be a positive number of seconds")


def next_lease(
    current: Lease | None, name: str, holder: str, duration: float, now: float
) -> Lease | None:
    """Compare-and-set: the lease after ``holder`` asks for it, or None if someone else holds it.

    ``transitions`` starts at 0 and grows by one whenever the holder changes (including taking a
    released lease), so it serves as a fencing token.
    """
    expires = now + duration
    if current is None:
        return Lease(name, holder, expires, 0)
    if current.holder == holder:
        return Lease(name, holder, expires, current.transitions)
    if not current.holder or current.expires_at <= now:
        return Lease(name, holder, expires, current.transitions + 1)
    return None


def released(current: Lease | None, holder: str) -> Lease | None:
    """The lease after ``holder`` gives it back (no holder; transitions kept), or None when
    ``holder`` does not hold it."""
    if current is None or current.holder != holder:
        return None
    return Lease(current.name, "", 0.0, current.transitions)
