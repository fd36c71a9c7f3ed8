"""Allowances on every backend: slices of a per-window limit shared by holders in many processes."""

from __future__ import annotations

import time

import pytest
from store_helpers import race, wait_until

from modelplane.api.errors import BadRequest
from modelplane.store import AllowanceRequest, Store, open_store

POOL = "limits/default/chat/alice/tokens"


def take(
    store: Store,
    holder: str,
    *,
    used: float = 0,
    want: float,
    window: int = 7,
    duration: float = 60,
    settled: float | None = None,
) -> float:
    request = AllowanceRequest(POOL, holder, window, 100, used, want, duration, settled)
    return store.take_allowance(request)


def test_holders_share_one_limit_per_window(store: Store) -> None:
    # given a pool of 100 per window, a takes 60
    assert take(store, "a", want=60) == 60

    # then b gets only what is left, and c nothing
    assert take(store, "b", want=60) == 40
    assert take(store, "c", want=10) == 0


def test_a_new_window_starts_from_the_whole_limit(store: Store) -> None:
    take(store, "a", want=100)

    assert take(store, "b", want=100, window=8) == 100


def test_giving_back_unused_headroom_lets_others_take_it(store: Store) -> None:
    # given a holds all 100 and used 30 of it
    take(store, "a", want=100)

    # when a reports its use and asks for nothing more
    assert take(store, "a", used=30, want=0) == 30

    # then b may take the 70 a did not use
    assert take(store, "b", want=100) == 70


def test_a_repeated_report_charges_nothing_twice(store: Store) -> None:
    take(store, "a", want=50)
    take(store, "a", used=20, want=30)
    # the same report again (a retry) gives the same allowance
    assert take(store, "a", used=20, want=30) == 50

    assert take(store, "b", want=100) == 50


def test_a_holder_that_overshot_its_grant_is_charged_its_use(store: Store) -> None:
    # given a was granted 50 but one request took it to 70
    take(store, "a", want=50)
    assert take(store, "a", used=70, want=10) == 80

    # then the others get what is left after its use and its new grant
    assert take(store, "b", want=100) == 20


def test_an_allowance_never_exceeds_what_the_others_leave_even_below_the_use(
    store: Store,
) -> None:
    # given a holds 60 and b 40 of 100
    take(store, "a", want=60)
    take(store, "b", want=40)

    # when a's requests reserved 70 (more than they will use, once settled)
    # then its allowance stays 60: it admits again only once its settled use is below that
    assert take(store, "a", used=70, want=10) == 60


def test_a_lapsed_grant_counts_only_for_the_settled_use_it_reported(store: Store) -> None:
    # given a took everything for a short lease, then reported 25 used, of which 10 settled
    # (15 reserved by requests in flight), and died
    take(store, "a", want=100, duration=0.3)
    lapses = time.time() + 0.3
    take(store, "a", used=25, want=75, duration=0.3, settled=10)
    assert take(store, "b", want=100) == 0

    # once the lease lapsed, b gets all but the 10 settled: the requests a had in flight are
    # not charged (their clients retry elsewhere)
    assert wait_until(lambda: time.time() > lapses + 0.05, timeout=5)
    assert take(store, "b", want=100) == 90


@pytest.mark.parametrize(
    ("pool", "holder", "limit", "used", "want", "duration"),
    [
        ("", "a", 1, 0, 1, 1),
        ("p", "", 1, 0, 1, 1),
        ("p", "a", -1, 0, 1, 1),
        ("p", "a", 1, 0, -1, 1),
        ("p", "a", 1, 0, 1, 0),
    ],
)
def test_bad_allowance_requests_are_refused(
    store: Store, pool: str, holder: str, limit: float, used: float, want: float, duration: float
) -> None:
    with pytest.raises(BadRequest):
        store.take_allowance(AllowanceRequest(pool, holder, 1, limit, used, want, duration))


def test_holders_racing_from_two_processes_never_get_more_than_the_limit(
    store: Store, store_url: str
) -> None:
    # six holders on two store instances (two processes) each ask for 30 of 100, five times
    last: dict[str, float] = {}
    with open_store(store_url) as other:

        def contend(s: Store, who: str) -> None:
            for _ in range(5):
                last[who] = take(s, who, want=30)

        race((other, store), contend)

    # what they hold together is the whole limit, never more
    assert sum(last.values()) == 100
