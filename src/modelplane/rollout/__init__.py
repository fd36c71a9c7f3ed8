"""Metric-gated canary rollouts of Endpoints, with automatic rollback.

Owns: ``Endpoint.status.traffic`` while ``spec.rollout`` is set (the split in force, which the
gateway and node agents follow) and ``Endpoint.status.rollout`` (phase, canary, stable, step,
weight, last analysis), the ``Rollout`` condition and the rollout Events
(:class:`RolloutController`); the statistical judge of a canary against the stable version on the
same window (:func:`judge`: Mann-Whitney U on latencies, Fisher's exact test on errors, a
minimum-sample guard); and where request samples come from (:class:`SampleSource`: the gateway's
``/v1/_modelplane/samples`` over HTTP, :class:`GatewaySamples`, or a recording in memory or a file,
:class:`RecordedSamples`), and :class:`SampledController`, the base of every controller that reads
them (this one and ``modelplane.sre``'s).

Must not touch: the gateway's or the node agent's internals (samples are read over HTTP; replicas
from ``status.replicas``), ``spec`` of any object (what a person wants is theirs; ``modelplane
rollout promote|abort`` asks through the ``modelplane.dev/rollout-action`` annotation), or status
fields other than ``traffic``, ``rollout`` and the ``Rollout`` condition.

Example::

    from modelplane.rollout import Criteria, RecordedSamples, judge

    recorded = RecordedSamples.load("samples.json")   # saved from /v1/_modelplane/samples
    verdict = judge(
        recorded.samples("default", "chat", "v2", since=0),
        recorded.samples("default", "chat", "v1", since=0),
        Criteria(min_samples=100),
    )
    print(verdict.verdict, verdict.reason)
"""

from modelplane.api import ACTION_ANNOTATION
from modelplane.rollout._controller import (
    ACTIONS,
    CONDITION,
    RolloutController,
)
from modelplane.rollout._judge import Criteria, Judgement, MetricResult, Verdict, judge
from modelplane.rollout._samples import (
    GATEWAY_URL_ENV,
    GatewaySamples,
    GivenOrGateways,
    RecordedSamples,
    Sample,
    SampledController,
    SampleSource,
    sample_from_json,
)

__all__ = [
    "ACTIONS",
    "ACTION_ANNOTATION",
    "CONDITION",
    "GATEWAY_URL_ENV",
    "Criteria",
    "GatewaySamples",
    "GivenOrGateways",
    "Judgement",
    "MetricResult",
    "RecordedSamples",
    "RolloutController",
    "Sample",
    "SampleSource",
    "SampledController",
    "Verdict",
    "judge",
    "sample_from_json",
]
