"""The composition root: what an embedded ``modelplane up`` runs.

Each subsystem contributes here, and only here, so subsystems never import one another:

* :func:`controllers` — reconcilers run by the leader-elected :class:`~modelplane.control.Manager`;
* :func:`services` — per-process background work that runs whether or not this process leads
  (a node agent starting model workers, an agent-worker holding shard leases);
* :func:`routes` — ASGI routes mounted beside the REST API (the ``/v1`` gateway, agent instances).

Imports are inside the functions so that the CLI's other commands start without loading them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from starlette.routing import BaseRoute

from modelplane.control import Controller
from modelplane.store import Store


class Service(Protocol):
    """Background work owned by one process: started once, stopped once, within a deadline."""

    def start(self) -> None: ...

    def stop(self, timeout: float) -> bool: ...


def controllers(store: Store) -> list[Controller]:
    """The controllers of the control plane, bound to ``store``."""
    from modelplane.control import ModelController
    from modelplane.gateway import GraphController
    from modelplane.rollout import RolloutController
    from modelplane.scheduling import scheduling_controllers

    return [
        ModelController(store),
        *scheduling_controllers(store),
        RolloutController(store),
        GraphController(store),
    ]


def services(store: Store, *, api_url: str, home: str) -> list[Service]:
    """Per-process services of an embedded platform whose API listens at ``api_url``."""
    from modelplane.agents._service import AgentService
    from modelplane.drivers import LocalDevices, local_node_name
    from modelplane.serving import NodeAgent

    return [
        LocalDevices(store),
        NodeAgent(store, local_node_name(), home),
        AgentService(store, api_url=api_url),
    ]


def routes(store: Store) -> Sequence[BaseRoute]:
    """Routes mounted beside ``/apis``: gateways and runtimes that answer on the same address."""
    from modelplane.agents._routes import routes as agent_routes
    from modelplane.gateway import mount as gateway_mount

    return [gateway_mount(store), *agent_routes(store)]


def openapi() -> Sequence[Mapping[str, Mapping[str, Any]]]:
    """How :func:`routes` appear in ``/openapi.json``: one part per mounted set of routes."""
    from modelplane.agents._routes import openapi_paths as agent_paths
    from modelplane.gateway import openapi_paths as gateway_paths

    return [gateway_paths(), agent_paths()]
