"""Spans recorded by the real OpenTelemetry SDK with an in-memory exporter, for trace tests."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.control._wait import wait_until

_EXPORTER = InMemorySpanExporter()


def exporter() -> InMemorySpanExporter:
    """The process's global tracer provider, set once to the SDK with the in-memory exporter
    (a global provider can be set only once per process), emptied."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        sdk = TracerProvider()
        sdk.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(sdk)
    assert isinstance(trace.get_tracer_provider(), TracerProvider)
    _EXPORTER.clear()
    return _EXPORTER


def requests(exporter: InMemorySpanExporter, count: int) -> list[ReadableSpan]:
    """The finished root spans, once there are at least ``count``."""

    def done() -> list[ReadableSpan] | None:
        found = [s for s in exporter.get_finished_spans() if s.parent is None]
        return found if len(found) >= count else None

    return wait_until(done, timeout=10, what=f"{count} finished request span(s)")


def children(exporter: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    """The finished spans whose parent is ``parent``, in the order they started."""
    assert parent.context is not None
    found = [
        s
        for s in exporter.get_finished_spans()
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]
    return sorted(found, key=lambda s: s.start_time or 0)
