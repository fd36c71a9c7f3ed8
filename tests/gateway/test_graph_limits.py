"""A Graph's endpoint steps go through the same request path as a client's request to that
Endpoint: its limits and budget per tenant, its metrics and samples, and a span of their own under
the Graph request's span."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tests.control._wait import wait_until
from tests.gateway._env import Env
from tests.gateway._spans import children, requests

from modelplane.api import LOCAL_OPERATOR
from modelplane.gateway import PRICE_ANNOTATION, GraphRoute


def _sequence(env: Env, name: str, *endpoints: str) -> None:
    env.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Graph",
            "metadata": {"name": name},
            "spec": {
                "nodes": {
                    "root": {
                        "type": "Sequence",
                        "steps": [{"endpoint": e, "name": f"{e}-step"} for e in endpoints],
                    }
                }
            },
        }
    )
    wait_until(
        lambda: isinstance(env.gw.gateway.table.lookup(name), GraphRoute), what=f"graph {name}"
    )


def _error(r: Any) -> dict[str, Any]:
    error = r.json()["error"]
    assert isinstance(error, dict)
    return error


def test_a_graph_step_over_its_endpoints_requests_per_minute_is_refused_with_429(
    env: Env,
) -> None:
    # given a Graph whose second step calls an Endpoint limited to 2 requests per minute
    env.endpoint("draft", {"v1": [env.fake("draft", reply=None)]})
    env.endpoint(
        "polish", {"v1": [env.fake("polish", reply=None)]}, limits={"requestsPerMinute": 2}
    )
    _sequence(env, "chain", "draft", "polish")
    # when the Graph is asked three times
    first, second, third = (env.chat("chain", "hello") for _ in range(3))
    # then the first two are served and the third is refused as a direct request would be
    assert (first.status_code, second.status_code) == (200, 200), first.text
    assert third.status_code == 429, third.text
    assert int(third.headers["retry-after"]) >= 1
    error = _error(third)
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "requests_per_minute"
    # naming the Graph, the step and the endpoint
    assert "'chain'" in error["message"]
    assert "'polish-step'" in error["message"]
    assert "endpoint default/polish" in error["message"]


def test_graph_steps_and_direct_requests_draw_on_one_pool_per_tenant(env: Env) -> None:
    # given an Endpoint limited to 2 requests per minute, served directly and through a Graph
    env.endpoint("ep", {"v1": [env.fake()]}, limits={"requestsPerMinute": 2})
    _sequence(env, "g", "ep")
    # when a caller makes one direct request and one through the Graph
    assert env.chat("ep", user="ann").status_code == 200
    assert env.chat("g", user="ann").status_code == 200
    # then the limiter counted both for the caller, and the third request is refused either way
    assert env.gw.gateway.limiter.used("default", "ep", LOCAL_OPERATOR.name)[0] == 2
    assert env.chat("ep", user="ann").status_code == 429
    assert env.chat("g", user="ann").status_code == 429
    # and another `user` in the body is the same caller, not a tenant of its own
    assert env.chat("g", user="bob").status_code == 429


def test_a_graph_step_stops_when_its_endpoint_spent_the_budget(env: Env) -> None:
    # given $1 per million tokens and a budget of $0.00002 (20 tokens) on the step's Endpoint
    env.endpoint(
        "paid",
        {"v1": [env.fake(reply="a b c d e f g h i j")]},
        limits={"budget": {"amount": 0.00002, "period": "day"}},
        annotations={PRICE_ANNOTATION: "1"},
    )
    _sequence(env, "g", "paid")
    # when the Graph spends 15 tokens, then 15 more (admitted while below the budget)
    assert env.chat("g", max_tokens=5).status_code == 200
    assert env.chat("g", max_tokens=5).status_code == 200
    # then the next Graph request is refused for the budget, as a direct one would be
    r = env.chat("g", max_tokens=5)
    assert r.status_code == 429, r.text
    assert _error(r)["code"] == "budget_exceeded"
    assert _error(r)["type"] == "insufficient_quota"
    assert env.chat("paid", max_tokens=5).status_code == 429


def test_graph_steps_are_recorded_in_their_endpoints_metrics_and_samples(env: Env) -> None:
    env.endpoint("draft", {"v1": [env.fake("draft", reply=None)]})
    env.endpoint("polish", {"v1": [env.fake("polish", reply=None)]})
    _sequence(env, "chain", "draft", "polish")
    for _ in range(2):
        assert env.chat("chain").status_code == 200
    text = env.client.get("/_modelplane/metrics").text
    for name in ("draft", "polish"):
        assert f'modelplane_gateway_requests_total{{model="{name}",version="v1",code="200"}} 2' in (
            text
        )
        samples = env.client.get(
            "/_modelplane/samples", params={"endpoint": name, "version": "v1"}
        ).json()["samples"]
        assert len(samples) == 2 and not any(s["error"] for s in samples)


def test_each_graph_step_is_a_child_span_of_the_graph_request_with_genai_attributes(
    env: Env, spans: InMemorySpanExporter
) -> None:
    # given a two-step Graph
    env.endpoint("draft", {"v1": [env.fake("draft-model", reply=None)]})
    env.endpoint("polish", {"v1": [env.fake("polish-model", reply=None)]})
    _sequence(env, "chain", "draft", "polish")
    # when a client asks it
    r = env.chat("chain", "hello", max_tokens=16)
    assert r.status_code == 200, r.text
    # then one root span stands for the Graph request, with the answer's usage
    (root,) = requests(spans, 1)
    assert root.name == "chat chain" and root.kind is SpanKind.CLIENT
    attrs = dict(root.attributes or {})
    assert attrs["gen_ai.request.model"] == "chain"
    assert attrs["modelplane.graph"] == "default/chain"
    assert attrs["gen_ai.usage.output_tokens"] == r.json()["usage"]["completion_tokens"]
    # and each step is its child, named and attributed as a direct request to its endpoint is
    steps = children(spans, root)
    assert [s.name for s in steps] == ["chat draft", "chat polish"]
    for step, model in zip(steps, ("draft-model", "polish-model"), strict=True):
        step_attrs = dict(step.attributes or {})
        assert step_attrs["modelplane.graph.step"] == step.name.split()[1] + "-step"
        assert step_attrs["gen_ai.operation.name"] == "chat"
        assert step_attrs["gen_ai.request.max_tokens"] == 16
        assert step_attrs["gen_ai.response.model"] == model
        assert step_attrs["gen_ai.usage.output_tokens"] > 0
        # with its attempt below it
        (attempt,) = children(spans, step)
        assert (attempt.attributes or {})["http.response.status_code"] == 200


def test_a_refused_step_marks_its_span_and_the_graph_span_as_errors(
    env: Env, spans: InMemorySpanExporter
) -> None:
    env.endpoint("ep", {"v1": [env.fake()]}, limits={"requestsPerMinute": 1})
    _sequence(env, "g", "ep")
    assert env.chat("g").status_code == 200
    spans.clear()
    assert env.chat("g").status_code == 429
    (root,) = requests(spans, 1)
    assert root.status.status_code is StatusCode.ERROR
    assert (root.attributes or {})["error.type"] == "requests_per_minute"
    (step,) = children(spans, root)
    assert step.status.status_code is StatusCode.ERROR
    assert (step.attributes or {})["error.type"] == "requests_per_minute"
