"""Autoscaling: replicas on AI metrics (a Knative-style stable and panic window) and node pools.

Owns: the :class:`ReplicaAutoscaler` controller, which reads a metric from every ready replica's
``/metrics`` and writes ``Endpoint.status.autoscaling`` (the node agents run the replicas it
wants), and the window maths it uses (:class:`KPA`, :class:`ScalingPolicy`), pure and clock-free
so that simulations and tests drive time themselves.

Must not touch: the node agent's processes (it reads ``status.autoscaling``; we never start a
worker), the gateway's routing, other subsystems' internals. We read replicas' URLs from Endpoint
status, written by node agents.
"""

from modelplane.autoscaling._kpa import KPA, Decision, ScalingPolicy
from modelplane.autoscaling._replicas import ReplicaAutoscaler
from modelplane.autoscaling._scrape import Reading, per_replica, read_metric

__all__ = [
    "KPA",
    "Decision",
    "Reading",
    "ReplicaAutoscaler",
    "ScalingPolicy",
    "per_replica",
    "read_metric",
]
