"""What the gateway observes: per-version request samples (for canary analysis) and metrics.

Samples: per (namespace, endpoint, version) a bounded window of the most recent requests, each
a :class:`RequestSample` ``(t, ttft_s, tpot_s, error, score)`` with ``t`` in seconds since the
epoch and ``score`` set later when the answer was sampled for an evaluation (``modelplane
.gateway._evals``; None until then, and for answers not evaluated). A streamed answer's TTFT is
its first chunk and its TPOT the rest of the stream over its tokens after the first. A
non-streamed answer's TTFT is its whole duration (its first token reached the client with the
rest) and its TPOT the one the worker reports in ``Server-Timing`` (:func:`answered_tpot`);
``tpot_s`` is null where it cannot be known (one token, or an upstream that reports no timing),
never a made-up 0. The rollout analysis reads
them at ``GET /v1/_modelplane/samples``; a window holds ``samples_per_version`` entries, so memory
stays bounded however long the gateway runs.

Metrics, in Prometheus text at ``/v1/_modelplane/metrics`` (and ``/metrics`` when the gateway runs
alone): ``modelplane_gateway_requests_total{model,version,code}``,
``modelplane_gateway_output_tokens_total{model,version}`` (completion tokens, as the upstream
reported them, else estimated), ``modelplane_gateway_time_to_first_token_seconds`` and
``modelplane_gateway_request_duration_seconds`` (histograms by model and version),
``modelplane_gateway_evaluations_total{model,version,result}`` (answers sampled for an evaluation:
``scored``, ``unscored`` when no scorer applied or the judge named no number in 0..1, ``failed``,
``dropped`` when the evaluation queue was full). Beside them, OpenTelemetry's GenAI metrics as a
Prometheus exporter names them, with the conventions' buckets and labels
(``gen_ai_operation_name``, ``gen_ai_provider_name`` = ``modelplane``, ``gen_ai_request_model``):
``gen_ai_client_token_usage`` (``gen_ai_token_type`` ``input`` or ``output``; input only when
the answer reported its usage, as the conventions ask), ``gen_ai_client_operation_duration_seconds``
(``error_type`` on failures), and, measured where the gateway relays a replica's stream,
``gen_ai_server_time_to_first_token_seconds`` and ``gen_ai_server_time_per_output_token_seconds``.

Traces: one OpenTelemetry span per request (kind CLIENT, named ``"{operation} {model}"``, with
the GenAI conventions' ``gen_ai.*`` attributes, ``server.address``/``server.port`` of the replica
that answered, ``error.type`` on failure, and ``modelplane.endpoint``/``.version``/``.replica``),
with one child span per upstream attempt so retries show. A Graph request's span
(``modelplane.graph``) holds one such request span per endpoint step (``modelplane.graph.step``).
Spans go to the global tracer provider of ``opentelemetry.trace``, a no-op unless something
configured one: then a request costs one no-op span and no attribute work.
:func:`configure_tracing` sets an SDK provider from the environment
(``OTEL_EXPORTER_OTLP_ENDPOINT``: OTLP over HTTP; ``MODELPLANE_TRACE=console``: spans printed to
stdout).
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from modelplane.gateway._errors import GatewayError

GEN_AI_ATTRIBUTES = (
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.request.max_tokens",
    "gen_ai.request.temperature",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.response.finish_reasons",
)
"""The OpenTelemetry GenAI attributes the gateway's request spans carry (when known)."""

OPERATIONS = {
    "/chat/completions": "chat",
    "/completions": "text_completion",
    "/embeddings": "embeddings",
}
"""``gen_ai.operation.name`` of each OpenAI path the gateway serves."""

log = logging.getLogger("modelplane.gateway")
_tracer = trace.get_tracer("modelplane.gateway")
_configured = threading.Lock()
_done = False

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(slots=True)
class RequestSample:
    """One finished request (or failed attempt) to one version; ``score`` is set afterwards."""

    t: float
    ttft: float | None
    tpot: float | None
    error: bool
    score: float | None = None


#: the GenAI conventions' explicit bucket boundaries, per metric
_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
_TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
#: name, help, buckets of each GenAI histogram
_GENAI = {
    "tokens": (
        "gen_ai_client_token_usage",
        "Number of input and output tokens used.",
        _TOKEN_BUCKETS,
    ),
    "duration": (
        "gen_ai_client_operation_duration_seconds",
        "GenAI operation duration.",
        _DURATION_BUCKETS,
    ),
    "ttft": (
        "gen_ai_server_time_to_first_token_seconds",
        "Time to generate the first token, for successful streamed responses.",
        _TTFT_BUCKETS,
    ),
    "tpot": (
        "gen_ai_server_time_per_output_token_seconds",
        "Time per output token after the first, for successful responses.",
        _TPOT_BUCKETS,
    ),
}


@dataclass(slots=True)
class _Histogram:
    buckets: tuple[float, ...] = _BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: str) -> Iterator[str]:
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            yield f'{name}_bucket{{{labels},le="{bound}"}} {cumulative}'
        yield f'{name}_bucket{{{labels},le="+Inf"}} {self.n}'
        yield f"{name}_sum{{{labels}}} {self.total}"
        yield f"{name}_count{{{labels}}} {self.n}"


class Telemetry:
    """Samples and metrics of one gateway process."""

    def __init__(self, samples_per_version: int = 4096) -> None:
        self.samples_per_version = samples_per_version
        self.samples: dict[tuple[str, str, str], deque[RequestSample]] = {}
        self.requests: dict[tuple[str, str, str], int] = {}
        self.output_tokens: dict[tuple[str, str], int] = {}
        self.ttft: dict[tuple[str, str], _Histogram] = {}
        self.duration: dict[tuple[str, str], _Histogram] = {}
        self.evaluations: dict[tuple[str, str, str], int] = {}
        #: GenAI histograms: (metric, its label string) -> histogram
        self.genai: dict[tuple[str, str], _Histogram] = {}
        #: more metric lines for /metrics, each call rendering the current figures (flow control)
        self.collectors: list[Callable[[], list[str]]] = []

    def record(
        self,
        namespace: str,
        endpoint: str,
        version: str,
        *,
        code: int,
        ttft: float | None,
        tpot: float | None,
        duration: float,
        output_tokens: int,
        operation: str = "",
        input_tokens: int = 0,
        streamed: bool = False,
    ) -> RequestSample:
        """One finished request (or one failed attempt at it); ``tpot`` None when unknown.
        Returns its sample, which an evaluation may give a score later. ``operation`` (the GenAI
        ``gen_ai.operation.name``): with it the GenAI metrics are recorded too; ``input_tokens``
        as the answer's usage reported them (0: unknown, not recorded); ``streamed``: ``ttft``
        is a stream's first chunk (else it is the whole answer's time)."""
        error = code >= 500
        key = (namespace, endpoint, version)
        window = self.samples.get(key)
        if window is None:
            window = self.samples[key] = deque(maxlen=self.samples_per_version)
        sample = RequestSample(time.time(), ttft, tpot, error)
        window.append(sample)
        model = endpoint if namespace == "default" else f"{namespace}/{endpoint}"
        ckey = (model, version, str(code))
        self.requests[ckey] = self.requests.get(ckey, 0) + 1
        hkey = (model, version)
        if output_tokens:
            self.output_tokens[hkey] = self.output_tokens.get(hkey, 0) + output_tokens
        if ttft is not None:
            h = self.ttft.get(hkey)
            if h is None:
                h = self.ttft[hkey] = _Histogram()
            h.observe(ttft)
        h = self.duration.get(hkey)
        if h is None:
            h = self.duration[hkey] = _Histogram()
        h.observe(duration)
        if operation:
            first = ttft if streamed else None
            self._genai(operation, model, code, first, tpot, duration, input_tokens, output_tokens)
        return sample

    def _genai(
        self,
        operation: str,
        model: str,
        code: int,
        ttft: float | None,
        tpot: float | None,
        duration: float,
        input_tokens: int,
        output_tokens: int,
    ) -> None:
        base = (
            f'gen_ai_operation_name="{operation}",gen_ai_provider_name="modelplane",'
            f'gen_ai_request_model="{_esc(model)}"'
        )
        failed = f',error_type="{code}"' if code >= 400 else ""
        observed: list[tuple[str, str, float]] = [("duration", base + failed, duration)]
        if code < 400:
            if output_tokens:
                observed.append(("tokens", base + ',gen_ai_token_type="output"', output_tokens))
            if input_tokens:
                observed.append(("tokens", base + ',gen_ai_token_type="input"', input_tokens))
            if ttft is not None:  # a stream: its first token was timed
                observed.append(("ttft", base, ttft))
            if tpot is not None:
                observed.append(("tpot", base, tpot))
        for metric, labels, value in observed:
            h = self.genai.get((metric, labels))
            if h is None:
                h = self.genai[(metric, labels)] = _Histogram(_GENAI[metric][2])
            h.observe(value)

    def count_request(self, model: str, version: str, code: int) -> None:
        """A request answered without reaching a replica (404, 429, 503...)."""
        key = (model, version, str(code))
        self.requests[key] = self.requests.get(key, 0) + 1

    def count_evaluation(self, namespace: str, endpoint: str, version: str, result: str) -> None:
        """One answer sampled for an evaluation, by outcome (see the module docstring)."""
        model = endpoint if namespace == "default" else f"{namespace}/{endpoint}"
        key = (model, version, result)
        self.evaluations[key] = self.evaluations.get(key, 0) + 1

    def window(
        self, namespace: str, endpoint: str, version: str, since: float = 0.0
    ) -> list[RequestSample]:
        samples = self.samples.get((namespace, endpoint, version))
        if not samples:
            return []
        return [s for s in samples if s.t > since]

    def versions(self, namespace: str, endpoint: str) -> list[str]:
        return sorted(v for (ns, ep, v) in self.samples if ns == namespace and ep == endpoint)

    def prometheus(self) -> str:
        lines = [
            "# HELP modelplane_gateway_requests_total Requests answered by the gateway.",
            "# TYPE modelplane_gateway_requests_total counter",
        ]
        for (model, version, code), n in sorted(self.requests.items()):
            lines.append(
                f'modelplane_gateway_requests_total{{model="{_esc(model)}",version="{_esc(version)}",code="{code}"}} {n}'
            )
        lines.append(
            "# HELP modelplane_gateway_output_tokens_total Completion tokens of the answers relayed."
        )
        lines.append("# TYPE modelplane_gateway_output_tokens_total counter")
        for (model, version), n in sorted(self.output_tokens.items()):
            lines.append(
                f'modelplane_gateway_output_tokens_total{{model="{_esc(model)}",version="{_esc(version)}"}} {n}'
            )
        lines.append(
            "# HELP modelplane_gateway_evaluations_total Answers sampled for a rollout's"
            " evaluation, by result."
        )
        lines.append("# TYPE modelplane_gateway_evaluations_total counter")
        for (model, version, result), n in sorted(self.evaluations.items()):
            lines.append(
                f'modelplane_gateway_evaluations_total{{model="{_esc(model)}",version="{_esc(version)}",result="{result}"}} {n}'
            )
        for name, what, hists in (
            ("modelplane_gateway_time_to_first_token_seconds", "Time to first token.", self.ttft),
            (
                "modelplane_gateway_request_duration_seconds",
                "Whole request duration.",
                self.duration,
            ),
        ):
            lines.append(f"# HELP {name} {what}")
            lines.append(f"# TYPE {name} histogram")
            for (model, version), h in sorted(hists.items()):
                lines.extend(h.lines(name, f'model="{_esc(model)}",version="{_esc(version)}"'))
        for metric, (name, what, _) in _GENAI.items():
            lines.append(f"# HELP {name} {what}")
            lines.append(f"# TYPE {name} histogram")
            for (kind, labels), h in sorted(self.genai.items()):
                if kind == metric:
                    lines.extend(h.lines(name, labels))
        for collect in self.collectors:
            lines.extend(collect())
        return "\n".join(lines) + "\n"


def metric_lines(
    name: str, kind: str, what: str, samples: Iterable[tuple[dict[str, str], float]]
) -> list[str]:
    """One metric in the Prometheus text format: HELP, TYPE, then a line per labelled sample."""
    lines = [f"# HELP {name} {what}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        shown = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{shown}}} {value:g}")
    return lines


def streamed_tpot(ttft: float, duration: float, output_tokens: int) -> float | None:
    """Time per output token of a streamed answer: the tokens after the first, over the time
    after the first chunk; None with fewer than two tokens (nothing to divide)."""
    if output_tokens < 2:
        return None
    return max(0.0, duration - ttft) / (output_tokens - 1)


def answered_tpot(server_timing: str | None, duration: float, output_tokens: int) -> float | None:
    """Time per output token of a non-streamed answer, from the worker's ``Server-Timing``.

    The whole answer reaches the gateway at once, so the gateway cannot time its tokens: it takes
    the worker's ``tpot``, else derives it from the worker's ``ttft`` (the decode time then also
    holds the network's share of ``duration``). Without either (a hosted provider sends neither)
    it is unknown, and None is recorded rather than a made-up figure.
    """
    timing = _server_timing(server_timing)
    if "tpot" in timing:
        return timing["tpot"]
    if "ttft" in timing and output_tokens > 1:
        return max(0.0, duration - timing["ttft"]) / (output_tokens - 1)
    return None


def _server_timing(header: str | None) -> dict[str, float]:
    """``{name: seconds}`` of a ``Server-Timing`` header's metrics that carry a ``dur`` (ms)."""
    found: dict[str, float] = {}
    for metric in (header or "").split(","):
        name, *params = (p.strip() for p in metric.split(";"))
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "dur":
                try:
                    seconds = float(value.strip().strip('"')) / 1000
                except ValueError:
                    continue
                if seconds >= 0 and name:
                    found[name.lower()] = seconds
    return found


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# -- traces -----------------------------------------------------------------------------------


def configure_tracing(environ: dict[str, str] | None = None) -> str | None:
    """Install an SDK tracer provider as the global one when the environment asks for it.

    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set: spans are
    batched to that collector over OTLP/HTTP (the exporter reads the other ``OTEL_*`` settings
    itself). ``MODELPLANE_TRACE=console``: spans are printed to stdout. Otherwise, or when a
    provider is already installed, nothing changes. Returns the exporter installed ("otlp",
    "console") or None; safe to call more than once.
    """
    global _done
    env = os.environ if environ is None else environ
    otlp = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    console = env.get("MODELPLANE_TRACE", "").lower() == "console"
    if not otlp and not console:
        return None
    with _configured:
        if _done or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            return None
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )

        resource = Resource.create(
            {"service.name": env.get("OTEL_SERVICE_NAME") or "modelplane-gateway"}
        )
        provider = TracerProvider(resource=resource)
        if otlp:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            kind = "otlp"
        else:
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
            kind = "console"
        trace.set_tracer_provider(provider)
        _done = True
        log.info("tracing: gateway spans go to the %s exporter", kind)
        return kind


def start_request_span(path: str, model: str, body: dict[str, Any]) -> Span:
    """The span of one gateway request (a no-op span when tracing is off)."""
    operation = OPERATIONS.get(path, "chat")
    span = _tracer.start_span(f"{operation} {model}", kind=SpanKind.CLIENT)
    if span.is_recording():
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": model,
        }
        most = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(most, int) and not isinstance(most, bool):
            attrs["gen_ai.request.max_tokens"] = most
        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and not isinstance(temperature, bool):
            attrs["gen_ai.request.temperature"] = float(temperature)
        span.set_attributes(attrs)
    return span


def start_attempt_span(
    parent: Span, *, endpoint: str, version: str, replica: str, url: str, attempt: int
) -> Span | None:
    """A child span for one try on one replica; None when the request is not traced."""
    if not parent.is_recording():
        return None
    address, port = _server(url)
    parent.set_attributes(
        {
            "modelplane.endpoint": endpoint,
            "modelplane.version": version,
            "modelplane.replica": replica,
            "server.address": address,
            "server.port": port,
        }
    )
    return _tracer.start_span(
        f"attempt {replica}",
        context=trace.set_span_in_context(parent),
        kind=SpanKind.CLIENT,
        attributes={
            "modelplane.attempt": attempt,
            "modelplane.replica": replica,
            "modelplane.version": version,
            "server.address": address,
            "server.port": port,
        },
    )


def end_attempt_span(span: Span | None, *, code: int | None, error: str | None = None) -> None:
    if span is None:
        return
    if code is not None:
        span.set_attribute("http.response.status_code", code)
    if error is not None:
        span.set_attribute("error.type", error)
        span.set_status(StatusCode.ERROR, error)
    span.end()


def record_answer(span: Span, content: bytes) -> None:
    """Set the response attributes of a non-streamed JSON answer."""
    if not span.is_recording():
        return
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        return
    if isinstance(answer, dict):
        _record(span, [answer])


_USAGE = b'"usage":{'
_FINISH = b'"finish_reason":"'
_MAX_LINE = 1 << 20


class StreamWatch:
    """Follows the SSE events of a streamed answer as its network chunks pass, unchanged.

    Keeps the last complete event line (``data: {...}``) that carried ``usage`` and the last that
    carried a ``finish_reason``, whichever network chunks they arrived in: an event split across
    two reads is joined (only the bytes after a chunk's last newline are held, at most 1 MiB), and
    a later chunk holding only ``data: [DONE]`` changes nothing. Scanning is byte search; nothing
    is parsed until :meth:`tokens` is asked.
    """

    __slots__ = ("_partial", "finish", "usage")

    def __init__(self) -> None:
        self.usage = b""
        self.finish = b""
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        start = 0
        if self._partial:
            nl = chunk.find(b"\n")
            if nl < 0:
                if len(self._partial) < _MAX_LINE:
                    self._partial += chunk
                return
            self._line(self._partial + chunk[:nl])
            self._partial = b""
            start = nl + 1
        end = chunk.rfind(b"\n")
        if end < start:
            self._partial = chunk[start:]
            return
        at = chunk.rfind(_USAGE, start, end)
        if at >= 0:
            self.usage = _line_at(chunk, at, start)
        at = chunk.rfind(_FINISH, start, end)
        if at >= 0:
            self.finish = _line_at(chunk, at, start)
        if end + 1 < len(chunk):
            self._partial = chunk[end + 1 :]

    def _line(self, line: bytes) -> None:
        if _USAGE in line:
            self.usage = line
        if _FINISH in line:
            self.finish = line

    def tokens(self) -> tuple[int, int]:
        """(completion tokens, total tokens) of the last ``usage`` seen; zeros when none."""
        if not self.usage:
            return (0, 0)
        try:
            event = orjson.loads(self.usage.partition(b":")[2])
        except orjson.JSONDecodeError:
            return (0, 0)
        return token_counts(event.get("usage") if isinstance(event, dict) else None)


def _line_at(chunk: bytes, at: int, lo: int) -> bytes:
    start = chunk.rfind(b"\n", lo, at)
    return chunk[lo if start < 0 else start + 1 : chunk.find(b"\n", at)].rstrip(b"\r")


def token_counts(usage: Any) -> tuple[int, int]:
    """(completion tokens, total tokens) of an OpenAI ``usage`` object; zeros when it is not one."""
    if not isinstance(usage, dict):
        return (0, 0)
    try:
        output = int(usage.get("completion_tokens") or 0)
        total = int(usage.get("total_tokens") or 0) or output + int(usage.get("prompt_tokens") or 0)
    except (TypeError, ValueError):
        return (0, 0)
    return (output, total)


def record_stream(span: Span, *chunks: bytes) -> None:
    """Set the response attributes found in the SSE ``chunks`` of a streamed answer."""
    if not span.is_recording():
        return
    events: list[dict[str, Any]] = []
    for chunk in dict.fromkeys(chunks):  # the last chunk may also be the one that finished
        for line in chunk.split(b"\n"):
            if line.startswith(b"data: {"):
                try:
                    event = orjson.loads(line[6:])
                except orjson.JSONDecodeError:
                    continue
                if isinstance(event, dict):
                    events.append(event)
    _record(span, events)


def record_first_token(span: Span, ttft: float) -> None:
    if span.is_recording():
        span.set_attribute("modelplane.time_to_first_token_s", ttft)
        span.add_event("first_token", {"modelplane.time_to_first_token_s": ttft})


def end_request_span(span: Span, *, code: int, error: str | None = None) -> None:
    """End a request's span; ``code`` >= 400 or ``error`` marks it failed."""
    if span.is_recording():
        if error is None and code >= 400:
            error = str(code)
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(StatusCode.ERROR, error)
    span.end()


@contextmanager
def ends_on_failure(span: Span) -> Iterator[None]:
    """End ``span`` as failed when the block raises (a GatewayError's status and code, else a
    500 named by the exception's type), and raise on; a block that returns leaves it open."""
    try:
        yield
    except GatewayError as exc:
        end_request_span(span, code=exc.status, error=exc.code or exc.type)
        raise
    except BaseException as exc:
        end_request_span(span, code=500, error=type(exc).__qualname__)
        raise


def _record(span: Span, events: list[dict[str, Any]]) -> None:
    reasons: list[str] = []
    for event in events:
        model = event.get("model")
        if isinstance(model, str) and model:
            span.set_attribute("gen_ai.response.model", model)
        for choice in event.get("choices") or ():
            reason = choice.get("finish_reason") if isinstance(choice, dict) else None
            if isinstance(reason, str) and reason:
                reasons.append(reason)
        usage = event.get("usage")
        if isinstance(usage, dict):
            for key, attr in (
                ("prompt_tokens", "gen_ai.usage.input_tokens"),
                ("completion_tokens", "gen_ai.usage.output_tokens"),
            ):
                value = usage.get(key)
                if isinstance(value, int):
                    span.set_attribute(attr, value)
    if reasons:
        span.set_attribute("gen_ai.response.finish_reasons", reasons)


def _server(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


class TraceContext:
    """ASGI middleware: a request that carries W3C trace context (``traceparent``,
    ``tracestate``) has its spans continue that trace, so an agent's turn, a client's own trace
    or a Graph step reaches the replica as one trace. Without the header, or with tracing off,
    nothing changes."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers") or ()
            if k in (b"traceparent", b"tracestate")
        }
        if not carrier:
            await self.app(scope, receive, send)
            return
        token = otel_context.attach(propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)


def trace_headers(span: Span | None) -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) naming ``span``, for a request made on its behalf;
    empty when the span is not recorded."""
    if span is None or not span.is_recording():
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier
