"""Rate limits shared by three real ``modelplane gateway`` processes on PostgreSQL.

The bound (docs/gateway.md, ``modelplane.gateway._shared_limits``): in one minute window, all
gateways together admit at most the limit of requests, and at most the limit of tokens plus one
request's reservation per gateway; a gateway killed holding a slice keeps it from the others no
longer than the slice's lease (10 s), and adds at most what it admitted since it last reported.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from tests.control._wait import wait_until

from modelplane.bench.shared_limits import RESERVATION, gateways, hammer, hosted_endpoints
from modelplane.testing import FakeUpstream

pytestmark = pytest.mark.postgres

LEASE = 10.0  # SharedLimits' default lease


def _fresh_window(margin: float) -> None:
    """Wait until at least ``margin`` seconds are left in the current minute (a window)."""
    wait_until(
        lambda: 60.0 - time.time() % 60.0 >= margin,
        timeout=margin + 2,
        what=f"a minute with {margin:.0f}s left",
    )


def _chat(url: str, model: str) -> int:
    body = {"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).status_code


def test_three_gateways_hammered_together_admit_a_tenants_limit_within_the_stated_bound(
    pg_url: str, tmp_path: Path
) -> None:
    # given three gateways on one PostgreSQL and Endpoints limited per minute
    with FakeUpstream("provider") as provider:
        limits = {"rpm": {"requestsPerMinute": 45}, "tpm": {"tokensPerMinute": 450}}
        hosted_endpoints(pg_url, provider.url, limits)
        with gateways(pg_url, tmp_path / "home") as started:
            urls = [g.url for g in started]
            # when clients hammer all three until each refuses, in one window
            _fresh_window(margin=30)
            requests = hammer(urls, "rpm")
            tokens = hammer(urls, "tpm")
            body = {"model": "rpm", "messages": [{"role": "user", "content": "hi"}]}
            refused = httpx.post(f"{urls[0]}/v1/chat/completions", json=body, timeout=30)

    assert len(requests.windows | tokens.windows) == 1, "the burst crossed a minute"
    # then no more requests than the limit were admitted, and tokens within one request each
    assert requests.refused > 0 and tokens.refused > 0
    assert 45 * 0.9 <= requests.requests <= 45
    assert 450 * 0.9 <= tokens.tokens <= 450 + 3 * RESERVATION
    # and a refused client is told why, in OpenAI's shape, and when to come back
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "requests_per_minute")
    assert "limit of 45 requests per minute (counted across every gateway)" in error["message"]


def test_a_gateway_killed_holding_a_slice_keeps_it_only_until_its_lease_lapses(
    pg_url: str, tmp_path: Path
) -> None:
    with FakeUpstream("provider") as provider:
        hosted_endpoints(pg_url, provider.url, {"rpm": {"requestsPerMinute": 30}})
        with gateways(pg_url, tmp_path / "home") as started:
            victim, others = started[0], [g.url for g in started[1:]]
            _fresh_window(margin=LEASE + 30)
            # given the first gateway admitted one request from its slice (3 of 30), then was
            # killed -9 holding the rest of it
            assert _chat(victim.url, "rpm") == 200
            victim.proc.kill()
            victim.proc.wait(10)

            # when the others are hammered, they admit all but that slice
            before = hammer(others, "rpm")
            # then once the slice's lease lapsed, they admit its unused part too
            wait_until(
                lambda: _chat(others[0], "rpm") == 200,
                timeout=LEASE + 10,
                what="the killed gateway's slice to lapse",
            )
            after = hammer(others, "rpm")

    assert len(before.windows | after.windows) == 1, "the test crossed a minute"
    assert before.requests == 30 - 3
    # the whole slice came back: the killed gateway had not reported its one request yet, which
    # is the overshoot stated for a gateway that dies (what it admitted since it last reported)
    assert 1 + after.requests == 3
