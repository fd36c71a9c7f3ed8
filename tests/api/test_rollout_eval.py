"""``spec.rollout.analysis.eval``: an eval set or a judge model; accepted with defaults, refused
with the field's path and the fix, and published in the JSON Schema."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane import api
from modelplane.api import errors

from . import _objects


def _with_eval(block: Any) -> dict[str, Any]:
    ep = _objects.endpoint()
    ep["spec"]["rollout"] = {"analysis": {"eval": block}}
    return ep


def _causes(obj: Any) -> dict[str, str]:
    with pytest.raises(errors.Invalid) as caught:
        api.validate(obj)
    return {c.field: c.message for c in caught.value.causes}


EVAL = "spec.rollout.analysis.eval"


def test_an_eval_set_is_accepted_with_its_defaults() -> None:
    out = api.validate(
        _with_eval({"cases": [{"prompt": "2+2?", "expect": "exact", "answer": "4"}]})
    )
    block = out["spec"]["rollout"]["analysis"]["eval"]
    assert block["sampleRate"] == 0.1 and block["scoreMargin"] == 0.1
    assert block["cases"] == [
        {"prompt": "2+2?", "promptMatch": "exact", "expect": "exact", "answer": "4"}
    ]


def test_a_judge_model_is_accepted_with_its_grading_prompt() -> None:
    judge = {"model": "grader", "prompt": "Q: {prompt} A: {answer} Grade 0 to 1."}
    out = api.validate(_with_eval({"sampleRate": 0.5, "judge": judge}))
    assert out["spec"]["rollout"]["analysis"]["eval"]["judge"] == {**judge, "maxTokens": 16}


def test_an_eval_without_a_scorer_is_refused() -> None:
    assert "give an eval set (cases) or a judge model" in _causes(_with_eval({}))[f"{EVAL}.cases"]


def test_a_sample_rate_outside_0_to_1_is_refused() -> None:
    causes = _causes(_with_eval({"sampleRate": 1.5, "cases": [{"expect": "json"}]}))
    assert f"{EVAL}.sampleRate" in causes


def test_cases_are_refused_at_their_index_with_the_fix() -> None:
    cases = [
        {"expect": "regex", "answer": "(unclosed"},
        {"expect": "exact"},
        {"expect": "json", "answer": "{}"},
        {"prompt": "[", "promptMatch": "regex", "expect": "json"},
        {"expect": "contains", "answer": "x"},
    ]
    causes = _causes(_with_eval({"cases": cases}))
    assert "is not a regular expression" in causes[f"{EVAL}.cases[0].answer"]
    assert "needs the expected answer" in causes[f"{EVAL}.cases[1].answer"]
    assert "takes no answer" in causes[f"{EVAL}.cases[2].answer"]
    assert "is not a regular expression" in causes[f"{EVAL}.cases[3].prompt"]
    assert f"{EVAL}.cases[4].expect" in causes


def test_a_judge_prompt_without_the_answer_or_naming_the_endpoint_itself_is_refused() -> None:
    causes = _causes(_with_eval({"judge": {"model": "grader", "prompt": "Grade it."}}))
    assert "must contain {answer}" in causes[f"{EVAL}.judge.prompt"]
    causes = _causes(_with_eval({"judge": {"model": "chat", "prompt": "{answer}"}}))
    assert "a judge must be another model" in causes[f"{EVAL}.judge.model"]
    causes = _causes(_with_eval({"judge": {"model": "other/grader", "prompt": "{answer}"}}))
    assert f"{EVAL}.judge.model" in causes  # a name in this namespace, never another tenant's


def test_the_json_schema_describes_the_eval_block() -> None:
    text = str(api.json_schema("Endpoint"))
    for name in ("sampleRate", "scoreMargin", "promptMatch", "maxTokens"):
        assert name in text
