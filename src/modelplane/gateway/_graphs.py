"""Graphs served as one model name: Sequence, Switch, Ensemble and Splitter nodes.

A Graph answers chat completions. Each endpoint step is an ordinary (non-streamed) request through
the gateway's one request path (:meth:`Gateway.serve`), so it gets everything a client's request
to that endpoint gets: the endpoint's limits and budget for the calling principal,
split, routing, retries, fallbacks, metrics and samples, and a span of its own, the child of the
Graph request's span. A step refused or failed fails the Graph request with the step's status
and error code (a 429 keeps its ``Retry-After``), its message naming the step and the endpoint.
A streamed request to a Graph streams: every step before the one whose answer is the Graph's runs
as before, and that last step (a Sequence's last, the step a Switch or Splitter chose, through
nested nodes) is asked to stream through the same request path, its chunks relayed to the client
as they come (their ``model`` is the endpoint that answered, as OpenAI names the model that
served). An Ensemble merges whole answers, so a Graph whose answer is an Ensemble's arrives as
one chunk once merged.

* **Sequence**: the first step gets the client's request; each next step gets the previous
  step's answer as its (only) user message. The node's answer is the last step's. An endpoint
  step's ``system`` goes first in the messages it sends (how to treat that input).
* **Switch**: the first step whose ``condition`` holds runs. Conditions are CEL over ``request``
  (the client's JSON body) and ``response`` (the answer of the step before, inside a Sequence:
  ``{"content", "model", "usage"}``; empty at the start). A condition that fails to evaluate (a
  missing field, say) counts as false; use ``has(request.user)`` to test presence.
* **Ensemble**: every step runs in parallel on the same request; answers are merged by the
  node's ``merge``: ``concatenate`` (default, in step order, separated by a blank line),
  ``longest``, ``shortest`` or ``first`` (the first step that answered). A node without ``merge``
  falls back to the Graph's deprecated ``modelplane.dev/ensemble-merge`` annotation. Steps that
  failed are left out; the node fails only when all did.
* **Splitter**: one step, chosen at random by ``weight``.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import cel
import orjson
from opentelemetry import trace
from starlette.responses import Response, StreamingResponse

from modelplane.api import Principal
from modelplane.gateway._call import Call, parse_call
from modelplane.gateway._errors import GatewayError
from modelplane.gateway._table import EndpointRoute, GraphRoute, Route, RoutingTable
from modelplane.gateway._telemetry import (
    end_request_span,
    ends_on_failure,
    record_answer,
    start_request_span,
)


@dataclass(frozen=True, slots=True)
class _Answer:
    content: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_cel(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "model": self.model,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
            },
        }


@lru_cache(maxsize=1024)
def _compile(expression: str) -> Any:
    return cel.compile(expression)


class Serving(Protocol):
    """What a Graph needs of the gateway: its routes, its random source, and its one request
    path for each step (declared here, below the gateway, which imports this module)."""

    random: random.Random
    table: RoutingTable

    async def serve(self, route: Route, call: Call) -> Response: ...


async def run_graph(gateway: Serving, route: GraphRoute, call: Call) -> Response:
    """Run ``route``'s graph for one chat completion request, traced as one span."""
    if call.path != "/chat/completions":
        raise GatewayError(
            400,
            f"Graph {route.name!r} serves chat completions only (POST /v1/chat/completions).",
            code="unsupported_operation",
        )
    span = start_request_span(call.path, route.name, call.body)
    span.set_attribute("modelplane.graph", route.key)
    # the steps' spans start while this one is current: they become its children
    runner = _Runner(gateway, route, call.principal, stream=call.stream)
    runner.priority = call.priority
    with ends_on_failure(span), trace.use_span(span, end_on_exit=False):
        answer = await runner.node(route.graph.spec.root, call.body, None, last=True)
    if isinstance(answer, _Streamed):  # the last step streams; its own span times the stream
        end_request_span(span, code=answer.response.status_code)
        answer.response.headers["x-modelplane-graph"] = route.name
        return answer.response
    created = int(time.time())
    usage = {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }
    body = {
        "id": f"graph-{created}",
        "object": "chat.completion",
        "created": created,
        "model": route.name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }
    content = orjson.dumps(body)
    record_answer(span, content)
    end_request_span(span, code=200)
    headers = {"x-modelplane-graph": route.name}
    if not call.stream:
        return Response(content, media_type="application/json", headers=headers)
    events = []
    for delta, finish in (
        ({"role": "assistant", "content": answer.content}, None),
        ({}, "stop"),
    ):
        chunk = {
            "id": f"graph-{created}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": route.name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return Response(b"".join(events), media_type="text/event-stream", headers=headers)


@dataclass(frozen=True, slots=True)
class _Streamed:
    """The Graph's last step, streaming: its response is relayed to the client as it is."""

    response: Response


class _Runner:
    """Runs one request through a Graph's nodes; ``stream``: the step whose answer is the
    Graph's streams (``last`` marks the path to it)."""

    def __init__(
        self, gateway: Serving, route: GraphRoute, principal: Principal, *, stream: bool = False
    ) -> None:
        self.principal = principal
        #: the class the client named: each step is classed by it at its own endpoint
        self.priority: str | None = None
        self.gateway = gateway
        self.route = route
        self.nodes = route.graph.spec.nodes
        self.stream = stream

    async def node(
        self, name: str, body: dict[str, Any], previous: _Answer | None, *, last: bool = False
    ) -> _Answer | _Streamed:
        node = self.nodes[name]
        steps = node.steps
        if node.type == "Sequence":
            answer = previous
            prompt = completion = 0
            current = body
            for i, step in enumerate(steps):
                result = await self.step(step, current, answer, last=last and i == len(steps) - 1)
                if isinstance(result, _Streamed):
                    return result
                answer = result
                prompt += answer.prompt_tokens
                completion += answer.completion_tokens
                current = {**body, "messages": [{"role": "user", "content": answer.content}]}
            assert answer is not None
            return _Answer(answer.content, answer.model, prompt, completion)
        if node.type == "Switch":
            context = cel.Context()
            context.add_variable("request", body)
            context.add_variable("response", previous.as_cel() if previous else {})
            for i, step in enumerate(steps):
                if self._holds(name, i, step.condition or "false", context):
                    return await self.step(step, body, previous, last=last)
            raise GatewayError(
                400,
                f"Graph {self.route.name!r}: no condition of Switch node {name!r} holds for this"
                " request; add a last step with condition 'true' as the default.",
                code="no_route",
            )
        if node.type == "Ensemble":
            results = await asyncio.gather(
                *(self.step(s, body, previous) for s in steps), return_exceptions=True
            )  # merged whole: none streams
            answers = [r for r in results if isinstance(r, _Answer)]
            if not answers:
                first = results[0]
                if isinstance(first, BaseException):
                    raise first
            return self._merge(answers, node.merge or self.route.ensemble_merge)
        # Splitter
        weights = [s.weight or 0 for s in steps]
        (chosen,) = self.gateway.random.choices(steps, weights=weights)
        return await self.step(chosen, body, previous, last=last)

    def _holds(self, node: str, index: int, expression: str, context: Any) -> bool:
        try:
            program = _compile(expression)
        except ValueError as exc:
            first = str(exc).strip().splitlines()[0]
            raise GatewayError(
                400,
                f"Graph {self.route.name!r}: nodes.{node}.steps[{index}].condition does not parse:"
                f" {first}",
                code="invalid_graph",
            ) from None
        try:
            return program.execute(context) is True
        except Exception:  # a missing field or a type mismatch: the condition does not hold
            return False

    def _merge(self, answers: list[_Answer], how: str) -> _Answer:
        prompt = sum(a.prompt_tokens for a in answers)
        completion = sum(a.completion_tokens for a in answers)
        if how == "longest":
            pick = max(answers, key=lambda a: len(a.content))
        elif how == "shortest":
            pick = min(answers, key=lambda a: len(a.content))
        elif how == "first":
            pick = answers[0]
        else:
            text = "\n\n".join(a.content for a in answers)
            return _Answer(text, self.route.name, prompt, completion)
        return _Answer(pick.content, pick.model, prompt, completion)

    async def step(
        self, step: Any, body: dict[str, Any], previous: _Answer | None, *, last: bool = False
    ) -> _Answer | _Streamed:
        if step.node is not None:
            return await self.node(step.node, body, previous, last=last)
        assert step.endpoint is not None
        target = self.gateway.table.lookup(step.endpoint, self.route.namespace)
        if not isinstance(target, EndpointRoute):
            raise GatewayError(
                503,
                f"Graph {self.route.name!r} calls endpoint {step.endpoint!r}, which is not served"
                f" in namespace {self.route.namespace!r}.",
                type="service_unavailable",
                code="graph_step_unavailable",
                retry_after=2.0,
            )
        streams = self.stream and last
        request = {**body, "model": step.endpoint, "stream": streams}
        if step.system is not None:
            messages = body.get("messages")
            request["messages"] = [
                {"role": "system", "content": step.system},
                *(messages if isinstance(messages, list) else []),
            ]
        if not streams:
            request.pop("stream_options", None)
        # parsed as a client's request is, so the step has the same prompt estimate for
        # admission and prefix routing; it is the same caller (limits, access, audit)
        _, call = parse_call("/chat/completions", orjson.dumps(request), None)
        call.step = step.name or step.endpoint
        call.principal = self.principal
        call.priority = self.priority
        what = (
            f"Graph {self.route.name!r}: step {step.name or step.endpoint!r}"
            f" (endpoint {target.key})"
        )
        try:
            response = await self.gateway.serve(target, call)
        except GatewayError as exc:
            raise GatewayError(
                exc.status,
                f"{what} {'was refused' if exc.status == 429 else 'failed'}: {exc.message}",
                type=exc.type,
                code=exc.code,
                param=exc.param,
                retry_after=exc.retry_after,
            ) from None
        if streams and isinstance(response, StreamingResponse):
            return _Streamed(response)
        content = bytes(response.body)
        if response.status_code != 200:
            raise GatewayError(
                response.status_code,
                f"{what} failed: {_message(content)}",
                type="upstream_error",
                code="graph_step_failed",
            )
        data = orjson.loads(content)
        message = (data.get("choices") or [{}])[0].get("message") or {}
        usage = data.get("usage") or {}
        return _Answer(
            str(message.get("content") or ""),
            step.endpoint,
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
        )


def _message(content: bytes) -> str:
    try:
        return str(orjson.loads(content)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return content[:200].decode(errors="replace")
