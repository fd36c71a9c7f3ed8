"""Leases on every backend: compare-and-set, renewal, lapse, release, fencing transitions."""

from __future__ import annotations

import time

import pytest
from store_helpers import race, wait_until

from modelplane.api.errors import BadRequest
from modelplane.store import Store, open_store


def test_a_lease_is_exclusive_until_it_lapses_then_changes_hands(store: Store) -> None:
    # given a lease taken by a for a short time
    first = store.acquire_lease("controllers", "a", 0.3)
    assert first is not None
    assert (first.holder, first.transitions) == ("a", 0)

    # b cannot take it while it runs
    assert store.acquire_lease("controllers", "b", 10) is None
    assert store.get_lease("controllers") == first

    # once it lapses, b takes it and the transitions count goes up
    assert wait_until(lambda: time.time() > first.expires_at, timeout=5)
    second = store.acquire_lease("controllers", "b", 10)
    assert second is not None
    assert (second.holder, second.transitions) == ("b", 1)
    assert store.acquire_lease("controllers", "a", 10) is None


def test_renewal_extends_the_lease_without_a_transition(store: Store) -> None:
    first = store.acquire_lease("shard-1", "a", 5)
    renewed = store.acquire_lease("shard-1", "a", 50)

    assert first is not None and renewed is not None
    assert renewed.expires_at > first.expires_at
    assert renewed.transitions == first.transitions


def test_release_frees_the_lease_and_only_the_holder_may_release(store: Store) -> None:
    store.acquire_lease("shard-1", "a", 60)

    assert store.release_lease("shard-1", "b") is False
    assert store.release_lease("shard-1", "a") is True
    assert store.get_lease("shard-1") is None

    taken = store.acquire_lease("shard-1", "b", 60)
    assert taken is not None and taken.transitions == 1


def test_unknown_leases_are_none(store: Store) -> None:
    assert store.get_lease("nobody") is None
    assert store.release_lease("nobody", "a") is False


@pytest.mark.parametrize(
    ("name", "holder", "duration"), [("", "a", 1), ("x", "", 1), ("x", "a", 0)]
)
def test_bad_lease_requests_are_refused(
    store: Store, name: str, holder: str, duration: float
) -> None:
    with pytest.raises(BadRequest):
        store.acquire_lease(name, holder, duration)


def test_only_one_of_many_contenders_wins(store: Store, store_url: str) -> None:
    # contenders from two store instances (two processes) race for one lease
    winners: list[str] = []
    with open_store(store_url) as other:

        def contend(s: Store, who: str) -> None:
            if s.acquire_lease("leader", who, 60) is not None:
                winners.append(who)

        race((other, store), contend)

    assert len(winners) == 1
    lease = store.get_lease("leader")
    assert lease is not None and lease.holder == winners[0]
