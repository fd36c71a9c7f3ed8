"""The composition root: what an embedded ``modelplane up`` runs.

Each subsystem contributes here, and only here, so subsystems never import one another:

* :func:`controllers` — reconcilers run by the leader-elected :class:`~modelplane.control.Manager`;
* :func:`services` — per-process background work that runs whether or not this process leads
  (a node agent starting model workers, an agent-worker holding shard leases);
* :func:`routes` — ASGI routes mounted beside the REST API (the ``/v1`` gateway, the
  ``/mcp`` gateway, agent instances, agent bundles).

What the platform may read or run is the operator's choice, passed in here and nowhere taken from
an object: ``model_roots`` (folders a Model's local ``source`` may name) and ``agent_packages``
(installed modules an Agent without a bundle may name).

Imports are inside the functions so that the CLI's other commands start without loading them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from starlette.routing import BaseRoute

from modelplane.api import NODE_LEASE_SECONDS
from modelplane.control import Controller
from modelplane.egress import EgressRules
from modelplane.store import Store

if TYPE_CHECKING:
    from modelplane.policy import AgentPolicy, AuditLog, AuditSink, Relations


class Service(Protocol):
    """Background work owned by one process: started once, stopped once, within a deadline."""

    def start(self) -> None: ...

    def stop(self, timeout: float) -> bool: ...


def controllers(
    store: Store,
    *,
    model_roots: Sequence[str | Path] = (),
    api_token: str | None = None,
    egress: EgressRules | None = None,
    audit: AuditSink | None = None,
    node_grace: float = NODE_LEASE_SECONDS,
) -> list[Controller]:
    """The controllers of the control plane, bound to ``store``.

    ``api_token``: the bearer token controllers send to the platform's own HTTP APIs (the
    gateway's samples), when it requires one.
    ``egress``: the operator's rules for the hosts SLO alert webhooks may name.
    ``audit``: where remediation playbooks record their actions (category ``remediation``).
    ``node_grace``: seconds a node agent's lapsed lease is given before its Node is marked
    ``Ready=Unknown`` and its claims move.
    """
    from modelplane import sre
    from modelplane.autoscaling import NodePoolController, ReplicaAutoscaler
    from modelplane.gateway import GraphController, HTTPRouteController, InferencePoolController
    from modelplane.rollout import RolloutController
    from modelplane.scheduling import scheduling_controllers
    from modelplane.serving import ModelController
    from modelplane.sre import SLOController

    return [
        ModelController(store, model_roots=model_roots),
        ReplicaAutoscaler(store),
        NodePoolController(store),
        *scheduling_controllers(store, node_grace=node_grace),
        RolloutController(store, token=api_token),
        GraphController(store),
        HTTPRouteController(store),
        InferencePoolController(store),
        SLOController(store, token=api_token, egress=egress),
        sre.RemediationController(store, audit=audit),
    ]


def services(
    store: Store,
    *,
    api_url: str,
    home: str,
    model_roots: Sequence[str | Path] = (),
    agent_packages: Sequence[str] = (),
    api_token: str | None = None,
    model_token: Callable[[str, str], str] | None = None,
    egress: EgressRules | None = None,
    audit: AuditSink | None = None,
) -> list[Service]:
    """Per-process services of an embedded platform whose API listens at ``api_url``.

    ``api_token``: the bearer token they send to that API, when it requires one;
    ``model_token(namespace, agent)``: the token an Agent's model calls send instead, its own
    service account's (:class:`~modelplane.server.ServiceAccountTokens`); ``egress``: the operator's rules for the hosts agents' HTTP tools may reach;
    ``audit``: where run-time decisions (agents' tool calls) are recorded.
    """
    from modelplane.agents import AgentService
    from modelplane.drivers import LocalDevices, local_node_name
    from modelplane.jobs import JobRunner
    from modelplane.serving import NodeAgent

    return [
        LocalDevices(store),
        NodeAgent(store, local_node_name(), home, model_roots=model_roots),
        JobRunner(store, local_node_name(), home),
        AgentService(
            store,
            api_url=api_url,
            home=home,
            agent_packages=agent_packages,
            api_token=api_token,
            model_token=model_token,
            egress=egress,
            authorizer=agent_policy(store, audit),
            message_authorizer=agent_policy(store, audit).authorize_message,
        ),
    ]


def audit_log(store: Store, *, retention: str | None = None) -> AuditLog:
    """The one audit log of this process, in the store's database: handed to the server (its
    admission decisions), to :func:`routes` (``/audit``) and to whatever else decides."""
    from modelplane.policy import open_audit_log

    return open_audit_log(store.url, retention=retention)


def routes(
    store: Store,
    *,
    home: str,
    egress: EgressRules | None = None,
    audit: AuditLog | None = None,
    relations: Relations | None = None,
) -> Sequence[BaseRoute]:
    """Routes mounted beside ``/apis``: gateways and runtimes that answer on the same address.

    ``home``: where uploaded agent bundles are kept; ``egress``: the operator's rules for the hosts
    upstream Model versions and Streamable HTTP ToolServers may call; ``audit``: the log ``/audit``
    reads (none: not mounted), where approval decisions and the MCP gateway's tool calls are
    recorded; ``relations``: the Relationships the API server follows (give the server the same
    one), so that the gateway and the agent routes decide membership as the API does.
    """
    from modelplane.agents import BundleStore, agent_routes, approval_routes, bundle_routes
    from modelplane.gateway import mount as gateway_mount
    from modelplane.mcpgateway import mount as mcp_mount
    from modelplane.mcpgateway import tenancy
    from modelplane.policy import AgentPolicy, RuntimePolicies, Tenancy, audit_routes
    from modelplane.sre import targets_route

    tool_policy = AgentPolicy(RuntimePolicies(store))  # the MCP gateway audits its own calls
    members = Tenancy(relations=relations)
    return [
        gateway_mount(store, egress=egress, audit=audit, tenancy=members),
        mcp_mount(
            store, egress=egress, audit=audit, authorizer=tool_policy.tool_authorizer(tenancy)
        ),
        *agent_routes(store, members),
        *approval_routes(store, agent_policy(store, audit)),
        *bundle_routes(BundleStore(home)),
        *(audit_routes(audit) if audit is not None else ()),
        targets_route(store, members),
    ]


_AGENT_POLICIES: dict[int, tuple[Store, AgentPolicy]] = {}


def agent_policy(store: Store, audit: AuditSink | None = None) -> AgentPolicy:
    """The runtime Policies of ``store`` as the agents' tool-call hook and approval gate: one per
    store in a process, so the runtime and the approval routes share one compiled cache."""
    from modelplane.policy import AgentPolicy, RuntimePolicies

    held = _AGENT_POLICIES.get(id(store))
    if held is None or held[0] is not store:
        held = (store, AgentPolicy(RuntimePolicies(store, audit=audit)))
        _AGENT_POLICIES[id(store)] = held
    if audit is not None:
        held[1].policies.audit = audit
    return held[1]


def openapi() -> Sequence[Mapping[str, Mapping[str, Any]]]:
    """How :func:`routes` appear in ``/openapi.json``: one part per mounted set of routes."""
    from modelplane.agents import agent_openapi_paths as agent_paths
    from modelplane.agents import approval_openapi_paths as approval_paths
    from modelplane.agents import bundle_openapi_paths as bundle_paths
    from modelplane.gateway import openapi_paths as gateway_paths
    from modelplane.policy import audit_openapi_paths
    from modelplane.sre import targets_openapi

    return [
        gateway_paths(),
        agent_paths(),
        approval_paths(),
        bundle_paths(),
        audit_openapi_paths(),
        targets_openapi(),
    ]


def relationships(store: Store) -> Relations:
    """The Relationships of ``store`` that every surface of this process decides membership by:
    hand the one object to :func:`routes` and to the server."""
    from modelplane.policy import Relations

    return Relations(store)


def node_services(
    store: Store,
    *,
    node: str,
    home: str,
    model_roots: Sequence[str | Path] = (),
    lease_duration: float = NODE_LEASE_SECONDS,
) -> list[Service]:
    """The services of ``modelplane node``, the node agent of one machine named ``node``: its
    devices published, the replicas and Jobs placed on it run (the first three of
    :func:`services`; a Job without a claim runs only on the embedded platform);
    ``lease_duration``: seconds its heartbeat lease lasts."""
    from modelplane.drivers import LocalDevices
    from modelplane.jobs import JobRunner
    from modelplane.serving import NodeAgent

    return [
        LocalDevices(store, node=node),
        NodeAgent(
            store,
            node,
            home,
            model_roots=model_roots,
            lease_duration=lease_duration,
        ),
        JobRunner(store, node, home, run_unplaced=False),
    ]
