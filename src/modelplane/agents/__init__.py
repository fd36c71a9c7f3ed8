"""Durable agents: the SDK handlers are written against, and the runtime that runs them.

Owns: the agent SDK (:mod:`~modelplane.agents.context`: :class:`Context` with steps, timers,
messages, human input, durable state and memory, model and MCP tool calls), the authorization hook
for tool calls (:mod:`~modelplane.agents.authz`), the runtime (:mod:`~modelplane.agents.runtime`:
journal, snapshots, group commit, passivation, sharding) and its own tables (``agent_*``, in an
``agents.db`` beside the SQLite store or in the shared PostgreSQL database), the
``/agents/{namespace}/{agent}/instances`` routes, and the platform service that watches ``Agent``
objects. Instances are **not** API objects.
Must not touch: other subsystems' internals; it reads ``Agent`` objects from the store (spec in)
and reaches models only through the gateway's HTTP API.

Start with :class:`Context` (what a handler may do, and what runs again after a crash).
"""

from modelplane.agents.authz import Authorizer, Decision, InstanceRef, allow_all
from modelplane.agents.context import (
    Context,
    Memory,
    NonDeterminism,
    NotSerializable,
    State,
    StepFailed,
    ToolDenied,
)
from modelplane.agents.runtime import (
    SHARDS,
    Clock,
    Instances,
    ManualClock,
    Runtime,
    SystemClock,
    shard_of,
)

__all__ = [
    "SHARDS",
    "Authorizer",
    "Clock",
    "Context",
    "Decision",
    "InstanceRef",
    "Instances",
    "ManualClock",
    "Memory",
    "NonDeterminism",
    "NotSerializable",
    "Runtime",
    "State",
    "StepFailed",
    "SystemClock",
    "ToolDenied",
    "allow_all",
    "shard_of",
]
