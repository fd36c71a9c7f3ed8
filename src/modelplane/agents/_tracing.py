"""Spans of the agent runtime, with OpenTelemetry's GenAI agent conventions.

One span per turn attempt in this process, ``invoke_agent {agent}`` (``gen_ai.operation.name``
``invoke_agent``, ``gen_ai.agent.name``, ``gen_ai.agent.id`` the instance), and under it one span
per step that runs (a step replayed from the journal runs no more, so it has none): a tool call
is ``execute_tool {server}.{tool}`` (``gen_ai.tool.name``), any other step ``step {name}``. A
model call sends the current span's W3C trace context to the gateway, whose request span (and
the replica's) join the turn's trace. A turn that sleeps durably and resumes after a restart
continues in a new span. Spans go to the global tracer provider: no-ops unless one is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

_tracer = trace.get_tracer("modelplane.agents")


@contextmanager
def turn_span(namespace: str, agent: str, instance: str) -> Iterator[Span]:
    """The current span of one turn attempt of ``namespace/agent/instance``."""
    with _tracer.start_as_current_span(f"invoke_agent {agent}", kind=SpanKind.INTERNAL) as span:
        if span.is_recording():
            span.set_attributes(
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": agent,
                    "gen_ai.agent.id": f"{namespace}/{agent}/{instance}",
                }
            )
        yield span


@contextmanager
def step_span(step: str) -> Iterator[Span]:
    """The current span of one step that runs (``tool:server.tool``, ``model:name``...)."""
    kind, _, what = step.partition(":")
    name = f"execute_tool {what}" if kind == "tool" else f"step {step}"
    with _tracer.start_as_current_span(name, kind=SpanKind.INTERNAL) as span:
        if kind == "tool" and span.is_recording():
            span.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": what})
        yield span


def trace_headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current span, for a call made inside it."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
