"""Evaluations of sampled answers while a rollout runs: sampling, scores in the samples, the judge
model called through the gateway's own request path, and a bounded queue that drops, not waits."""

from __future__ import annotations

import random
from typing import Any

import pytest
from tests.control._wait import wait_until
from tests.gateway._env import Env

from modelplane.gateway import Call, EndpointRoute
from modelplane.gateway._evals import Evaluations, evaluator
from modelplane.gateway._scorers import EvalPlan
from modelplane.gateway._telemetry import Telemetry
from modelplane.store import JSON
from modelplane.testing import FakeUpstream

QUESTION = "What is 2+2?"
CASES = [{"prompt": QUESTION, "expect": "exact", "answer": "4"}]


def _rolling_out(
    env: Env,
    fakes: dict[str, FakeUpstream],
    evals: JSON,
    *,
    name: str = "ep",
    phase: str = "Progressing",
) -> None:
    """A Model whose versions are ``fakes`` (hosted upstreams), an Endpoint with ``evals`` as its
    rollout's eval block, split evenly, and a rollout in ``phase`` as the controller writes it."""
    versions = [{"name": v, "source": f.url, "format": "upstream"} for v, f in fakes.items()]
    env.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": f"{name}-model"},
            "spec": {"versions": versions},
        }
    )
    share = 100 // len(fakes)
    traffic = [{"version": v, "weight": share} for v in fakes]
    traffic[0]["weight"] += 100 - share * len(fakes)
    created = env.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Endpoint",
            "metadata": {"name": name},
            "spec": {
                "model": f"{name}-model",
                "traffic": traffic,
                "rollout": {"steps": [50, 100], "analysis": {"eval": evals}},
            },
        }
    )
    versions_in_order = list(fakes)
    canary, stable = versions_in_order[-1], versions_in_order[0]
    created["status"] = {
        "traffic": traffic,
        "rollout": {"phase": phase, "canary": canary, "stable": stable, "weight": 50},
    }
    env.store.update_status(created)
    env.wait_routed(name, len(fakes))


def _evaluating(env: Env, name: str = "ep") -> EndpointRoute:
    def ready() -> EndpointRoute | None:
        route = env.gw.gateway.table.lookup(name)
        return route if isinstance(route, EndpointRoute) and route.evals is not None else None

    return wait_until(ready, timeout=10, what=f"the gateway to evaluate {name}")


def _samples(env: Env, version: str, name: str = "ep") -> list[dict[str, Any]]:
    params = {"endpoint": name, "version": version}
    return list(env.client.get("/_modelplane/samples", params=params).json()["samples"])


def _scores(env: Env, version: str) -> list[float]:
    return [s["score"] for s in _samples(env, version) if s["score"] is not None]


def test_sampled_answers_get_the_eval_sets_score_in_their_samples(env: Env) -> None:
    # given v1 answering right and v2 wrong, under a rollout that evaluates every answer
    right, wrong = env.fake("right", reply="4"), env.fake("wrong", reply="5")
    _rolling_out(env, {"v1": right, "v2": wrong}, {"sampleRate": 1.0, "cases": CASES})
    _evaluating(env)
    # when clients ask, streamed and not
    for i in range(16):
        r = env.chat("ep", QUESTION, stream=bool(i % 2))
        assert r.status_code == 200, r.text
    # then each answer's sample carries its score: 1 for v1's, 0 for v2's
    asked = {v: len(_samples(env, v)) for v in ("v1", "v2")}
    wait_until(
        lambda: all(len(_scores(env, v)) == asked[v] for v in asked),
        timeout=10,
        what="every sampled answer to be scored",
    )
    assert set(_scores(env, "v1")) == {1.0} and set(_scores(env, "v2")) == {0.0}
    # and the evaluations are counted by result
    text = env.client.get("/_modelplane/metrics").text
    assert (
        f'modelplane_gateway_evaluations_total{{model="ep",version="v1",result="scored"}} {asked["v1"]}'
        in text
    )


def test_no_answer_is_evaluated_when_no_rollout_is_in_progress(env: Env) -> None:
    # given the same eval block, but the rollout finished
    fake = env.fake("right", reply="4")
    _rolling_out(env, {"v1": fake}, {"sampleRate": 1.0, "cases": CASES}, phase="Succeeded")
    # when a client asks
    assert env.chat("ep", QUESTION).status_code == 200
    # then the sample carries no score, and the route no plan
    route = env.gw.gateway.table.lookup("ep")
    assert isinstance(route, EndpointRoute) and route.evals is None
    assert [s["score"] for s in _samples(env, "v1")] == [None]


def test_the_judge_model_is_called_through_the_gateway_and_its_grade_is_the_score(
    env: Env,
) -> None:
    # given a judge model served here (an Endpoint on a hosted fake answering "Score: 0.75")
    judge = env.fake("judge", reply="Score: 0.75")
    env.endpoint("grader", {}, upstream={"v1": judge})
    fake = env.fake("answering", reply="Paris")
    evals = {
        "sampleRate": 1.0,
        "judge": {"model": "grader", "prompt": "Q: {prompt}\nA: {answer}\nGrade it from 0 to 1."},
    }
    _rolling_out(env, {"v1": fake}, evals)
    _evaluating(env)
    # when a client asks
    assert env.chat("ep", "Capital of France?").status_code == 200
    # then the judge was asked with the prompt and the answer, and its grade is the score
    wait_until(lambda: _scores(env, "v1") == [0.75], timeout=10, what="the judge's grade")
    (asked,) = judge.bodies
    assert asked["messages"] == [
        {"role": "user", "content": "Q: Capital of France?\nA: Paris\nGrade it from 0 to 1."}
    ]
    # and the judge's call went through the gateway: counted as a request to the grader
    text = env.client.get("/_modelplane/metrics").text
    assert 'modelplane_gateway_requests_total{model="grader",version="v1",code="200"} 1' in text
    # and its own answer was not evaluated again
    assert 'evaluations_total{model="grader"' not in text


def test_the_judge_models_limits_apply_to_the_evaluations_calls(env: Env) -> None:
    # given a judge Endpoint allowing one request a minute
    judge = env.fake("judge", reply="1")
    env.endpoint("grader", {}, upstream={"v1": judge}, limits={"requestsPerMinute": 1})
    evals = {"sampleRate": 1.0, "judge": {"model": "grader", "prompt": "Grade: {answer}"}}
    _rolling_out(env, {"v1": env.fake("answering", reply="Paris")}, evals)
    _evaluating(env)
    # when three answers are evaluated
    for _ in range(3):
        assert env.chat("ep", "Capital?").status_code == 200

    def counted() -> dict[str, str]:
        text = env.client.get("/_modelplane/metrics").text
        prefix = 'modelplane_gateway_evaluations_total{model="ep",version="v1",result="'
        return {
            line[len(prefix) :].split('"')[0]: line.rsplit(" ", 1)[1]
            for line in text.splitlines()
            if line.startswith(prefix)
        }

    # then the judge's limit refused the calls past the first: one scored, two failed
    wait_until(lambda: counted() == {"scored": "1", "failed": "2"}, timeout=10, what="3 counted")
    assert judge.requests["/v1/chat/completions"] == 1
    assert _scores(env, "v1") == [1.0]


def test_a_full_queue_drops_evaluations_and_counts_them_without_holding_answers(
    env: Env,
) -> None:
    # given a judge that never answers, one worker and room for one waiting evaluation
    judge = env.fake("judge")
    judge.mode = "hang"
    env.endpoint("grader", {}, upstream={"v1": judge})
    evals = env.gw.gateway.evals
    evals.workers, evals.queue_size = 1, 1
    fake = env.fake("answering", reply="Paris")
    _rolling_out(
        env, {"v1": fake}, {"sampleRate": 1.0, "judge": {"model": "grader", "prompt": "{answer}"}}
    )
    _evaluating(env)
    # when clients ask more often than evaluations finish
    codes = [env.chat("ep", "Capital?").status_code for _ in range(6)]
    # then every client got its answer, and what did not fit the queue was dropped, counted
    assert codes == [200] * 6
    text = env.client.get("/_modelplane/metrics").text
    line = 'modelplane_gateway_evaluations_total{model="ep",version="v1",result="dropped"}'
    dropped = [ln for ln in text.splitlines() if ln.startswith(line)]
    assert dropped and int(dropped[0].rsplit(" ", 1)[1]) >= 3, text


def _route(rate: float) -> EndpointRoute:
    return EndpointRoute("default", "ep", "m", "chat", (), evals=EvalPlan(sample_rate=rate))


def _call(path: str = "/chat/completions") -> Call:
    return Call(path=path, body={}, raw=b"")


class _NoGateway:
    random = random.Random(0)
    table: Any = None

    async def serve(self, route: Any, call: Call) -> Any:
        raise AssertionError("not called")


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_a_share_of_answers_near_the_sample_rate_is_evaluated(rate: float) -> None:
    evals = Evaluations(_NoGateway(), Telemetry(), rng=random.Random(7))
    kept = sum(evals.sampled(_route(rate), _call()) for _ in range(4000))
    assert abs(kept / 4000 - rate) < 0.05


def test_none_is_evaluated_at_rate_0_all_at_rate_1_and_never_embeddings_or_the_judges_calls() -> (
    None
):
    evals = Evaluations(_NoGateway(), Telemetry())
    assert not any(evals.sampled(_route(0.0), _call()) for _ in range(100))
    assert all(evals.sampled(_route(1.0), _call()) for _ in range(100))
    assert not evals.sampled(_route(1.0), _call("/embeddings"))
    judges = _call()
    judges.principal = evaluator("default")
    assert not evals.sampled(_route(1.0), judges)
    no_plan = EndpointRoute("default", "ep", "m", "chat", ())
    assert not evals.sampled(no_plan, _call())
