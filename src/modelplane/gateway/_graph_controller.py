"""The Graph controller: is every step of a Graph something the gateway can call?

For each ``Graph`` it checks, node by node and step by step, that a ``node`` step names a node of
the graph and an ``endpoint`` step names an Endpoint of the Graph's namespace whose ``Ready``
condition is True, and that no nodes call each other in a cycle. It writes
``status.observedGeneration`` and a ``Ready`` condition (True, reason ``StepsReady``; else False
with the first problem's reason: ``EndpointNotFound``, ``EndpointNotReady``, ``NodeNotFound``,
``RootNotFound``, ``Cycle`` or ``InvalidSpec``, and every problem in the message, e.g. ``step 2 of
node polish: endpoint smollm2-polish does not exist``), only when they change, and records an
Event when the condition changes. A change to an Endpoint re-reconciles the Graphs that call it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from modelplane.control import (
    Controller,
    Request,
    Result,
    Watches,
    commit_status,
    get_condition,
    set_condition,
)
from modelplane.store import JSON, Store

log = logging.getLogger("modelplane.gateway.graphs")

__all__ = ["GraphController", "graph_problems"]


def graph_problems(spec: Any, endpoint: Any, namespace: str = "default") -> list[tuple[str, str]]:
    """``(reason, message)`` for each thing that keeps a Graph's ``spec`` from serving.

    ``endpoint(namespace, name)`` returns the Endpoint object, or None when there is none.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("nodes"), dict):
        return [("InvalidSpec", "spec.nodes must map node names to nodes")]
    nodes: dict[str, Any] = spec["nodes"]
    problems: list[tuple[str, str]] = []
    root = str(spec.get("root") or "root")
    if root not in nodes:
        problems.append(("RootNotFound", f"root {root!r} names no node"))
    for node_name, node in nodes.items():
        steps = node.get("steps") if isinstance(node, dict) else None
        if not isinstance(steps, list):
            problems.append(("InvalidSpec", f"node {node_name} has no list of steps"))
            continue
        for i, step in enumerate(steps, start=1):
            where = f"step {i} of node {node_name}"
            if not isinstance(step, dict):
                problems.append(("InvalidSpec", f"{where} is not an object"))
            elif step.get("node") is not None:
                if step["node"] not in nodes:
                    problems.append(
                        ("NodeNotFound", f"{where}: node {step['node']} does not exist")
                    )
            elif step.get("endpoint") is not None:
                name = str(step["endpoint"])
                found = endpoint(namespace, name)
                if found is None:
                    problems.append(
                        ("EndpointNotFound", f"{where}: endpoint {name} does not exist")
                    )
                    continue
                ready = get_condition(found.get("status"), "Ready") or {}
                if ready.get("status") != "True":
                    why = str(ready.get("message") or ready.get("reason") or "no Ready condition")
                    problems.append(
                        ("EndpointNotReady", f"{where}: endpoint {name} is not Ready ({why})")
                    )
            else:
                problems.append(("InvalidSpec", f"{where} names neither an endpoint nor a node"))
    cycle = _cycle(nodes)
    if cycle:
        problems.append(("Cycle", f"nodes {' -> '.join(cycle)} form a cycle"))
    return problems


def _cycle(nodes: dict[str, Any]) -> list[str]:
    """The first cycle of node steps found (``[a, b, a]``), or ``[]``."""
    edges = {
        name: [
            str(s["node"])
            for s in (node.get("steps") or [] if isinstance(node, dict) else [])
            if isinstance(s, dict) and s.get("node") in nodes
        ]
        for name, node in nodes.items()
    }
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str]:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return []
        for nxt in edges[name]:
            found = visit(nxt, [*path, name])
            if found:
                return found
        done.add(name)
        return []

    for name in edges:
        found = visit(name, [])
        if found:
            return found
    return []


def _calls(graph: JSON, endpoint: str) -> bool:
    nodes = (graph.get("spec") or {}).get("nodes")
    if not isinstance(nodes, dict):
        return False
    return any(
        isinstance(step, dict) and step.get("endpoint") == endpoint
        for node in nodes.values()
        if isinstance(node, dict)
        for step in node.get("steps") or []
    )


class GraphController(Controller):
    """Sets each Graph's ``Ready`` condition from its steps' references (module docstring)."""

    kind = "Graph"
    name = "graph-controller"

    def __init__(self, store: Store, *, namespace: str | None = None, workers: int = 1) -> None:
        super().__init__(store, namespace=namespace, workers=workers)
        # the mapping reads this controller's Graph cache, so the watch is bound per instance
        self.watches = (Watches("Endpoint", self._graphs_calling, namespace=namespace),)  # type: ignore[misc]

    def _graphs_calling(self, endpoint: JSON) -> list[Request]:
        meta = endpoint.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        name = str(meta.get("name") or "")
        try:
            graphs = self.informer().list()
        except RuntimeError:  # stopped
            return []
        return [
            Request(namespace, str(g["metadata"]["name"]))
            for g in graphs
            if str(g["metadata"].get("namespace") or "default") == namespace and _calls(g, name)
        ]

    def _endpoint(self, namespace: str, name: str) -> JSON | None:
        return self.informer("Endpoint").get(namespace, name)

    def reconcile(self, request: Request) -> Result:
        graph = self.live_object(request)
        if graph is None:
            return Result()
        meta = graph.get("metadata") or {}
        problems = graph_problems(graph.get("spec"), self._endpoint, request.namespace)
        if problems:
            ready, reason = False, problems[0][0]
            message = "; ".join(m for _, m in problems)
        else:
            ready, reason, message = True, "StepsReady", "every step's endpoint and node is ready"
        status = copy.deepcopy(graph.get("status") or {})
        set_condition(status, "Ready", ready, reason, message, meta.get("generation"))
        if commit_status(self.store, graph, status, component=self.component) is None:
            return Result(requeue=True)
        return Result()
