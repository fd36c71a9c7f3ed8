"""Graphs served as a model name: Sequence, Switch (CEL), Ensemble, Splitter."""

from __future__ import annotations

import collections
from typing import Any

import orjson
from tests.control._wait import wait_until
from tests.gateway._env import Env

from modelplane.gateway import ENSEMBLE_ANNOTATION, GraphRoute


def _graph(
    env: Env, name: str, nodes: dict[str, Any], annotations: dict[str, str] | None = None
) -> None:
    env.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Graph",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"nodes": nodes},
        }
    )
    wait_until(
        lambda: isinstance(env.gw.gateway.table.lookup(name), GraphRoute), what=f"graph {name}"
    )


def _content(r: Any) -> str:
    assert r.status_code == 200, r.text
    return str(r.json()["choices"][0]["message"]["content"])


def _echoes(env: Env, *names: str) -> None:
    for name in names:
        env.endpoint(name, {"v1": [env.fake(name, reply=None)]})  # answers "<name>: <message>"


def test_sequence_feeds_each_answer_to_the_next_step(env: Env) -> None:
    _echoes(env, "draft", "polish")
    _graph(
        env,
        "chain",
        {"root": {"type": "Sequence", "steps": [{"endpoint": "draft"}, {"endpoint": "polish"}]}},
    )
    r = env.chat("chain", "hello")
    assert _content(r) == "polish: draft: hello"
    assert r.json()["model"] == "chain"


def test_a_steps_system_message_goes_first_in_what_that_step_sends(env: Env) -> None:
    # given a Sequence whose second step says how to treat the first step's answer
    draft = env.fake("draft", reply=None)
    polish = env.fake("polish", reply=None)
    env.endpoint("draft", {"v1": [draft]})
    env.endpoint("polish", {"v1": [polish]})
    rewrite = "Rewrite the user's text as one short sentence."
    steps = [{"endpoint": "draft"}, {"endpoint": "polish", "system": rewrite}]
    _graph(env, "chain", {"root": {"type": "Sequence", "steps": steps}})
    # when a client asks the graph
    r = env.chat("chain", "hello")
    # then the polish step got the system message first, then the draft's answer; the draft did not
    assert _content(r) == "polish: draft: hello"
    assert polish.bodies[-1]["messages"] == [
        {"role": "system", "content": rewrite},
        {"role": "user", "content": "draft: hello"},
    ]
    assert [m["role"] for m in draft.bodies[-1]["messages"]] == ["user"]


def test_switch_picks_the_first_step_whose_condition_holds(env: Env) -> None:
    _echoes(env, "big", "small")
    _graph(
        env,
        "router",
        {
            "root": {
                "type": "Switch",
                "steps": [
                    {"endpoint": "big", "condition": "has(request.user) && request.user == 'vip'"},
                    {"endpoint": "small", "condition": "true"},
                ],
            }
        },
    )
    assert _content(env.chat("router", "q", user="vip")) == "big: q"
    assert _content(env.chat("router", "q", user="other")) == "small: q"
    assert _content(env.chat("router", "q")) == "small: q"


def test_switch_can_branch_on_the_previous_response(env: Env) -> None:
    _echoes(env, "triage", "urgent", "normal")
    _graph(
        env,
        "desk",
        {
            "root": {"type": "Sequence", "steps": [{"endpoint": "triage"}, {"node": "route"}]},
            "route": {
                "type": "Switch",
                "steps": [
                    {"endpoint": "urgent", "condition": "response.content.contains('fire')"},
                    {"endpoint": "normal", "condition": "true"},
                ],
            },
        },
    )
    assert _content(env.chat("desk", "fire!")) == "urgent: triage: fire!"
    assert _content(env.chat("desk", "hello")) == "normal: triage: hello"


def test_ensemble_runs_all_steps_and_merges_their_answers(env: Env) -> None:
    _echoes(env, "a", "b")
    steps = {"root": {"type": "Ensemble", "steps": [{"endpoint": "a"}, {"endpoint": "b"}]}}
    _graph(env, "both", steps)
    assert _content(env.chat("both", "x")) == "a: x\n\nb: x"
    _graph(env, "longest", steps, {ENSEMBLE_ANNOTATION: "longest"})
    env.endpoint("c", {"v1": [env.fake("a-much-longer-name", reply=None)]})
    _graph(
        env,
        "pick",
        {"root": {"type": "Ensemble", "steps": [{"endpoint": "a"}, {"endpoint": "c"}]}},
        {ENSEMBLE_ANNOTATION: "longest"},
    )
    assert _content(env.chat("pick", "x")) == "a-much-longer-name: x"


def test_splitter_sends_requests_by_weight(env: Env) -> None:
    _echoes(env, "left", "right")
    _graph(
        env,
        "split",
        {
            "root": {
                "type": "Splitter",
                "steps": [{"endpoint": "left", "weight": 50}, {"endpoint": "right", "weight": 50}],
            }
        },
    )
    seen = collections.Counter(_content(env.chat("split", "x")).split(":")[0] for _ in range(60))
    assert set(seen) == {"left", "right"}
    assert min(seen.values()) >= 12  # binomial(60, 0.5): below 12 has odds of about 1e-6


def _streamed(env: Env, model: str, text: str) -> tuple[list[str], str]:
    """The content pieces of a streamed chat answer, and the graph header."""
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": text}]}
    with env.client.stream("POST", "/chat/completions", json=body) as r:
        assert r.status_code == 200
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
        header = r.headers.get("x-modelplane-graph", "")
    assert events[-1] == "[DONE]"
    pieces = [
        orjson.loads(e)["choices"][0]["delta"].get("content") or ""
        for e in events[:-1]
        if orjson.loads(e).get("choices")
    ]
    return [p for p in pieces if p], header


def test_a_streamed_graph_streams_its_last_step_as_it_comes(env: Env) -> None:
    # given a Sequence of two steps
    _echoes(env, "draft", "polish")
    steps = [{"endpoint": "draft"}, {"endpoint": "polish"}]
    _graph(env, "g", {"root": {"type": "Sequence", "steps": steps}})
    # when a client asks it to stream
    pieces, header = _streamed(env, "g", "hello world")
    # then the last step's answer arrives in several chunks, as that step streamed it
    assert len(pieces) > 1 and header == "g"
    assert "".join(pieces) == "polish: draft: hello world"


def test_a_streamed_graph_whose_answer_is_an_ensembles_arrives_merged(env: Env) -> None:
    _echoes(env, "left", "right")
    steps = [{"endpoint": "left"}, {"endpoint": "right"}]
    _graph(env, "both", {"root": {"type": "Ensemble", "steps": steps}})
    pieces, _ = _streamed(env, "both", "hi")
    assert pieces == ["left: hi\n\nright: hi"]


def test_a_graph_step_on_a_missing_endpoint_is_503(env: Env) -> None:
    _graph(env, "broken", {"root": {"type": "Sequence", "steps": [{"endpoint": "missing"}]}})
    r = env.chat("broken")
    assert r.status_code == 503 and "missing" in r.json()["error"]["message"]
