"""Requests- and tokens-per-minute limits and budgets, per tenant."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.gateway._env import Env

from modelplane.api import LOCAL_OPERATOR
from modelplane.gateway import PRICE_ANNOTATION


def test_requests_per_minute_limit_answers_429_with_retry_after(env: Env) -> None:
    env.endpoint("ep", {"v1": [env.fake()]}, limits={"requestsPerMinute": 3})
    codes = [env.chat("ep").status_code for _ in range(3)]
    r = env.chat("ep")
    assert codes == [200, 200, 200]
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["type"] == "rate_limit_error"
    # the body's `user` (OpenAI's end-user id) is not a tenant: the caller is the same principal
    assert env.chat("ep", user="someone-else").status_code == 429


def test_concurrent_requests_overshoot_tokens_per_minute_by_at_most_one_request(env: Env) -> None:
    # given 100 tokens per minute and requests that may each use up to 21 (max_tokens 20 + prompt)
    slow = env.fake()
    slow.delay = 0.3  # so that the requests are in flight together
    env.endpoint("ep", {"v1": [slow]}, limits={"tokensPerMinute": 100})
    # when 20 arrive at once
    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda _: env.chat("ep", "hi", max_tokens=20).status_code, range(20)))
    # then only as many as fit were admitted, and the rest were told to retry
    admitted = codes.count(200)
    assert admitted >= 1 and codes.count(429) == 20 - admitted
    assert admitted * 21 <= 100 + 21
    requests, tokens = env.gw.gateway.limiter.used("default", "ep", LOCAL_OPERATOR.name)
    assert requests == admitted and tokens <= 100 + 21


def test_budget_stops_a_tenant_that_spent_it(env: Env) -> None:
    # $1 per million tokens and a budget of $0.00002: 20 tokens
    env.endpoint(
        "ep",
        {"v1": [env.fake(reply="a b c d e f g h i j")]},
        limits={"budget": {"amount": 0.00002, "period": "day"}},
        annotations={PRICE_ANNOTATION: "1"},
    )
    assert env.chat("ep", max_tokens=5).status_code == 200  # 15 tokens spent
    assert env.chat("ep", max_tokens=5).status_code == 200  # 30: over, but admitted below it
    r = env.chat("ep", max_tokens=5)
    assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded"
