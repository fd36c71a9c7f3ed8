"""How a sampled answer is scored: an eval set shipped with the Endpoint, or a judge model's grade.

Owns the meaning of ``spec.rollout.analysis.eval`` for one (prompt, answer) pair, as pure
functions the evaluation queue (``modelplane.gateway._evals``) calls off the request path:

* :func:`eval_plan` compiles the block once per routing-table build (an :class:`EvalPlan`);
* :func:`score_cases`: the cases that apply to the prompt (``prompt`` unset, equal to it, or found
  in it with ``promptMatch: regex``) all pass -> 1.0, one fails -> 0.0, none applies -> None.
  ``exact`` compares without surrounding whitespace, ``regex`` searches, ``json`` parses;
* :func:`judge_body` is the chat request sent to the judge model, :func:`judge_score` reads its
  answer: the **first number in the text** (``-?\\d+(\\.\\d+)?`` or ``.5``), which must lie in 0..1;
  otherwise (no number, or one outside) the answer is not scored.

Patterns are matched with the ``regex`` library rather than ``re``: it takes a timeout, so an
Endpoint's pathological pattern (catastrophic backtracking) costs about :data:`MATCH_TIMEOUT`
seconds per match and the evaluation is counted failed, and it releases the GIL while matching
(the evaluation queue scores in a worker thread), so the gateway's loop is never stalled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
import regex  # type: ignore[import-untyped]

log = logging.getLogger("modelplane.gateway")

#: the longest a pattern may search one prompt or answer, in seconds
MATCH_TIMEOUT = 0.05
#: the longest answer (characters) an evaluation reads; a longer one is cut here
MAX_ANSWER_CHARS = 64 * 1024

_NUMBER = regex.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)")


class ScoringFailed(Exception):
    """A scorer could not decide (a pattern ran past its timeout)."""


@dataclass(frozen=True, slots=True)
class Case:
    """One compiled case of an eval set."""

    prompt: str | None
    prompt_pattern: regex.Pattern[str] | None
    expect: str
    answer: str | None
    answer_pattern: regex.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class JudgeModel:
    """The judge: a model name in the Endpoint's namespace and its grading prompt."""

    model: str
    prompt: str
    max_tokens: int = 16


@dataclass(frozen=True, slots=True)
class EvalPlan:
    """An Endpoint's ``spec.rollout.analysis.eval``, compiled."""

    sample_rate: float
    cases: tuple[Case, ...] = ()
    judge: JudgeModel | None = None


def eval_plan(spec: Any) -> EvalPlan | None:
    """The plan of an Endpoint's spec (validated JSON, camelCase), or None when it has none (or
    one that does not compile: admission refuses those, so only a store written around it holds
    one, and its Endpoint is still served)."""
    if not isinstance(spec, dict):
        return None
    block = ((spec.get("rollout") or {}).get("analysis") or {}).get("eval")
    if not isinstance(block, dict):
        return None
    try:
        return _compiled(block)
    except (regex.error, KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning("spec.rollout.analysis.eval ignored: %s", exc)
        return None


def _compiled(block: dict[str, Any]) -> EvalPlan:
    cases = []
    for raw in block.get("cases") or []:
        prompt, answer, expect = raw.get("prompt"), raw.get("answer"), str(raw["expect"])
        regex_prompt = raw.get("promptMatch") == "regex" and prompt is not None
        cases.append(
            Case(
                prompt=None if prompt is None else str(prompt),
                prompt_pattern=regex.compile(str(prompt)) if regex_prompt else None,
                expect=expect,
                answer=None if answer is None else str(answer),
                answer_pattern=regex.compile(str(answer)) if expect == "regex" else None,
            )
        )
    judge = block.get("judge")
    return EvalPlan(
        sample_rate=float(block.get("sampleRate", 0.1)),
        cases=tuple(cases),
        judge=None
        if not isinstance(judge, dict)
        else JudgeModel(
            model=str(judge["model"]),
            prompt=str(judge["prompt"]),
            max_tokens=int(judge.get("maxTokens") or 16),
        ),
    )


def _search(pattern: regex.Pattern[str], text: str) -> bool:
    try:
        # concurrent: the GIL is released while it matches, so the gateway's loop runs on
        return pattern.search(text, timeout=MATCH_TIMEOUT, concurrent=True) is not None
    except TimeoutError:
        raise ScoringFailed(
            f"the pattern {pattern.pattern!r} ran past {MATCH_TIMEOUT}s; simplify it"
        ) from None


def _applies(case: Case, prompt: str) -> bool:
    if case.prompt is None:
        return True
    if case.prompt_pattern is not None:
        return _search(case.prompt_pattern, prompt)
    return prompt.strip() == case.prompt.strip()


def _passes(case: Case, answer: str) -> bool:
    if case.expect == "json":
        try:
            orjson.loads(answer)
        except orjson.JSONDecodeError:
            return False
        return True
    if case.answer_pattern is not None:
        return _search(case.answer_pattern, answer)
    return answer.strip() == (case.answer or "").strip()


def score_cases(cases: tuple[Case, ...], prompt: str, answer: str) -> float | None:
    """1.0 when every case that applies to ``prompt`` passes, 0.0 when one fails, None when
    none applies; raises ScoringFailed when a pattern runs past its timeout."""
    answer = answer[:MAX_ANSWER_CHARS]
    applied = [c for c in cases if _applies(c, prompt)]
    if not applied:
        return None
    return 1.0 if all(_passes(c, answer) for c in applied) else 0.0


def judge_body(judge: JudgeModel, prompt: str, answer: str) -> dict[str, Any]:
    """The chat request asking ``judge`` to grade ``answer`` to ``prompt``.

    The placeholders are replaced literally (no format mini-language), ``{answer}`` last so that
    an answer holding the text ``{prompt}`` is left as it is."""
    text = judge.prompt.replace("{prompt}", prompt).replace("{answer}", answer[:MAX_ANSWER_CHARS])
    return {
        "model": judge.model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": judge.max_tokens,
        "temperature": 0,
    }


def judge_score(text: str) -> float | None:
    """The judge's grade: the first number in its answer, when it lies in 0..1; else None."""
    found = _NUMBER.search(text)
    if found is None:
        return None
    value = float(found.group())
    return value if 0.0 <= value <= 1.0 else None


def last_prompt(path: str, body: dict[str, Any]) -> str:
    """What a case's ``prompt`` is matched against: the last user message of a chat request
    (its text parts joined), or a completion's prompt (a list's first string)."""
    if path == "/chat/completions":
        for message in reversed(body.get("messages") or []):
            if isinstance(message, dict) and message.get("role") == "user":
                return _text(message.get("content"))
        return ""
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        prompt = prompt[0] if prompt and isinstance(prompt[0], str) else ""
    return prompt if isinstance(prompt, str) else ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def answer_text(content: bytes, *, streamed: bool) -> str | None:
    """The first choice's text of an OpenAI answer: a JSON body, or the SSE events of a stream
    (their deltas joined); None when there is none to read."""
    if not streamed:
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            return None
        return _choice_text(data, delta=False) if isinstance(data, dict) else None
    parts: list[str] = []
    found = False
    for line in content.split(b"\n"):
        if not line.startswith(b"data: {"):
            continue
        try:
            event = orjson.loads(line[6:])
        except orjson.JSONDecodeError:
            continue
        piece = _choice_text(event, delta=True) if isinstance(event, dict) else None
        if piece is not None:
            found = True
            parts.append(piece)
    return "".join(parts) if found else None


def _choice_text(data: dict[str, Any], *, delta: bool) -> str | None:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    if "text" in choice:  # a completion
        return str(choice.get("text") or "")
    message = choice.get("delta" if delta else "message")
    if not isinstance(message, dict):
        return None
    return _text(message.get("content"))
