"""Policy decisions counted for Prometheus: ``modelplane_policy_decisions_total{result,scope}``.

``result`` is ``allow``, ``deny`` (``approval`` for a runtime decision that waits for a person) or
``error``; ``scope`` is ``admission`` (API writes) or ``runtime`` (agents' tool calls and messages,
model calls). :data:`DECISIONS` is in prometheus_client's process-wide registry, which ``/metrics``
of ``up`` and ``modelplane server`` render.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter


def decisions_counter(registry: CollectorRegistry) -> Any:
    """The decisions counter in ``registry``."""
    return Counter(
        "modelplane_policy_decisions_total",
        "Policy decisions by result (allow, deny, approval, error) and scope (admission, runtime)",
        ["result", "scope"],
        registry=registry,
    )


#: the decisions of this process
DECISIONS = decisions_counter(REGISTRY)
