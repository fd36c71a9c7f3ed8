"""Autoscaling: replicas on AI metrics (a Knative-style stable and panic window) and node pools.

Owns: the :class:`ReplicaAutoscaler` controller, which reads a metric from every ready replica's
``/metrics`` and writes ``Endpoint.status.autoscaling`` (the node agents run the replicas it
wants), and the window maths it uses (:class:`KPA`, :class:`ScalingPolicy`), pure and clock-free
so that simulations and tests drive time themselves; the :class:`NodePoolController`, which adds
nodes through a :class:`NodeProvider` (:class:`SimulatedProvider` here) when claims of a pool's
DeviceClass are unschedulable and removes nodes that stay empty (:func:`nodes_to_add`,
:func:`nodes_to_remove`, pure as well).

Must not touch: allocations (the scheduler places claims on the nodes we add), the node agent's
processes (it reads ``status.autoscaling``; we never start a
worker), the gateway's routing, other subsystems' internals. We read replicas' URLs from Endpoint
status, written by node agents.
"""

from modelplane.autoscaling._kpa import KPA, Decision, ScalingPolicy
from modelplane.autoscaling._nodepools import (
    NodePoolController,
    NodeProvider,
    PoolNode,
    SimulatedProvider,
    nodes_to_add,
    nodes_to_remove,
    pending_claims,
)
from modelplane.autoscaling._replicas import ReplicaAutoscaler
from modelplane.autoscaling._scrape import Reading, per_replica, read_metric

__all__ = [
    "KPA",
    "Decision",
    "NodePoolController",
    "NodeProvider",
    "PoolNode",
    "Reading",
    "ReplicaAutoscaler",
    "ScalingPolicy",
    "SimulatedProvider",
    "nodes_to_add",
    "nodes_to_remove",
    "pending_claims",
    "per_replica",
    "read_metric",
]
