"""The gateway's settings as spec fields (fallbacks, routing.sticky, limits.usdPerMillionTokens,
upstreamModel, an Ensemble's merge), read before the deprecated annotations they replace."""

from __future__ import annotations

import collections
from typing import Any

from tests.control._wait import wait_until
from tests.gateway._env import DIGEST, Env

from modelplane.gateway import (
    ENSEMBLE_ANNOTATION,
    FALLBACKS_ANNOTATION,
    STICKY_ANNOTATION,
    EndpointRoute,
    GraphRoute,
)
from modelplane.store import JSON
from modelplane.testing import FakeUpstream


def _endpoint(
    env: Env,
    name: str,
    fakes: dict[str, list[FakeUpstream]],
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> None:
    """A Model with one worker version per key of ``fakes`` and an Endpoint with ``spec``."""
    versions = [
        {"name": v, "source": f"/models/{v}", "format": "safetensors", "digest": DIGEST}
        for v in fakes
    ]
    env.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": f"{name}-model"},
            "spec": {"versions": versions},
        }
    )
    created = env.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Endpoint",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"model": f"{name}-model", **spec},
        }
    )
    created["status"] = {
        "replicas": [
            {"name": f"{name}-{v}-{i}", "version": v, "url": f.url, "ready": True}
            for v, fs in fakes.items()
            for i, f in enumerate(fs)
        ]
    }
    env.store.update_status(created)
    env.wait_routed(name, sum(len(f) for f in fakes.values()))


def _content(r: Any) -> str:
    assert r.status_code == 200, r.text
    return str(r.json()["choices"][0]["message"]["content"])


def test_spec_fallbacks_are_tried_in_order_when_the_endpoint_cannot_answer(env: Env) -> None:
    # given a primary whose only replica fails, and spec.fallbacks naming a failing and a good one
    down, also_down = env.fake(), env.fake()
    down.mode = also_down.mode = "fail"
    _endpoint(env, "second", {"v1": [also_down]})
    _endpoint(env, "backup", {"v1": [env.fake("backup", reply="from the backup")]})
    _endpoint(env, "primary", {"v1": [down]}, fallbacks=["second", "default/backup"])
    # when a client asks the primary
    r = env.chat("primary")
    # then the chain ends at the backup, having tried the second one on the way
    assert _content(r) == "from the backup"
    assert r.headers["x-modelplane-fallback-from"] == "primary"
    assert also_down.requests["/v1/chat/completions"] == 1


def test_spec_fallbacks_win_over_the_deprecated_annotation(env: Env) -> None:
    down = env.fake()
    down.mode = "fail"
    _endpoint(env, "by-spec", {"v1": [env.fake("by-spec", reply="spec")]})
    _endpoint(env, "by-annotation", {"v1": [env.fake("by-annotation", reply="annotation")]})
    _endpoint(
        env,
        "primary",
        {"v1": [down]},
        annotations={FALLBACKS_ANNOTATION: "by-annotation"},
        fallbacks=["by-spec"],
    )
    assert _content(env.chat("primary")) == "spec"


def test_the_deprecated_fallbacks_annotation_still_applies_without_the_field(env: Env) -> None:
    down = env.fake()
    down.mode = "fail"
    _endpoint(env, "old-backup", {"v1": [env.fake("old", reply="old way")]})
    _endpoint(env, "primary", {"v1": [down]}, annotations={FALLBACKS_ANNOTATION: "old-backup"})
    assert _content(env.chat("primary")) == "old way"


def test_routing_sticky_keeps_each_session_on_one_version(env: Env) -> None:
    # given two versions split 50/50 and routing.sticky
    _endpoint(
        env,
        "ep",
        {"v1": [env.fake("one")], "v2": [env.fake("two")]},
        traffic=[{"version": "v1", "weight": 50}, {"version": "v2", "weight": 50}],
        routing={"sticky": True},
    )
    route = env.gw.gateway.table.lookup("ep")
    assert isinstance(route, EndpointRoute) and route.sticky
    # when each of 12 sessions sends 4 requests
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for s in range(12):
        for _ in range(4):
            r = env.chat("ep", headers={"x-session-id": f"s{s}"})
            seen[f"s{s}"].add(r.headers["x-modelplane-version"])
    # then every session stayed on one version, and both versions got sessions
    assert all(len(v) == 1 for v in seen.values()), seen
    assert {next(iter(v)) for v in seen.values()} == {"v1", "v2"}


def test_routing_sticky_false_overrides_the_deprecated_annotation(env: Env) -> None:
    _endpoint(
        env,
        "ep",
        {"v1": [env.fake()]},
        annotations={STICKY_ANNOTATION: "true"},
        routing={"sticky": False},
    )
    route = env.gw.gateway.table.lookup("ep")
    assert isinstance(route, EndpointRoute) and not route.sticky


def test_limits_usd_per_million_tokens_charges_the_budget(env: Env) -> None:
    # given a price of 1 USD per million tokens and a budget of 20 tokens' worth
    _endpoint(
        env,
        "ep",
        {"v1": [env.fake(reply="a b c d e f g h i j")]},
        limits={"budget": {"amount": 0.00002, "period": "day"}, "usdPerMillionTokens": 1},
    )
    # when requests spend 15 tokens each
    assert env.chat("ep", max_tokens=5).status_code == 200
    assert env.chat("ep", max_tokens=5).status_code == 200
    # then the third finds the budget spent
    r = env.chat("ep", max_tokens=5)
    assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded"


class _ModelEcho(FakeUpstream):
    """A hosted provider that answers with the model name it was asked for."""

    def text_for(self, body: dict[str, Any]) -> str:
        return f"asked for {body.get('model')}"


def test_upstream_model_is_the_model_name_sent_to_the_provider(env: Env) -> None:
    # given an upstream version with upstreamModel
    provider = _ModelEcho("provider").start()
    env.fakes.append(provider)
    version: JSON = {
        "name": "v1",
        "source": provider.url,
        "format": "upstream",
        "upstreamModel": "gpt-4o-mini",
    }
    env.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "hosted"},
            "spec": {"versions": [version]},
        }
    )
    env.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Endpoint",
            "metadata": {"name": "ep"},
            "spec": {"model": "hosted"},
        }
    )
    env.wait_routed("ep", 1)
    # when a client asks the endpoint, then the provider was asked for upstreamModel
    assert _content(env.chat("ep")) == "asked for gpt-4o-mini"


def test_ensemble_merge_field_picks_how_answers_combine(env: Env) -> None:
    for name in ("a", "a-much-longer-name"):
        _endpoint(env, name, {"v1": [env.fake(name, reply=None)]})
    steps = [{"endpoint": "a"}, {"endpoint": "a-much-longer-name"}]

    def graph(name: str, node: JSON, annotations: dict[str, str] | None = None) -> None:
        env.create(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Graph",
                "metadata": {"name": name, "annotations": annotations or {}},
                "spec": {"nodes": {"root": node}},
            }
        )
        wait_until(
            lambda: isinstance(env.gw.gateway.table.lookup(name), GraphRoute), what=f"graph {name}"
        )

    # the field, over an annotation that says otherwise
    graph(
        "short",
        {"type": "Ensemble", "merge": "shortest", "steps": steps},
        {ENSEMBLE_ANNOTATION: "longest"},
    )
    graph("long", {"type": "Ensemble", "merge": "longest", "steps": steps})
    # the deprecated annotation still applies to a node without merge
    graph("old", {"type": "Ensemble", "steps": steps}, {ENSEMBLE_ANNOTATION: "longest"})
    assert _content(env.chat("short", "x")) == "a: x"
    assert _content(env.chat("long", "x")) == "a-much-longer-name: x"
    assert _content(env.chat("old", "x")) == "a-much-longer-name: x"
