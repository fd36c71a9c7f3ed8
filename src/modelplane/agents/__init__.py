"""Durable agents: the SDK handlers are written against, and the runtime that runs them.

Owns: the agent SDK (:mod:`~modelplane.agents.context`: :class:`Context` with steps, timers,
messages, human input, durable state and memory, model and MCP tool calls), the authorization hook
for tool calls and the approvals a Policy may ask for (:mod:`~modelplane.agents.authz`,
``/approvals``), the runtime (:mod:`~modelplane.agents.runtime`:
journal, snapshots, group commit, passivation, sharding) and its own tables (``agent_*``, in an
``agents.db`` beside the SQLite store or in the shared PostgreSQL database), the
``/agents/{namespace}/{agent}/instances`` routes, and the platform service that watches ``Agent``
objects. Instances are **not** API objects.
Must not touch: other subsystems' internals; it reads ``Agent`` objects from the store (spec in)
and reaches models only through the gateway's HTTP API.

Start with :class:`Context` (what a handler may do, and what runs again after a crash).
"""

from modelplane.agents._approval_routes import openapi_paths as approval_openapi_paths
from modelplane.agents._approval_routes import routes as approval_routes
from modelplane.agents._bundle_routes import openapi_paths as bundle_openapi_paths
from modelplane.agents._bundle_routes import routes as bundle_routes
from modelplane.agents._bundles import BundleStore, digest_of, pack
from modelplane.agents._installs import (
    INDEX_SNAPSHOT_ENV,
    PackageInstalls,
    guard_installs,
    installs_packages,
)
from modelplane.agents._journal import Database, checksum
from modelplane.agents._loader import parse_packages
from modelplane.agents._routes import openapi_paths as agent_openapi_paths
from modelplane.agents._routes import routes as agent_routes
from modelplane.agents._service import AgentService
from modelplane.agents._worker import main as worker_main
from modelplane.agents.authz import (
    AdminsDecide,
    ApprovalGate,
    Authorizer,
    Decision,
    InstanceRef,
    MessageAuthorizer,
    allow_all,
)
from modelplane.agents.context import Context, Memory, State
from modelplane.agents.errors import (
    BundleError,
    NonDeterminism,
    NotSerializable,
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
    "INDEX_SNAPSHOT_ENV",
    "SHARDS",
    "AdminsDecide",
    "AgentService",
    "ApprovalGate",
    "Authorizer",
    "BundleError",
    "BundleStore",
    "Clock",
    "Context",
    "Database",
    "Decision",
    "InstanceRef",
    "Instances",
    "ManualClock",
    "Memory",
    "MessageAuthorizer",
    "NonDeterminism",
    "NotSerializable",
    "PackageInstalls",
    "Runtime",
    "State",
    "StepFailed",
    "SystemClock",
    "ToolDenied",
    "agent_openapi_paths",
    "agent_routes",
    "allow_all",
    "approval_openapi_paths",
    "approval_routes",
    "bundle_openapi_paths",
    "bundle_routes",
    "checksum",
    "digest_of",
    "guard_installs",
    "installs_packages",
    "pack",
    "parse_packages",
    "shard_of",
    "worker_main",
]
