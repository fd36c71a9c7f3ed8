"""Flow control: requests held by priority while the replicas are saturated, the lowest shed first
(429 with Retry-After), tenants shared by weight; the queue itself, then a real gateway over
loopback with a replica whose scraped queue depth says it is saturated."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest
from tests.control._wait import wait_until
from tests.gateway._env import Env

from modelplane.api import Principal, validate
from modelplane.gateway import (
    FlowQueue,
    GatewayError,
    QosPolicy,
    RequestClass,
    TenantRule,
    Waiter,
)

HIGH = RequestClass("interactive", 10, "team-a")
LOW = RequestClass("batch", -5, "team-a")


def _waiter(klass: RequestClass, at: float, cost: float = 100.0) -> Waiter:
    return Waiter(klass, cost, at, token=f"{klass.name}@{at}")


# -- the queue ---------------------------------------------------------------------------------


def test_the_highest_priority_waiting_is_served_first_whatever_its_arrival() -> None:
    queue = FlowQueue(max_size=8)
    for w in (_waiter(LOW, 0.0), _waiter(LOW, 1.0), _waiter(HIGH, 2.0)):
        assert queue.push(w) is None
    assert [queue.pop().token for _ in range(3)] == ["interactive@2.0", "batch@0.0", "batch@1.0"]  # type: ignore[union-attr]
    assert queue.pop() is None and len(queue) == 0


def test_a_full_queue_sheds_the_newest_lowest_priority_never_a_higher_one() -> None:
    queue = FlowQueue(max_size=2)
    first, second = _waiter(LOW, 0.0), _waiter(LOW, 1.0)
    queue.push(first)
    queue.push(second)
    # a higher priority arriving at a full queue takes the newest low one's place
    assert queue.push(_waiter(HIGH, 2.0)) is second
    # a low one arriving while only equal or higher priorities wait is shed itself
    late = _waiter(LOW, 3.0)
    assert queue.push(late) is late
    # and so is a high one when the queue is full of high ones
    queue.push(_waiter(HIGH, 4.0))  # sheds `first`, the last low one
    assert queue.waiting(LOW.priority) == 0
    latest = _waiter(HIGH, 5.0)
    assert queue.push(latest) is latest


def test_tenants_of_one_class_are_served_in_proportion_to_their_weights() -> None:
    # given two tenants of one class, weights 3:1, each with more waiting than will be served
    heavy, light = RequestClass("std", 0, "a", 3.0), RequestClass("std", 0, "b", 1.0)
    queue = FlowQueue(max_size=1000)
    for i in range(200):
        queue.push(_waiter(heavy, float(i)))
        queue.push(_waiter(light, float(i)))
    # when 200 are served
    served = [queue.pop().klass.tenant for _ in range(200)]  # type: ignore[union-attr]
    # then tokens went 3:1
    assert served.count("a") == 150 and served.count("b") == 50


def test_a_tenant_back_from_idle_gets_no_credit_for_the_time_it_sent_nothing() -> None:
    a, b = RequestClass("std", 0, "a"), RequestClass("std", 0, "b")
    queue = FlowQueue(max_size=1000)
    for i in range(50):  # a alone for a while
        queue.push(_waiter(a, float(i)))
        queue.pop()
    for i in range(10):  # then both wait
        queue.push(_waiter(a, 100.0 + i))
        queue.push(_waiter(b, 100.0 + i))
    served = [queue.pop().klass.tenant for _ in range(10)]  # type: ignore[union-attr]
    # b was lifted to a's count: they alternate instead of b taking all ten
    assert served.count("b") == 5


def test_requests_held_past_the_ttl_expire_oldest_first() -> None:
    queue = FlowQueue(max_size=8, ttl=1.0)
    queue.push(_waiter(LOW, 0.0))
    queue.push(_waiter(HIGH, 0.5))
    assert [w.token for w in queue.expire(1.2)] == ["batch@0.0"]
    assert len(queue) == 1


def test_a_request_is_classed_by_header_then_tenant_then_default() -> None:
    policy = QosPolicy(
        classes={"interactive": 10, "batch": -5, "std": 0},
        default_class="std",
        tenants={"team-a": TenantRule("batch", 3.0)},
    )
    member = Principal("alice", frozenset({"modelplane:namespace:team-a"}))
    assert policy.classify("interactive", member) == RequestClass("interactive", 10, "team-a", 3.0)
    assert policy.classify(None, member).name == "batch"
    assert policy.classify(None, Principal("bob")) == RequestClass("std", 0, "bob", 1.0)
    with pytest.raises(GatewayError) as caught:
        policy.classify("gold", member)
    assert caught.value.status == 400 and caught.value.param == "x-modelplane-priority"
    assert "known classes: batch, interactive, std" in caught.value.message


# -- through a real gateway --------------------------------------------------------------------

QOS = {
    "classes": [{"name": "interactive", "priority": 10}, {"name": "batch", "priority": -5}],
    "defaultClass": "batch",
    "queue": {"maxSize": 2, "ttl": "20s"},
    "saturation": {"queueDepth": 4},
}


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as executor:
        yield executor


def _send(env: Env, klass: str | None, text: str) -> httpx.Response:
    headers = {"x-modelplane-priority": klass} if klass else {}
    with httpx.Client(base_url=env.gw.url + "/v1", timeout=30.0) as client:
        body = {"model": "chat", "messages": [{"role": "user", "content": text}]}
        return client.post("/chat/completions", json=body, headers=headers)


def _held(env: Env, n: int) -> None:
    flow = env.gw.gateway.flow
    wait_until(lambda: sum(flow.depth().values()) == n, timeout=10, what=f"{n} requests held")


def test_a_low_priority_flood_is_shed_while_a_high_priority_request_is_served(
    env: Env, pool: ThreadPoolExecutor
) -> None:
    # given a replica whose /metrics says its queue is deep (saturated), and a queue of two
    fake = env.fake("replica")
    fake.queue_depth = 10.0
    env.endpoint("chat", {"v1": [fake]}, qos=QOS)
    wait_until(
        lambda: env.gw.gateway.router.load(fake.url).queue_depth == 10.0,
        what="the gateway to scrape the replica's queue depth",
    )
    # when two low-priority requests wait, then a high-priority one arrives
    lows: list[Future[httpx.Response]] = []
    for i in range(2):
        lows.append(pool.submit(_send, env, None, f"low {i}"))
        _held(env, i + 1)
    high = pool.submit(_send, env, "interactive", "high")
    # then the newest low one is shed at once with 429 and Retry-After, the high one waits
    shed = lows[1].result(timeout=20)
    assert shed.status_code == 429, shed.text
    assert int(shed.headers["retry-after"]) >= 1
    assert shed.json()["error"]["code"] == "flow_control_shed"
    _held(env, 2)
    # and another low one arriving at the full queue is shed itself
    assert _send(env, "batch", "low 2").status_code == 429
    # when the replica has room again, the high one is served first, then the low one
    fake.queue_depth = 0.0
    assert high.result(timeout=20).status_code == 200
    assert lows[0].result(timeout=20).status_code == 200
    answered = [b["messages"][0]["content"] for b in fake.bodies]
    assert answered.index("high") < answered.index("low 0")
    assert "low 1" not in answered and "low 2" not in answered
    # the replica was told each request's priority
    priorities = [h.get("x-modelplane-priority-value") for h in fake.headers]
    assert priorities[-2:] == ["10", "-5"]
    # and the metrics count what was shed, per class and reason
    metrics = env.client.get(env.gw.url + "/metrics").text
    assert (
        'modelplane_gateway_flow_shed_requests_total{endpoint="default/chat",class="batch",'
        'reason="queue_full"} 2' in metrics
    )


def test_a_request_held_past_the_ttl_is_shed_with_429(env: Env) -> None:
    fake = env.fake("replica")
    fake.queue_depth = 10.0
    env.endpoint("chat", {"v1": [fake]}, qos={**QOS, "queue": {"maxSize": 4, "ttl": "300ms"}})
    wait_until(lambda: env.gw.gateway.router.load(fake.url).queue_depth == 10.0, what="scrape")
    r = _send(env, None, "late")
    assert r.status_code == 429, r.text
    assert "queue.ttl" in r.json()["error"]["message"]
    assert fake.requests["/v1/chat/completions"] == 0


def test_an_unknown_class_is_refused_with_400_naming_the_header_and_the_classes(env: Env) -> None:
    fake = env.fake("replica")
    env.endpoint("chat", {"v1": [fake]}, qos=QOS)
    r = _send(env, "gold", "hi")
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "x-modelplane-priority"
    assert "known classes: batch, interactive" in error["message"]
    assert fake.requests["/v1/chat/completions"] == 0


def test_an_inference_objective_is_a_class_of_the_endpoint_its_pool_ref_names(env: Env) -> None:
    fake = env.fake("replica")
    env.endpoint("chat", {"v1": [fake]}, qos=QOS)
    env.store.create(
        validate(
            {
                "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
                "kind": "InferenceObjective",
                "metadata": {"name": "critical", "namespace": "default"},
                "spec": {"priority": 50, "poolRef": {"name": "chat"}},
            }
        )
    )

    def classes() -> bool:
        route = env.gw.gateway.table.lookup("chat")
        return route is not None and "critical" in getattr(route.qos, "classes", {})

    wait_until(classes, what="the objective's class")
    with httpx.Client(base_url=env.gw.url + "/v1", timeout=30.0) as client:
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        r = client.post(
            "/chat/completions", json=body, headers={"x-gateway-inference-objective": "critical"}
        )
    assert r.status_code == 200, r.text
    assert fake.headers[-1]["x-modelplane-priority-value"] == "50"


def test_a_graph_step_is_classed_and_held_at_its_endpoint_like_a_client_request(
    env: Env, pool: ThreadPoolExecutor
) -> None:
    # given a Graph whose one step is an Endpoint with classes, saturated
    fake = env.fake("replica")
    env.endpoint("chat", {"v1": [fake]}, qos=QOS)
    env.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Graph",
            "metadata": {"name": "flow"},
            "spec": {"nodes": {"root": {"type": "Sequence", "steps": [{"endpoint": "chat"}]}}},
        }
    )
    wait_until(lambda: env.gw.gateway.table.lookup("flow") is not None, what="the graph")
    fake.queue_depth = 10.0
    wait_until(lambda: env.gw.gateway.router.load(fake.url).queue_depth == 10.0, what="scrape")
    # when the Graph is called with a class
    with httpx.Client(base_url=env.gw.url + "/v1", timeout=30.0) as client:
        body = {"model": "flow", "messages": [{"role": "user", "content": "step"}]}
        answer = pool.submit(
            client.post,
            "/chat/completions",
            json=body,
            headers={"x-modelplane-priority": "interactive"},
        )
        # then its step waits in the endpoint's queue with the class's priority
        _held(env, 1)
        assert env.gw.gateway.flow.depth() == {("default/chat", "10"): 1}
        fake.queue_depth = 0.0
        assert answer.result(timeout=20).status_code == 200
    assert fake.headers[-1]["x-modelplane-priority-value"] == "10"


def test_a_full_queue_sheds_from_the_tenant_holding_more_than_its_weight() -> None:
    heavy, light = RequestClass("std", 0, "a", 3.0), RequestClass("std", 0, "b", 1.0)
    queue = FlowQueue(max_size=4)
    held = [_waiter(light, float(i)) for i in range(4)]
    for w in held:
        queue.push(w)
    # a arrives at a queue full of b's requests: b holds 4 for weight 1, a would hold 1 for 3
    assert queue.push(_waiter(heavy, 10.0)) is held[-1]
    # b arriving again holds more than its share already: it is shed itself
    late = _waiter(light, 11.0)
    assert queue.push(late) is late


def test_background_work_fills_only_its_share_so_a_higher_priority_starts_at_once() -> None:
    import asyncio
    import contextlib

    from modelplane.gateway import FlowControl

    # given one replica taking 2 requests, background allowed half of them, and 1 in flight
    policy = QosPolicy(
        classes={"interactive": 10, "batch": -5}, max_in_flight=2, background_share=0.5
    )
    in_flight = 1
    assert (policy.in_flight_bound(-5), policy.in_flight_bound(10)) == (1, 2)

    def headroom(p: QosPolicy, priority: int) -> float:
        return float((p.in_flight_bound(priority) or 0) - in_flight)

    async def scenario() -> tuple[bool, bool]:
        flow = FlowControl()
        low = asyncio.create_task(flow.admit("ep", policy, LOW, 10, headroom))
        await asyncio.sleep(0)  # let it reach the queue (one turn of the loop, not a timing)
        # when a high-priority request arrives, it is let through at once
        await asyncio.wait_for(flow.admit("ep", policy, HIGH, 10, headroom), timeout=5)
        low_waits = not low.done() and flow.depth() == {("ep", "-5"): 1}
        low.cancel()  # and when its client leaves, it is taken out of the queue
        with contextlib.suppress(asyncio.CancelledError):
            await low
        return low_waits, flow.held["ep"].queue.size == 0

    low_waited, emptied = asyncio.run(scenario())
    # then the low one was still held, and leaving took it out of the queue
    assert low_waited and emptied


def test_a_class_kv_cache_reserve_holds_lower_priorities_and_lets_the_class_on(
    env: Env, pool: ThreadPoolExecutor
) -> None:
    # given interactive keeping 0.3 of the KV cache, and a replica using 0.7 of it
    fake = env.fake("replica")
    fake.kv_cache = 0.7
    qos = {
        **QOS,
        "classes": [
            {"name": "interactive", "priority": 10, "kvCacheReserve": 0.3},
            {"name": "batch", "priority": -5},
        ],
        "saturation": {"kvCacheUsage": 0.9},
    }
    env.endpoint("chat", {"v1": [fake]}, qos=qos)
    wait_until(lambda: env.gw.gateway.router.load(fake.url).kv_cache == 0.7, what="scrape")
    # when a batch request and an interactive one arrive
    low = pool.submit(_send, env, "batch", "low")
    _held(env, 1)  # batch is held: 0.7 is past its bound of 0.9 - 0.3
    assert _send(env, "interactive", "high").status_code == 200  # interactive goes on
    assert not low.done()
    # and once the cache frees up, the batch request goes too
    fake.kv_cache = 0.1
    assert low.result(timeout=20).status_code == 200
