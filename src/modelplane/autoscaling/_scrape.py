"""Reading one metric from replicas' ``/metrics``: a gauge as is, a counter as a rate, a histogram
as the mean of its new observations.

The replicas' URLs come from ``Endpoint.status.replicas[].url``, which node agents write; each is
read over plain HTTP(S) with a timeout and without following redirects, and a replica that does not
answer in time is left out of the tick (never waited on).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import httpx
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger("modelplane.autoscaling.scrape")

Kind = Literal["gauge", "counter", "histogram"]


@dataclass(frozen=True, slots=True)
class Reading:
    """One read of a family: ``value`` (a gauge's value, a counter's total, a histogram's sum)
    and ``count`` (a histogram's count), summed over its label sets, at ``time``."""

    kind: Kind
    value: float
    count: float
    time: float


def read_metric(text: str, metric: str, now: float) -> Reading | None:
    """``metric`` in Prometheus text ``text``; None when the family is absent.

    A counter may be named with or without its ``_total`` suffix.
    """
    wanted = {metric, metric.removesuffix("_total")}
    for family in text_string_to_metric_families(text):
        if family.name not in wanted:
            continue
        if family.type in ("histogram", "summary", "gaugehistogram"):
            total = sum(s.value for s in family.samples if s.name.endswith("_sum"))
            count = sum(s.value for s in family.samples if s.name.endswith("_count"))
            return Reading("histogram", total, count, now)
        kind: Kind = "counter" if family.type == "counter" else "gauge"
        names = {family.name, f"{family.name}_total"} if kind == "counter" else {family.name}
        value = sum(s.value for s in family.samples if s.name in names)
        return Reading(kind, value, 0.0, now)
    return None


def per_replica(previous: Reading | None, current: Reading) -> float | None:
    """The figure one replica contributes: a gauge's value, a counter's rate per second since
    ``previous``, a histogram's mean observation since ``previous`` (0 when none came); None
    when a counter or histogram has no earlier read to compare with (or was reset)."""
    if current.kind == "gauge":
        return current.value
    if previous is None or previous.kind != current.kind or current.value < previous.value:
        return None
    if current.kind == "counter":
        elapsed = current.time - previous.time
        return (current.value - previous.value) / elapsed if elapsed > 0 else None
    observations = current.count - previous.count
    if observations < 0:
        return None
    return (current.value - previous.value) / observations if observations else 0.0


def metrics_url(replica_url: str) -> str | None:
    """The ``/metrics`` URL of a replica whose base URL ends in ``/v1``; None for any other."""
    if not replica_url.startswith(("http://", "https://")):
        return None
    return replica_url.removesuffix("/").removesuffix("/v1") + "/metrics"


def scrape(urls: Sequence[str], metric: str, now: float, timeout: float) -> dict[str, Reading]:
    """Read ``metric`` from every URL at once; a URL that failed or lacks it is left out."""

    def one(url: str) -> tuple[str, Reading | None]:
        try:
            r = client.get(url, follow_redirects=False)
            r.raise_for_status()
            return url, read_metric(r.text, metric, now)
        except (httpx.HTTPError, ValueError) as exc:
            log.debug("cannot read %s: %s", url, exc)
            return url, None

    if not urls:
        return {}
    with httpx.Client(timeout=timeout) as client, ThreadPoolExecutor(min(8, len(urls))) as pool:
        return {url: reading for url, reading in pool.map(one, urls) if reading is not None}
