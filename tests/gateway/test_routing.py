"""Traffic splits and routing policies, each by its defining behaviour."""

from __future__ import annotations

import collections
import threading

import httpx
from tests.control._wait import wait_until
from tests.gateway._env import Env

from modelplane.gateway import STICKY_ANNOTATION


def _served_by(env: Env, n: int, **kwargs: object) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        r = env.chat("ep", **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 200, r.text
        seen[r.headers["x-modelplane-replica"]] += 1
    return seen


def test_traffic_split_sends_each_version_its_weight(env: Env) -> None:
    # given 80/20 between two versions
    env.endpoint("ep", {"v1": [env.fake()], "v2": [env.fake()]}, traffic={"v1": 80, "v2": 20})
    # when 400 requests arrive
    versions = collections.Counter(
        env.chat("ep").headers["x-modelplane-version"] for _ in range(400)
    )
    # then v2's share is within 4 standard deviations of 20 % (sd = 2 % at n = 400)
    assert abs(versions["v2"] / 400 - 0.20) < 0.08, versions


def test_sticky_sessions_keep_each_session_on_one_version(env: Env) -> None:
    env.endpoint(
        "ep",
        {"v1": [env.fake()], "v2": [env.fake()]},
        traffic={"v1": 50, "v2": 50},
        annotations={STICKY_ANNOTATION: "true"},
    )
    per_session: dict[str, set[str]] = collections.defaultdict(set)
    for s in range(24):
        for _ in range(4):
            r = env.chat("ep", headers={"x-session-id": f"session-{s}"})
            per_session[f"session-{s}"].add(r.headers["x-modelplane-version"])
        r = env.chat("ep", user=f"session-{s}")  # the `user` field is a session key too
        per_session[f"session-{s}"].add(r.headers["x-modelplane-version"])
    assert all(len(v) == 1 for v in per_session.values()), per_session
    assert {next(iter(v)) for v in per_session.values()} == {"v1", "v2"}


def test_round_robin_takes_each_replica_in_turn(env: Env) -> None:
    env.endpoint("ep", {"v1": [env.fake(), env.fake(), env.fake()]}, policy="round-robin")
    assert sorted(_served_by(env, 9).values()) == [3, 3, 3]


def test_least_request_avoids_the_replica_with_a_request_in_flight(env: Env) -> None:
    slow_a, slow_b = env.fake(), env.fake()
    slow_a.delay = slow_b.delay = 0.6
    env.endpoint("ep", {"v1": [slow_a, slow_b]}, policy="least-request")
    first: list[httpx.Response] = []
    t = threading.Thread(target=lambda: first.append(env.chat("ep")))
    t.start()
    router = env.gw.gateway.router
    wait_until(lambda: sum(x.in_flight for x in router.loads.values()) == 1, what="one in flight")
    second = env.chat("ep")
    t.join()
    assert first[0].headers["x-modelplane-replica"] != second.headers["x-modelplane-replica"]


def test_load_policy_prefers_the_replica_with_the_shorter_scraped_queue(env: Env) -> None:
    busy, idle = env.fake(), env.fake()
    busy.queue_depth, busy.kv_cache = 12, 0.8
    env.endpoint("ep", {"v1": [busy, idle]}, policy="load")
    router = env.gw.gateway.router
    wait_until(lambda: router.load(busy.url).queue_depth == 12, what="metrics scraped")
    served = _served_by(env, 8)
    assert served == {"ep-v1-1": 8}


def test_prefix_cache_keeps_a_shared_prefix_on_one_replica(env: Env) -> None:
    env.endpoint("ep", {"v1": [env.fake() for _ in range(4)]}, policy="prefix-cache")
    system = "You are a careful assistant. " * 20  # a long shared prefix (many blocks)
    replicas = {
        env.chat("ep", system + f"question {i}").headers["x-modelplane-replica"] for i in range(12)
    }
    assert len(replicas) == 1
    spread = {
        env.chat("ep", f"{i} a prefix of its own " * 10).headers["x-modelplane-replica"]
        for i in range(16)
    }
    assert len(spread) > 1  # unrelated prompts hash over several replicas


def test_session_affinity_keeps_a_session_on_one_replica(env: Env) -> None:
    env.endpoint("ep", {"v1": [env.fake() for _ in range(4)]}, policy="session-affinity")
    homes = set()
    for s in range(12):
        seen = {
            env.chat("ep", headers={"x-session-id": f"s{s}"}).headers["x-modelplane-replica"]
            for _ in range(4)
        }
        assert len(seen) == 1
        homes |= seen
    assert len(homes) > 1


def test_prefix_load_leaves_a_saturated_replica_despite_its_cache(env: Env) -> None:
    fakes = [env.fake() for _ in range(3)]
    env.endpoint("ep", {"v1": fakes}, policy="prefix-load")
    prompt = "Shared context of a long document. " * 20
    home = env.chat("ep", prompt + "q0").headers["x-modelplane-replica"]
    # while the replica holding the prefix is fine, the prefix stays there
    assert {env.chat("ep", prompt + f"q{i}").headers["x-modelplane-replica"] for i in range(5)} == {
        home
    }
    # when it reports a full queue, requests with that prefix go elsewhere
    saturated = fakes[int(home.rsplit("-", 1)[1])]
    saturated.queue_depth = 50
    router = env.gw.gateway.router
    wait_until(lambda: router.load(saturated.url).queue_depth == 50, what="metrics scraped")
    moved = {env.chat("ep", prompt + f"r{i}").headers["x-modelplane-replica"] for i in range(5)}
    assert home not in moved
