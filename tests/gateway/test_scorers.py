"""The scorers of eval-gated canaries: an eval set's cases, and reading a judge model's grade."""

from __future__ import annotations

import orjson
import pytest

from modelplane.gateway._scorers import (
    EvalPlan,
    ScoringFailed,
    answer_text,
    eval_plan,
    judge_body,
    judge_score,
    last_prompt,
    score_cases,
)


def _plan(*cases: dict[str, str], judge: dict[str, str] | None = None) -> EvalPlan:
    block: dict[str, object] = {"sampleRate": 1.0, "cases": list(cases)}
    if judge is not None:
        block["judge"] = judge
    plan = eval_plan({"model": "m", "rollout": {"analysis": {"eval": block}}})
    assert plan is not None
    return plan


def test_an_exact_case_scores_1_for_the_expected_answer_and_0_for_another() -> None:
    plan = _plan({"prompt": "What is 2+2?", "expect": "exact", "answer": "4"})
    assert score_cases(plan.cases, "What is 2+2?", " 4\n") == 1.0
    assert score_cases(plan.cases, "What is 2+2?", "5") == 0.0
    assert score_cases(plan.cases, "What is 2+2?", "4, I think") == 0.0


def test_an_answer_no_case_applies_to_is_not_scored() -> None:
    plan = _plan({"prompt": "What is 2+2?", "expect": "exact", "answer": "4"})
    assert score_cases(plan.cases, "What is 3+3?", "6") is None


def test_a_regex_case_applies_to_the_prompts_it_finds_and_searches_the_answer() -> None:
    plan = _plan(
        {
            "prompt": r"capital of \w+",
            "promptMatch": "regex",
            "expect": "regex",
            "answer": "(?i)paris",
        }
    )
    assert score_cases(plan.cases, "What is the capital of France?", "It is PARIS.") == 1.0
    assert score_cases(plan.cases, "What is the capital of France?", "Lyon") == 0.0
    assert score_cases(plan.cases, "Name a river", "Seine") is None


def test_a_json_case_without_a_prompt_applies_to_every_answer() -> None:
    plan = _plan({"expect": "json"})
    assert score_cases(plan.cases, "anything", '{"city": "Paris"}') == 1.0
    assert score_cases(plan.cases, "anything", "Paris") == 0.0


def test_every_case_that_applies_must_pass() -> None:
    plan = _plan(
        {"expect": "json"},
        {"prompt": "city?", "expect": "regex", "answer": "Paris"},
    )
    assert score_cases(plan.cases, "city?", '{"city": "Paris"}') == 1.0
    assert score_cases(plan.cases, "city?", '{"city": "Lyon"}') == 0.0
    assert score_cases(plan.cases, "other", '{"city": "Lyon"}') == 1.0


def test_a_pattern_that_backtracks_forever_fails_the_scoring_instead_of_hanging() -> None:
    plan = _plan({"expect": "regex", "answer": "(a|aa)+$"})
    with pytest.raises(ScoringFailed, match="ran past"):
        score_cases(plan.cases, "p", "a" * 60 + "b")


@pytest.mark.parametrize(
    ("text", "grade"),
    [
        ("1", 1.0),
        ("0", 0.0),
        ("0.75", 0.75),
        (".5", 0.5),
        ("Score: 0.8 because the answer is right", 0.8),
        ("2", None),
        ("-0.5", None),
        ("I cannot grade this", None),
        ("", None),
    ],
)
def test_the_judge_grade_is_the_first_number_of_its_answer_within_0_and_1(
    text: str, grade: float | None
) -> None:
    assert judge_score(text) == grade


def test_the_judge_prompt_gets_the_prompt_and_answer_literally() -> None:
    plan = _plan(judge={"model": "grader", "prompt": "Q: {prompt}\nA: {answer}\nGrade 0-1."})
    assert plan.judge is not None
    body = judge_body(plan.judge, "What is {x}?", "It is {prompt} and {0}")
    assert body["model"] == "grader" and body["max_tokens"] == 16
    (message,) = body["messages"]
    assert message == {
        "role": "user",
        "content": "Q: What is {x}?\nA: It is {prompt} and {0}\nGrade 0-1.",
    }


def test_the_answer_text_is_read_from_a_json_answer_and_from_a_stream() -> None:
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris"}}]}
    assert answer_text(orjson.dumps(answer), streamed=False) == "Paris"
    events = b"".join(
        b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": delta}]}) + b"\n\n"
        for delta in ({"role": "assistant", "content": ""}, {"content": "Pa"}, {"content": "ris"})
    )
    assert answer_text(events + b"data: [DONE]\n\n", streamed=True) == "Paris"
    assert answer_text(b"not json", streamed=False) is None


def test_the_prompt_a_case_matches_is_the_last_user_message() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        ]
    }
    assert last_prompt("/chat/completions", body) == "What is 2+2?"
    assert last_prompt("/completions", {"prompt": ["2+2=", "3+3="]}) == "2+2="


def test_a_plan_is_none_without_an_eval_block_or_with_a_pattern_that_does_not_compile() -> None:
    assert eval_plan({"model": "m", "rollout": {"analysis": {}}}) is None
    broken = {"cases": [{"expect": "regex", "answer": "("}]}
    assert eval_plan({"rollout": {"analysis": {"eval": broken}}}) is None
