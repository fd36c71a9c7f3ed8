"""Evaluations of sampled answers, off the request path: the gateway's side of eval-gated canaries.

While an Endpoint's rollout is in progress (its route carries an :class:`EvalPlan`), each answer
of each version is kept with probability ``sampleRate`` (:meth:`Evaluations.sampled`): its prompt
and answer go into a bounded queue (:meth:`Evaluations.offer`, which never waits: when the queue
is full the evaluation is dropped and counted ``dropped``), and worker tasks on the gateway's loop
score them (``modelplane.gateway._scorers``): the eval set at once, the judge model through the
gateway's one request path (:meth:`Gateway.serve` with a :class:`Call`, like a Graph step), so
that the judge's limits, runtime Policies, traces and metrics apply. The judge is looked up by
name in the Endpoint's own namespace and called as the principal
``system:serviceaccount:<namespace>:modelplane-evaluator``, never at a URL of anyone's choosing.

The score (the mean of the scorers that gave one) is written into the request's own sample, so
``GET /v1/_modelplane/samples`` returns it and the rollout judge compares the canary's scores
with the stable's. Each evaluation is counted in ``modelplane_gateway_evaluations_total`` by
result: ``scored``, ``unscored``, ``failed`` or ``dropped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass

import orjson

from modelplane.api import SERVICE_ACCOUNT_PREFIX, Principal
from modelplane.gateway._call import Call, parse_call
from modelplane.gateway._errors import GatewayError
from modelplane.gateway._graphs import Serving
from modelplane.gateway._scorers import (
    EvalPlan,
    ScoringFailed,
    answer_text,
    judge_body,
    judge_score,
    last_prompt,
    score_cases,
)
from modelplane.gateway._table import EndpointRoute
from modelplane.gateway._telemetry import RequestSample, Telemetry

log = logging.getLogger("modelplane.gateway")

#: the service account the judge model is called as, in the evaluated Endpoint's namespace
EVALUATOR = "modelplane-evaluator"


def evaluator(namespace: str) -> Principal:
    """The principal judge calls are made as: a service account of ``namespace``."""
    return Principal(f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{EVALUATOR}")


@dataclass(frozen=True, slots=True)
class _Item:
    route: EndpointRoute
    plan: EvalPlan
    version: str
    prompt: str
    answer: bytes
    streamed: bool
    sample: RequestSample


class Evaluations:
    """The sampling, the bounded queue and the workers of one gateway (see the module docstring).

    ``queue_size``: evaluations waiting at most (more are dropped); ``workers``: evaluations
    scored at once (each judge call holds one).
    """

    def __init__(
        self,
        gateway: Serving,
        telemetry: Telemetry,
        *,
        queue_size: int = 256,
        workers: int = 4,
        rng: random.Random | None = None,
    ) -> None:
        self.gateway = gateway
        self.telemetry = telemetry
        self.queue_size = queue_size
        self.workers = workers
        self.random = rng or random.Random()
        self._queue: asyncio.Queue[_Item] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def sampled(self, route: EndpointRoute, call: Call) -> bool:
        """Whether this answer is kept for an evaluation (decided before it is relayed)."""
        plan = route.evals
        if plan is None or plan.sample_rate <= 0 or call.path == "/embeddings":
            return False
        if call.principal.name == evaluator(route.namespace).name:
            return False  # a judge's own answer is not evaluated again
        return plan.sample_rate >= 1 or self.random.random() < plan.sample_rate

    def consider(
        self,
        route: EndpointRoute,
        version: str,
        call: Call,
        sample: RequestSample,
        answer: bytes | None,
    ) -> None:
        """Offer a whole (non-streamed) answer when it is sampled; None: it was not a success."""
        if answer is not None and self.sampled(route, call):
            self.offer(route, version, call, answer, sample, streamed=False)

    def offer(
        self,
        route: EndpointRoute,
        version: str,
        call: Call,
        answer: bytes,
        sample: RequestSample,
        *,
        streamed: bool,
    ) -> None:
        """Queue one evaluation; never waits (a full queue drops it, counted ``dropped``)."""
        if route.evals is None or sample.error:
            return
        item = _Item(
            route,
            route.evals,
            version,
            last_prompt(call.path, call.body),
            answer,
            streamed,
            sample,
        )
        try:
            self._ensure_workers().put_nowait(item)
        except (asyncio.QueueFull, RuntimeError):  # RuntimeError: no loop (a stream finalised late)
            self._count(item, "dropped")

    def _ensure_workers(self) -> asyncio.Queue[_Item]:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:
            # one queue and its workers per serving loop, as the gateway keeps one client
            self._loop = loop
            self._queue = asyncio.Queue(self.queue_size)
            self._tasks = [loop.create_task(self._work(self._queue)) for _ in range(self.workers)]
        return self._queue

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._queue = None

    async def _work(self, queue: asyncio.Queue[_Item]) -> None:
        while True:
            item = await queue.get()
            try:
                result = await self.evaluate(item)
            except Exception:  # never let a worker die; the evaluation counts as failed
                log.exception("evaluating an answer of %s failed", item.route.key)
                result = "failed"
            self._count(item, result)

    async def evaluate(self, item: _Item) -> str:
        """Score one sampled answer into its sample; the result to count."""
        answer = answer_text(item.answer, streamed=item.streamed)
        if answer is None:
            return "unscored"
        scores: list[float] = []
        try:
            by_cases = (
                await asyncio.to_thread(score_cases, item.plan.cases, item.prompt, answer)
                if item.plan.cases
                else None
            )
        except ScoringFailed as exc:
            log.warning("evaluation of %s: %s", item.route.key, exc)
            return "failed"
        if by_cases is not None:
            scores.append(by_cases)
        if item.plan.judge is not None:
            graded = await self._judge(item, answer)
            if graded == "failed" and not scores:
                return "failed"
            if isinstance(graded, float):
                scores.append(graded)
        if not scores:
            return "unscored"
        item.sample.score = sum(scores) / len(scores)
        return "scored"

    async def _judge(self, item: _Item, answer: str) -> float | str:
        """The judge model's grade of ``answer``, or "unscored" / "failed"."""
        judge = item.plan.judge
        assert judge is not None
        route = self.gateway.table.lookup(judge.model, item.route.namespace)
        if route is None:
            log.warning(
                "evaluation of %s: the judge model %r is not served in namespace %s",
                item.route.key,
                judge.model,
                item.route.namespace,
            )
            return "failed"
        body = judge_body(judge, item.prompt, answer)
        _, call = parse_call("/chat/completions", orjson.dumps(body), None)
        call.principal = evaluator(item.route.namespace)
        try:
            response = await self.gateway.serve(route, call)
        except GatewayError as exc:
            log.warning("evaluation of %s: the judge failed: %s", item.route.key, exc.message)
            return "failed"
        content = getattr(response, "body", None)
        if response.status_code != 200 or not isinstance(content, bytes | memoryview):
            return "failed"
        text = answer_text(bytes(content), streamed=False)
        grade = judge_score(text or "")
        return "unscored" if grade is None else grade

    def _count(self, item: _Item, result: str) -> None:
        self.telemetry.count_evaluation(item.route.namespace, item.route.name, item.version, result)
