"""Limits shared by several gateways on one store: slices of each window, taken and leased."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from modelplane.gateway import Limits
from modelplane.gateway._shared_limits import Denied, Share, SharedLimits
from modelplane.store import AllowanceRequest, Store, open_store

TENANT = ("default", "chat", "alice")
#: a fixed instant in the middle of a minute, so that no test sees the window roll
NOW = 60.0 * 29_000_000 + 30.0


class StalledStore:
    """A store whose takes hang until ``answer`` is set (a PostgreSQL that stopped answering)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.answer = threading.Event()

        self.answered = False

    def take_allowance(self, request: AllowanceRequest) -> float:
        self.answer.wait(30)
        self.answered = True
        return self.store.take_allowance(request)


class CountingStore:
    """The store as a gateway sees it, counting the takes (round trips) it makes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.takes = 0

    def take_allowance(self, request: AllowanceRequest) -> float:
        self.takes += 1
        return self.store.take_allowance(request)


@pytest.fixture
def stores(store_url: str) -> Iterator[tuple[Store, Store]]:
    """Two store instances on one database: what two gateway processes have."""
    with open_store(store_url) as a, open_store(store_url) as b:
        yield a, b


def gateway(store: Any, name: str, lease: float = 10.0) -> SharedLimits:
    return SharedLimits(store, lease=lease, holder=name, clock=lambda: NOW)


async def admit_until_refused(
    gateways: list[SharedLimits], limits: Limits, tokens: int
) -> list[Share]:
    """Take requests round-robin from ``gateways`` until each of them refuses one."""
    admitted: list[Share] = []
    refused: set[int] = set()
    while len(refused) < len(gateways):
        for i, gw in enumerate(gateways):
            if i in refused:
                continue
            share = await gw.take(TENANT, limits, tokens)
            if isinstance(share, Denied):
                refused.add(i)
            else:
                admitted.append(share)
    return admitted


def test_two_gateways_admit_the_limit_and_overshoot_it_by_at_most_a_request_each(
    stores: tuple[Store, Store],
) -> None:
    # given 100 tokens per minute shared by two gateways, and requests reserving 7 tokens each
    limits = Limits(tokens_per_minute=100)
    gateways = [gateway(stores[0], "a"), gateway(stores[1], "b")]

    # when both admit requests until each of them is refused
    admitted = asyncio.run(admit_until_refused(gateways, limits, 7))

    # then together they admitted the limit, and overshot it by at most one request each
    assert 100 <= len(admitted) * 7 < 100 + 2 * 7


def test_a_budget_holds_across_gateways_within_one_request_each(
    stores: tuple[Store, Store],
) -> None:
    # given a budget of $0.0001 at $1 per million tokens (100 tokens) shared by two gateways
    limits = Limits(budget_usd=0.0001, usd_per_token=1e-6)
    gateways = [gateway(stores[0], "a"), gateway(stores[1], "b")]

    # when both admit requests reserving 7 tokens each until each of them is refused
    admitted = asyncio.run(admit_until_refused(gateways, limits, 7))

    # then they spent the budget, overshooting it by at most one request's cost each
    assert 100 - 1e-6 <= len(admitted) * 7 < 100 + 2 * 7


def test_requests_per_minute_hold_exactly_across_gateways(stores: tuple[Store, Store]) -> None:
    limits = Limits(requests_per_minute=25)
    gateways = [gateway(stores[0], "a"), gateway(stores[1], "b")]

    admitted = asyncio.run(admit_until_refused(gateways, limits, 50))

    assert len(admitted) == 25


def test_requests_are_served_from_the_slice_without_a_store_round_trip_each(
    store: Store,
) -> None:
    # given a gateway whose store counts the takes
    counting = CountingStore(store)
    gw = gateway(counting, "a")
    limits = Limits(requests_per_minute=10_000, tokens_per_minute=1_000_000)

    # when it admits 200 requests (a slice is a tenth of the limit: 1000 requests)
    async def admit() -> list[Share | Denied]:
        return [await gw.take(TENANT, limits, 10) for _ in range(200)]

    shares = asyncio.run(admit())

    # then all were admitted with one take per limit, not one per request
    assert not any(isinstance(s, Denied) for s in shares)
    assert counting.takes == 2


def test_a_request_is_charged_the_usage_it_reported_once(stores: tuple[Store, Store]) -> None:
    # given gateway a admitted a request reserving 60 of 100 tokens, which used 10
    limits = Limits(tokens_per_minute=100)
    a, b = gateway(stores[0], "a"), gateway(stores[1], "b")

    async def run() -> list[Share]:
        share = await a.take(TENANT, limits, 60)
        assert isinstance(share, Share)
        a.settle(share, 10)
        await a.aclose()  # a gives its unused headroom back, reporting its use
        await a.aclose()  # a report repeated charges nothing more
        return await admit_until_refused([b], limits, 10)

    # then b may use the other 90
    assert len(asyncio.run(run())) * 10 == 90


def test_a_gateway_that_dies_holding_a_slice_locks_the_tenant_out_only_until_its_lease_lapses(
    stores: tuple[Store, Store],
) -> None:
    limits = Limits(tokens_per_minute=100)
    # the lease is short so that the test is, and long enough that b asks before it lapses
    dead, b = gateway(stores[0], "dead", lease=3.0), gateway(stores[1], "b")
    deadline = time.monotonic() + 30

    async def serve_then_die() -> None:
        first = await dead.take(TENANT, limits, 50)  # a slice of 50, then a refill in flight
        assert isinstance(first, Share)
        dead.settle(first, 30)  # before the refill reports: it reports 30 used, all settled
        pool = dead._pools[("limits/default/chat/alice/tokens", 60.0)]
        while pool.granted != 80:
            assert time.monotonic() < deadline, "the refill never reported"
            await asyncio.sleep(0.01)
        assert isinstance(await dead.take(TENANT, limits, 50), Share)  # and takes the rest
        while pool.granted != 100:
            assert time.monotonic() < deadline, "the second refill never came"
            await asyncio.sleep(0.01)

    # given gateway a answered a request that used 30 tokens, reported it with its next slice,
    # admitted another (in flight, 50 reserved), took all that was left, and died (its loop
    # ended: nothing renews or gives back its slice)
    asyncio.run(serve_then_die())

    async def others() -> int:
        # while its lease runs, b gets nothing
        assert isinstance(await b.take(TENANT, limits, 10), Denied)
        # once it lapsed, b gets the allowance back
        while isinstance(await b.take(TENANT, limits, 10), Denied):
            assert time.monotonic() < deadline, "the dead gateway's slice never lapsed"
            await asyncio.sleep(0.05)
        return 10 * (1 + len(await admit_until_refused([b], limits, 10)))

    # then b gets all but the 30 the dead one settled: its request in flight is not charged
    assert asyncio.run(others()) == 70


def test_when_the_store_is_away_a_gateway_admits_on_its_own_limits(store_url: str) -> None:
    # given a gateway whose store has gone
    store = open_store(store_url)
    store.close()
    gw = gateway(store, "a")

    # then requests are still admitted (the per-process limiter still applies to them)
    share = asyncio.run(gw.take(TENANT, Limits(requests_per_minute=1), 10))
    assert isinstance(share, Share)


def test_when_the_store_hangs_a_request_waits_for_a_refill_at_most_refill_wait(
    store: Store,
) -> None:
    # given a gateway whose store stopped answering
    stalled = StalledStore(store)
    gw = SharedLimits(stalled, holder="a", clock=lambda: NOW, refill_wait=0.2)

    async def run() -> tuple[Share | Denied, bool]:
        try:
            share = await gw.take(TENANT, Limits(requests_per_minute=1), 10)
            return share, stalled.answered
        finally:
            stalled.answer.set()  # let the hung take end with the test

    # then the request is admitted on local limits, without waiting for the store's answer
    share, answered = asyncio.run(run())
    assert isinstance(share, Share) and not answered
