"""``Endpoint``: a served model with replicas, devices, traffic split, rollout, routing and SLOs."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Self

import regex  # type: ignore[import-untyped]
from pydantic import Field, field_validator, model_validator

from modelplane.api._dra import DeviceClaim
from modelplane.api._gatewayapi import HeaderMatch
from modelplane.api._meta import READY_COLUMN, OpenSchema, Resource, Schema, Status
from modelplane.api._names import RoutingPolicy
from modelplane.api._types import (
    Duration,
    Name,
    Problems,
    duplicates,
    parse_duration,
    refuse_unknown_fields,
)

_FALLBACK_PART = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class TrafficTarget(Schema):
    """A share of requests sent to one version of the model."""

    version: Name = Field(description="A version of the endpoint's Model.")
    weight: int = Field(ge=0, le=100, description="Percent of requests, 0 to 100.")


class AnalysisMetrics(Schema):
    """Thresholds a canary must stay within at each step; a breach rolls back (see autoRollback)."""

    ttft_p99: Duration | None = Field(
        default=None,
        description='Largest allowed 99th-percentile time to first token, e.g. "800ms".',
    )
    tpot: Duration | None = Field(
        default=None, description='Largest allowed mean time per output token, e.g. "50ms".'
    )
    error_rate: float | None = Field(
        default=None, ge=0, le=1, description="Largest allowed fraction of failed requests, 0 to 1."
    )


class EvalCase(Schema):
    """One case of an eval set: which sampled prompts it applies to, and the answer it expects."""

    prompt: str | None = Field(
        default=None,
        description=(
            "The prompts this case applies to (the request's last user message, or a completion's"
            " prompt): the text itself, or a regular expression with promptMatch: regex. Unset:"
            " every sampled answer."
        ),
    )
    prompt_match: Literal["exact", "regex"] = Field(
        default="exact",
        description=(
            "exact (the prompt, without surrounding whitespace, equals `prompt`) or regex"
            " (`prompt` is found in it)."
        ),
    )
    expect: Literal["exact", "regex", "json"] = Field(
        description=(
            "What a right answer is: exact (the answer, without surrounding whitespace, equals"
            " `answer`), regex (`answer` is found in it) or json (the answer parses as JSON)."
        ),
    )
    answer: str | None = Field(
        default=None,
        description="The expected answer (exact) or a regular expression (regex); unset for json.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = Problems()
        if self.expect == "json" and self.answer is not None:
            problems.add(("answer",), "expect: json takes no answer; remove `answer`")
        if self.expect != "json" and self.answer is None:
            problems.add(
                ("answer",),
                f"expect: {self.expect} needs the expected answer, e.g. answer: Paris",
            )
        if self.prompt is None and self.prompt_match == "regex":
            problems.add(("prompt",), "promptMatch: regex needs a `prompt` pattern")
        for where, pattern, wanted in (
            ("prompt", self.prompt, self.prompt_match == "regex"),
            ("answer", self.answer, self.expect == "regex"),
        ):
            problem = regex_problem(pattern) if wanted and pattern is not None else None
            if problem:
                problems.add((where,), f"{problem}; write a regular expression, e.g. (?i)paris")
        problems.raise_any()
        return self


class EvalJudge(Schema):
    """A model served here that grades each sampled answer with a number from 0 to 1."""

    model: Name = Field(
        description=(
            "An Endpoint or Graph in this namespace, called through the gateway like any client"
            " (its limits, policies and traces apply)."
        ),
    )
    prompt: str = Field(
        min_length=1,
        description=(
            "The grading prompt sent as the user message; {prompt} and {answer} are replaced by"
            " the sampled request's prompt and answer. The judge's answer is read as the first"
            " number in it (e.g. 0.8, 1); one outside 0 to 1, or none, scores nothing."
        ),
    )
    max_tokens: int = Field(
        default=16, ge=1, le=4096, description="Most tokens the judge may answer with."
    )

    @field_validator("prompt")
    @classmethod
    def _answer_placeholder(cls, prompt: str) -> str:
        if "{answer}" not in prompt:
            raise ValueError(
                "the grading prompt must contain {answer} (where the sampled answer goes), e.g."
                ' "Question: {prompt} Answer: {answer} Reply 1 if right, else 0."'
            )
        return prompt


class Eval(Schema):
    """Answers of the canary and the stable version sampled and scored while a rollout runs."""

    sample_rate: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "Share of the canary's and the stable version's answers evaluated, 0 to 1, while a"
            " rollout is in progress; off the request path (never delaying an answer)."
        ),
    )
    cases: list[EvalCase] = Field(
        description=(
            "An eval set: a sampled answer scores 1 when every case that applies to its prompt"
            " passes, else 0; an answer no case applies to is not scored by the set."
        ),
        default_factory=list,
    )
    judge: EvalJudge | None = Field(
        default=None,
        description=(
            "A judge model served here; with cases too, a sample's score is the mean of the two."
        ),
    )
    score_margin: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "How far the canary's mean score may fall below the stable's (0 to 1) before a"
            " significant drop fails the step."
        ),
    )

    @model_validator(mode="after")
    def _some_scorer(self) -> Self:
        problems = Problems()
        if not self.cases and self.judge is None:
            problems.add(
                ("cases",),
                "give an eval set (cases) or a judge model, e.g. cases: [{prompt: '2+2?',"
                " expect: exact, answer: '4'}]",
            )
        problems.raise_any()
        return self


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a regular expression (as the gateway's ``regex`` reads it), or None."""
    try:
        regex.compile(pattern)
    except regex.error as exc:
        return f"{pattern!r} is not a regular expression ({exc})"
    return None


class Analysis(Schema):
    """How each rollout step is judged before moving to the next."""

    interval: Duration = Field(default="1m", description="How long each step is observed.")
    metrics: AnalysisMetrics = Field(
        default_factory=AnalysisMetrics, description="Thresholds the new version must meet."
    )
    min_samples: int = Field(
        default=100, ge=1, description="Requests needed at a step before it can be judged."
    )
    eval: Eval | None = Field(
        default=None,
        description=(
            "Score sampled answers (an eval set or a judge model); the step then also needs"
            " minSamples scores per version, and fails when the canary scores lower."
        ),
    )


class Rollout(Schema):
    """Progressive delivery of a new version: traffic steps, analysis, automatic rollback."""

    steps: list[int] = Field(
        default_factory=lambda: [10, 50, 100],
        description="Percent of traffic to the new version at each step, ascending, 1 to 100.",
    )
    analysis: Analysis = Field(default_factory=Analysis, description="How a step is judged.")
    auto_rollback: bool = Field(
        default=True, description="Send all traffic back to the old version when a step fails."
    )

    @model_validator(mode="after")
    def _ascending(self) -> Self:
        problems = Problems()
        if not self.steps:
            problems.add(("steps",), "list at least one step, e.g. [10, 50, 100]")
        previous = 0
        for i, step in enumerate(self.steps):
            if not 1 <= step <= 100:
                problems.add(("steps", i), f"step {step} must be between 1 and 100 percent")
            elif step <= previous:
                problems.add(
                    ("steps", i),
                    f"steps must ascend; {step} does not follow {previous} (e.g. [10, 50, 100])",
                )
            previous = max(previous, step)
        problems.raise_any()
        return self


_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class Autoscaling(Schema):
    """Scale replicas on a metric the workers export, as Knative's KPA does (stable and panic).

    Every replica's ``/metrics`` is read each tick; ``metric`` names a Prometheus family: a gauge
    is read as it is, a counter as its rate per second, a histogram as the mean of the
    observations since the previous read. The replicas wanted are ``ceil(ready replicas * mean
    per replica / target)``, averaged over ``stableWindow``; when the same figure over
    ``panicWindow`` reaches ``panicThreshold`` times the ready replicas, the autoscaler panics:
    it scales up on the short window and never down, until a whole stable window passed
    without reason to panic.
    """

    metric: str = Field(
        description=(
            "A Prometheus metric name the workers export, e.g. modelplane_worker_queue_depth,"
            " modelplane_worker_kv_cache_usage_ratio,"
            " modelplane_worker_time_to_first_token_seconds, modelplane_worker_generated_tokens"
        )
    )
    target: float = Field(
        gt=0, description="The value per replica to hold, e.g. 4 (requests queued) or 0.7."
    )
    stable_window: Duration = Field(
        default="60s", description="The window decisions average over, 6s to 1h (Knative's)."
    )
    panic_window: Duration = Field(
        default="6s", description="The short window a burst is seen on, at most stableWindow."
    )
    panic_threshold: float = Field(
        default=2.0,
        gt=1.0,
        description="Panic when the panic window wants this many times the ready replicas (2.0).",
    )
    scale_down_delay: Duration = Field(
        default="0s",
        description="Scale down only to the most replicas wanted over this long (0s: at once).",
    )

    @field_validator("metric")
    @classmethod
    def _metric(cls, metric: str) -> str:
        if not _METRIC_NAME.match(metric):
            raise ValueError(
                f"{metric!r} is not a Prometheus metric name; write letters, digits, _ and : not"
                " starting with a digit, e.g. modelplane_worker_queue_depth"
            )
        return metric

    @model_validator(mode="after")
    def _windows(self) -> Self:
        problems = Problems()
        stable = parse_duration(self.stable_window)
        if not 6.0 <= stable <= 3600.0:
            problems.add(("stableWindow",), f"stableWindow {self.stable_window!r} must be 6s to 1h")
        panic = parse_duration(self.panic_window)
        if not 1.0 <= panic <= stable:
            problems.add(
                ("panicWindow",),
                f"panicWindow {self.panic_window!r} must be 1s to stableWindow"
                f" ({self.stable_window})",
            )
        problems.raise_any()
        return self


class Replicas(Schema):
    """How many copies of the model server run."""

    min: int = Field(default=1, ge=0, description="Fewest replicas (0 needs scaleToZero).")
    max: int | None = Field(
        default=None, ge=1, description="Most replicas; defaults to max(min, 1)."
    )
    scale_to_zero: bool = Field(
        default=False,
        description="Stop every replica when idle and start one on the next request.",
    )
    autoscaling: Autoscaling | None = Field(
        default=None,
        description=(
            "Scale between min and max on a worker metric (stable and panic windows); without"
            " it the node agent adds a replica while every replica has requests queued."
        ),
    )

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.max is None:
            self.max = max(self.min, 1)
        problems = Problems()
        if self.min > self.max:
            problems.add(("min",), f"min ({self.min}) must not exceed max ({self.max})")
        if self.min == 0 and not self.scale_to_zero:
            problems.add(
                ("scaleToZero",),
                "min is 0 but scaleToZero is false: set scaleToZero: true to let the endpoint"
                " idle at zero replicas, or set min to 1 or more",
            )
        problems.raise_any()
        return self


class HeaderRoute(Schema):
    """Requests carrying every one of ``headers`` go to ``version``, before the traffic split."""

    headers: list[HeaderMatch] = Field(
        min_length=1,
        max_length=16,
        description=(
            "Headers that must all match, e.g. `{name: OpenAI-Project, value: proj_canary}` or"
            " a tenant header; names compare case-insensitively."
        ),
    )
    version: Name = Field(
        description=(
            "The Model version these requests go to; it runs replicas even with no weight in"
            " the traffic split."
        )
    )


class Routing(Schema):
    """How the gateway picks a replica for each request."""

    policy: RoutingPolicy = Field(
        default="least-request",
        description=(
            "round-robin, least-request (fewest in flight), load (queue depth and KV-cache use"
            " scraped from the replicas), prefix-cache (replica most likely to"
            " hold the prompt's prefix in KV cache), session-affinity (same session, same"
            " replica) or prefix-load (prefix-cache balanced against load)."
        ),
    )
    sticky: bool | None = Field(
        default=None,
        description=(
            "Keep a session (the request's `user`, or its X-Session-Id header) on one version of"
            " the traffic split, so a conversation does not switch models mid-way. Implied by"
            " policy session-affinity; unset means false."
        ),
    )
    header_routes: list[HeaderRoute] | None = Field(
        default=None,
        max_length=16,
        description=(
            "Header-based routing beside the weighted split: the first entry whose headers all"
            " match sends the request to its version (while that version has a ready replica);"
            " requests no entry matches follow the traffic split."
        ),
    )


class Remediation(Schema):
    """A playbook the remediation controller runs when this Endpoint's SLO alerts page."""

    playbook: Literal["shift-traffic", "rollback"] = Field(
        description=(
            "What to do: shift-traffic moves all traffic to the versions that burn nothing when a"
            " page-level alert fires for one version (the split in force is kept in"
            " status.remediation and restored by `modelplane rollout promote`); rollback aborts"
            " a rollout in progress when the alert fires for its canary (traffic back to the"
            " split before the rollout; apply the Endpoint again to retry)."
        ),
    )
    enabled: bool = Field(
        default=False,
        description="Whether the playbook acts; off by default (findings only, no action).",
    )
    cooldown: Duration = Field(
        default="10m",
        description=(
            'Least time between two actions on this Endpoint, e.g. "10m" (scaled by'
            " MODELPLANE_SLO_TIME_SCALE like the alert windows)."
        ),
    )


class Slo(Schema):
    """Service-level objectives, watched by the SLO controller with multi-window burn-rate alerts.

    Each objective set is evaluated on the gateway's requests to this Endpoint: the share of
    requests that are good against the target, the error budget left over ``window``, and the
    burn rate over 5m, 30m, 1h, 6h and 3d (see ``modelplane slo status`` and docs/slo.md).
    """

    availability: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description=(
            "Fraction of requests that must not fail (a failed request: a 5xx answer, as the"
            " gateway records it), e.g. 0.999."
        ),
    )
    ttft_p99: Duration | None = Field(
        default=None,
        description=(
            '99th-percentile time to first token, e.g. "500ms": 99% of requests must see their'
            " first token within it."
        ),
    )
    tpot: Duration | None = Field(
        default=None,
        description=(
            'Time per output token, e.g. "50ms": 99% of requests that report one must stay'
            " within it."
        ),
    )
    error_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Fraction of failed requests allowed, 0 to 1 (the error budget).",
    )
    window: str = Field(
        default="30d",
        description='The period the objectives hold over (the error budget\'s): "30d", "7d", "720h".',
    )
    min_events: int = Field(
        default=100,
        ge=1,
        description=(
            "Requests the long window of an alert must hold before it may fire, so that a"
            " handful of requests raises no alert."
        ),
    )
    alert_webhook: str | None = Field(
        default=None,
        description=(
            "URL the controller POSTs each alert to (JSON) when it starts and when it resolves;"
            " its host must pass the platform's egress rules, like an upstream model's."
        ),
    )

    remediation: Remediation | None = Field(
        default=None,
        description=(
            "A remediation playbook bound to these alerts, e.g. {playbook: shift-traffic,"
            " enabled: true}; off unless enabled (see docs/slo.md)."
        ),
    )

    @field_validator("window")
    @classmethod
    def _window(cls, window: str) -> str:
        if slo_window_seconds(window) <= 0:
            raise ValueError(f"window {window!r} must be longer than 0, e.g. 30d")
        return window

    @field_validator("alert_webhook")
    @classmethod
    def _webhook(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"{url!r} is not an http(s) URL, e.g. https://alerts.example.com/hook")
        return url


def slo_window_seconds(text: str) -> float:
    """Seconds in an SLO window: whole days (``"30d"``) or a duration (``"720h"``)."""
    days = re.fullmatch(r"(\d+)d", text.strip()) if isinstance(text, str) else None
    if days:
        return int(days.group(1)) * 86400.0
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(
            f'{text!r} is not a window; write whole days such as "30d" or a duration such as "720h"'
        ) from None


class Budget(Schema):
    """A spending cap per period."""

    amount: float = Field(ge=0, description="Largest spend per period, in US dollars.")
    period: Literal["hour", "day", "week", "month"] = Field(
        default="month", description="hour, day, week or month."
    )


class Limits(Schema):
    """Rate and spend limits enforced by the gateway, per endpoint."""

    tokens_per_minute: int | None = Field(default=None, ge=1, description="Tokens per minute.")
    requests_per_minute: int | None = Field(default=None, ge=1, description="Requests per minute.")
    budget: Budget | None = Field(default=None, description="Spending cap.")
    usd_per_million_tokens: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Price in US dollars per million tokens (prompt and completion), what `budget` is"
            " charged at; unset charges nothing."
        ),
    )


#: the request header that names a request's priority class (``spec.qos.classes[].name``)
PRIORITY_HEADER = "x-modelplane-priority"
#: the header the gateway sends a request's priority (an integer, higher first) to a replica in
PRIORITY_VALUE_HEADER = "x-modelplane-priority-value"


class PriorityClass(Schema):
    """A named request class and its priority: higher is served first, negative is background."""

    name: Name = Field(
        description=f"The class name a request gives in the {PRIORITY_HEADER} header."
    )
    priority: int = Field(
        ge=-1000,
        le=1000,
        description=(
            "Higher first; 0 is normal, negative is background (shed first under load), as"
            " InferenceObjective's priority."
        ),
    )
    kv_cache_reserve: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description=(
            "Share of each replica's KV cache kept for this class and higher ones, e.g. 0.2:"
            " a lower-priority request is held once KV-cache use reaches"
            " saturation.kvCacheUsage less the reserves of the classes above it."
        ),
    )


class TenantShare(Schema):
    """A tenant's default class and its weight for fair sharing inside a class."""

    tenant: str = Field(
        min_length=1,
        max_length=253,
        description=(
            "A principal name (user or system:serviceaccount:ns:name) or a namespace the"
            " principal belongs to."
        ),
    )
    class_: Name | None = Field(
        default=None,
        alias="class",
        description="The class of this tenant's requests that name none (else defaultClass).",
    )
    weight: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description=(
            "Share of the class's throughput under saturation against other tenants of the"
            " class (tokens served are counted divided by the weight; least count goes first)."
        ),
    )


class FlowQueue(Schema):
    """The gateway's queue of requests held while every replica is saturated."""

    max_size: int = Field(
        default=256,
        ge=0,
        le=100000,
        description=(
            "Most requests held for this Endpoint; when full, the newest request of the lowest"
            " priority below the arriving one is shed (429), else the arriving one is."
        ),
    )
    ttl: Duration = Field(
        default="30s",
        description='Longest a request is held before it is shed with 429, e.g. "30s".',
    )


class Saturation(Schema):
    """When a replica counts as saturated (requests are then held in the gateway's queue)."""

    queue_depth: float = Field(
        default=4.0,
        ge=0,
        description="Requests waiting in the replica's own queue (scraped from its /metrics).",
    )
    kv_cache_usage: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Fraction of the replica's KV cache in use (scraped from its /metrics).",
    )
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        description="Most requests this gateway sends to one replica at once; unset: no bound.",
    )
    background_share: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description=(
            "Share of maxInFlight that requests of negative priority may fill, e.g. 0.75: the"
            " rest stays free for priority 0 and above, which then start without waiting."
        ),
    )


class Qos(Schema):
    """Request classes and flow control: priority, fairness between tenants, and shedding."""

    classes: list[PriorityClass] = Field(
        default_factory=list,
        description="The classes requests may name; an unnamed request gets defaultClass.",
    )
    default_class: Name | None = Field(
        default=None,
        description="The class of a request that names none and whose tenant has none (else 0).",
    )
    tenants: list[TenantShare] = Field(
        default_factory=list,
        description="Per tenant: its default class and its fair-share weight (default 1).",
    )
    queue: FlowQueue = Field(default_factory=FlowQueue, description="The gateway's queue.")
    saturation: Saturation = Field(
        default_factory=Saturation, description="When a replica counts as saturated."
    )

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, classes: list[PriorityClass]) -> list[PriorityClass]:
        problems = Problems()
        for i, name, first in duplicates(c.name for c in classes):
            problems.add((i, "name"), f"class {name!r} appears twice (also classes[{first}])")
        problems.raise_any()
        return classes

    @field_validator("tenants")
    @classmethod
    def _unique_tenants(cls, tenants: list[TenantShare]) -> list[TenantShare]:
        problems = Problems()
        for i, tenant, first in duplicates(t.tenant for t in tenants):
            problems.add((i, "tenant"), f"tenant {tenant!r} appears twice (also tenants[{first}])")
        problems.raise_any()
        return tenants

    @model_validator(mode="after")
    def _known_classes(self) -> Self:
        problems = Problems()
        known = [c.name for c in self.classes]
        shown = ", ".join(known) or "none: add classes[] first"
        if self.default_class is not None and self.default_class not in known:
            problems.add(
                ("defaultClass",),
                f"{self.default_class!r} is not a class of classes[] (known: {shown})",
            )
        reserved = sum(c.kv_cache_reserve for c in self.classes)
        if reserved >= self.saturation.kv_cache_usage:
            problems.add(
                ("classes",),
                f"the classes reserve {reserved:g} of the KV cache, not less than"
                f" saturation.kvCacheUsage ({self.saturation.kv_cache_usage:g}): the lowest class"
                " could never start; lower the kvCacheReserve values",
            )
        for i, share in enumerate(self.tenants):
            if share.class_ is not None and share.class_ not in known:
                problems.add(
                    ("tenants", i, "class"),
                    f"{share.class_!r} is not a class of classes[] (known: {shown})",
                )
        problems.raise_any()
        return self


class EndpointSpec(Schema):
    """What to serve and how."""

    model: Name = Field(description="Name of the Model (same namespace) to serve.")
    traffic: list[TrafficTarget] = Field(
        default_factory=list,
        description=(
            "Split of requests across the Model's versions; weights sum to 100. When empty, all"
            " traffic goes to the Model's last version."
        ),
    )
    rollout: Rollout | None = Field(
        default=None, description="Progressive delivery of a new version (canary steps)."
    )
    replicas: Replicas = Field(default_factory=Replicas, description="How many replicas.")
    devices: DeviceClaim | None = Field(
        default=None,
        description=(
            "Devices each replica needs, as a ResourceClaim's `spec.devices` (requests,"
            " constraints, config)."
        ),
    )
    routing: Routing = Field(default_factory=Routing, description="Replica selection.")
    slo: Slo | None = Field(
        default=None,
        description=(
            "Service-level objectives, with burn-rate alerts in status.slo, Events and an"
            " optional webhook."
        ),
    )
    limits: Limits | None = Field(default=None, description="Rate and spend limits.")
    qos: Qos | None = Field(
        default=None,
        description=(
            "Request classes and flow control in the gateway: priority classes, tenants' fair"
            " shares, the queue held while every replica is saturated, and shedding (429)."
        ),
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description=(
            "Model names (Endpoints or Graphs, `name` in this namespace or `namespace/name`) tried"
            " in order when this endpoint cannot answer (no ready replica, errors, timeouts)."
        ),
    )

    # field validators, not a model validator: they run even when another field is broken, so
    # every problem is reported at once
    @field_validator("traffic")
    @classmethod
    def _traffic(cls, traffic: list[TrafficTarget]) -> list[TrafficTarget]:
        problems = Problems()
        if traffic:
            total = sum(t.weight for t in traffic)
            if total != 100:
                problems.add(
                    (),
                    f"weights sum to {total}; they must sum to 100"
                    f" (e.g. adjust traffic[{len(traffic) - 1}].weight by {100 - total:+d})",
                )
            for i, version, first in duplicates(t.version for t in traffic):
                problems.add(
                    (i, "version"),
                    f"version {version!r} appears twice (also traffic[{first}]); merge the weights",
                )
        problems.raise_any()
        return traffic

    @field_validator("fallbacks")
    @classmethod
    def _fallbacks(cls, fallbacks: list[str]) -> list[str]:
        problems = Problems()
        for i, entry in enumerate(fallbacks):
            parts = entry.split("/")
            if len(parts) > 2 or not all(_FALLBACK_PART.match(p) for p in parts):
                problems.add(
                    (i,),
                    f"{entry!r} is not a model name; write `name` (same namespace) or"
                    " `namespace/name`, lowercase letters, digits, '-' and '.'",
                )
        for i, entry, first in duplicates(fallbacks):
            problems.add((i,), f"{entry!r} appears twice (also fallbacks[{first}]); list it once")
        problems.raise_any()
        return fallbacks

    _devices = field_validator("devices")(refuse_unknown_fields)


class ReplicaStatus(OpenSchema):
    """One replica as its node agent reports it (status written by the node agent)."""

    name: str = Field(description="Replica name, unique within the endpoint.")
    version: str = Field(description="The model version this replica serves.")
    node: str | None = Field(default=None, description="The node the replica runs on.")
    url: str | None = Field(
        default=None, description="OpenAI-compatible base URL of the replica, ending in /v1."
    )
    ready: bool = Field(default=False, description="Whether the replica serves requests now.")
    message: str | None = Field(default=None, description="Why the replica is not ready.")


RolloutPhase = Literal["Progressing", "Paused", "Succeeded", "RolledBack", "Aborted"]


class AnalysisResult(OpenSchema):
    """The latest judgement of the canary against the stable version on the same window."""

    verdict: Literal["pass", "fail", "inconclusive"] = Field(
        description="pass (advance), fail (roll back or pause), inconclusive (hold the step)."
    )
    reason: str = Field(description="The figures behind the verdict, in a sentence.")
    samples: int = Field(default=0, description="Canary requests in the window.")
    stable_samples: int = Field(default=0, description="Stable requests in the same window.")
    time: str | None = Field(default=None, description="When the analysis ran (RFC 3339).")


class RolloutStatus(OpenSchema):
    """Where a canary rollout stands (written by the rollout controller)."""

    phase: RolloutPhase = Field(
        description=(
            "Progressing, Paused (waits for promote or abort), Succeeded, RolledBack, Aborted."
        )
    )
    canary: str = Field(description="The version whose share rises.")
    stable: str = Field(description="The version that held the most traffic when it began.")
    step: int = Field(default=0, ge=0, description="Index of the current step in `steps`.")
    steps: list[int] = Field(
        default_factory=list, description="Canary percentages analysed before full promotion."
    )
    weight: int = Field(
        default=0, ge=0, le=100, description="Percent of traffic to the canary now."
    )
    target: list[TrafficTarget] = Field(
        default_factory=list, description="The `spec.traffic` this rollout moves to."
    )
    baseline: list[TrafficTarget] = Field(
        default_factory=list,
        description="The split in force when it began (restored on rollback).",
    )
    step_started_at: str | None = Field(
        default=None, description="When the current step's analysis window opened (RFC 3339)."
    )
    last_analysis: AnalysisResult | None = Field(
        default=None, description="The latest analysis of the current step."
    )
    message: str | None = Field(default=None, description="What happened last, for people.")


class SloStatus(OpenSchema):
    """The objectives as the SLO controller last evaluated them (see ``modelplane slo status``)."""

    evaluated_at: str | None = Field(default=None, description="When (RFC 3339).")
    objectives: list[dict[str, Any]] | None = Field(
        default=None,
        description="Per objective: sli, events, budgetLeft and burnRates by window.",
    )
    alerts: list[dict[str, Any]] | None = Field(
        default=None, description="Firing alerts: objective, severity, rule, scope, since."
    )
    versions: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description="Per version over the last hour: requests, errorRate and ttftP99 (seconds).",
    )
    message: str | None = Field(default=None, description="What the evaluation found, in words.")


class RemediationStatus(OpenSchema):
    """What a remediation playbook did last, and the split it replaced (written by its controller)."""

    playbook: str | None = Field(default=None, description="The playbook that acted.")
    active: bool = Field(
        default=False,
        description=(
            "Whether the playbook holds the traffic split now (the rollout controller leaves it"
            " until `modelplane rollout promote` restores previousTraffic)."
        ),
    )
    traffic: list[TrafficTarget] | None = Field(
        default=None, description="The split the playbook set."
    )
    previous_traffic: list[TrafficTarget] | None = Field(
        default=None, description="The split in force before (restored on promote)."
    )
    alert: str | None = Field(default=None, description="The key of the alert acted on.")
    acted_at: str | None = Field(default=None, description="When it acted (RFC 3339).")
    released_at: str | None = Field(
        default=None, description="When a person restored the previous split (RFC 3339)."
    )
    message: str | None = Field(default=None, description="What happened, for people.")


class AutoscalingStatus(OpenSchema):
    """The replica autoscaler's last decision and its inputs (spec.replicas.autoscaling)."""

    desired_replicas: int = Field(ge=0, description="Replicas wanted per version in traffic.")
    metric: str = Field(description="The metric decided on.")
    observed: float | None = Field(
        default=None, description="Its mean per ready replica over the window in force."
    )
    ready_replicas: int = Field(default=0, ge=0, description="Ready replicas it was read from.")
    mode: Literal["stable", "panic"] = Field(
        description="stable, or panic (a burst: no scale-down)."
    )
    last_scale_time: str | None = Field(
        default=None, description="When desiredReplicas last changed (RFC 3339)."
    )
    message: str | None = Field(default=None, description="Why, in words.")


class EndpointStatus(Status):
    """Observed state of the endpoint."""

    replicas: list[ReplicaStatus] | None = Field(
        default=None, description="Replicas that exist, as their node agents report them."
    )
    ready_replicas: int | None = Field(default=None, description="Replicas that serve requests.")
    desired_replicas: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Replicas the node agent wants now, over every version in traffic (a canary's"
            " included) and with load scaling and scale-to-zero applied; an Endpoint with"
            " `spec.devices` gets one ResourceClaim for each."
        ),
    )
    traffic: list[TrafficTarget] | None = Field(
        default=None, description="The traffic split the gateway applies now."
    )
    url: str | None = Field(default=None, description="Where the endpoint is served.")
    rollout: RolloutStatus | None = Field(
        default=None, description="The canary rollout in progress or last finished."
    )
    slo: SloStatus | None = Field(
        default=None, description="Service-level objectives: burn rates, budget, alerts."
    )
    remediation: RemediationStatus | None = Field(
        default=None, description="The remediation playbook's last action (spec.slo.remediation)."
    )
    autoscaling: AutoscalingStatus | None = Field(
        default=None, description="The replica autoscaler's decision (spec.replicas.autoscaling)."
    )


class Endpoint(Resource):
    """A served model: replicas on devices, a traffic split across versions, routing and SLOs."""

    spec: EndpointSpec = Field(description="What to serve and how.")
    status: EndpointStatus | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "endpoints"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ep",)
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("MODEL", "spec.model"),
        ("REPLICAS", "status.readyReplicas"),
        READY_COLUMN,
    )

    @model_validator(mode="after")
    def _not_own_fallback(self) -> Self:
        problems = Problems()
        own = {self.metadata.name, f"{self.metadata.namespace or 'default'}/{self.metadata.name}"}
        for i, entry in enumerate(self.spec.fallbacks):
            if entry in own:
                problems.add(
                    ("spec", "fallbacks", i),
                    f"{entry!r} is this endpoint itself; a fallback must name another model",
                )
        rollout = self.spec.rollout
        evals = rollout.analysis.eval if rollout is not None else None
        if (
            evals is not None
            and evals.judge is not None
            and evals.judge.model == self.metadata.name
        ):
            problems.add(
                ("spec", "rollout", "analysis", "eval", "judge", "model"),
                f"{evals.judge.model!r} is this endpoint itself; a judge must be another model",
            )
        problems.raise_any()
        return self
