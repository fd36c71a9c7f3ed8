"""``Graph``: endpoints composed into one served model (sequence, switch, ensemble, splitter)."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from modelplane.api._meta import READY_COLUMN, Resource, Schema, Status
from modelplane.api._types import Name, Problems

GraphNodeType = Literal["Sequence", "Switch", "Ensemble", "Splitter"]
#: how an Ensemble node combines its steps' answers (the rules the gateway implements)
EnsembleMerge = Literal["concatenate", "longest", "shortest", "first"]


class GraphStep(Schema):
    """One step of a node: an endpoint to call, or another node of the graph."""

    name: str | None = Field(default=None, description="Optional label, shown in traces.")
    endpoint: Name | None = Field(default=None, description="An Endpoint (same namespace).")
    node: str | None = Field(default=None, description="Another node of this graph.")
    condition: str | None = Field(
        default=None,
        description=(
            "Switch only: an expression over the request, e.g. `request.model == 'small'`; the"
            " first step whose condition holds is taken."
        ),
    )
    weight: int | None = Field(
        default=None, ge=0, le=100, description="Splitter only: percent of requests, 0 to 100."
    )
    system: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Endpoint steps: a system message put first in the step's messages, e.g. how to"
            " rewrite the previous step's answer in a Sequence."
        ),
    )


class GraphNode(Schema):
    """How a node combines its steps."""

    type: GraphNodeType = Field(
        description=(
            "Sequence (each step's output feeds the next), Switch (the first step whose"
            " condition holds), Ensemble (all steps, results combined) or Splitter (one step,"
            " chosen by weight)."
        )
    )
    steps: list[GraphStep] = Field(min_length=1, description="The steps, in order.")
    merge: EnsembleMerge | None = Field(
        default=None,
        description=(
            "Ensemble only: how the answers are combined: concatenate (default; in step order,"
            " separated by a blank line), longest, shortest or first (the first step that"
            " answered)."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = Problems()
        for i, step in enumerate(self.steps):
            if (step.endpoint is None) == (step.node is None):
                problems.add(("steps", i), "set exactly one of endpoint or node")
            if step.weight is not None and self.type != "Splitter":
                problems.add(
                    ("steps", i, "weight"),
                    f"weight is only used by Splitter nodes, not {self.type}",
                )
            if step.condition is not None and self.type != "Switch":
                problems.add(
                    ("steps", i, "condition"),
                    f"condition is only used by Switch nodes, not {self.type}",
                )
            if self.type == "Switch" and step.condition is None:
                problems.add(("steps", i, "condition"), "each step of a Switch needs a condition")
        if self.merge is not None and self.type != "Ensemble":
            problems.add(("merge",), f"merge is only used by Ensemble nodes, not {self.type}")
        if self.type == "Splitter":
            missing = [i for i, s in enumerate(self.steps) if s.weight is None]
            for i in missing:
                problems.add(("steps", i, "weight"), "each step of a Splitter needs a weight")
            total = sum(s.weight or 0 for s in self.steps)
            if not missing and total != 100:
                problems.add(("steps",), f"weights sum to {total}; they must sum to 100")
        problems.raise_any()
        return self


class GraphSpec(Schema):
    """The nodes and the one requests enter at."""

    nodes: dict[str, GraphNode] = Field(min_length=1, description="Node name -> node.")
    root: str = Field(default="root", description="The node requests enter at.")

    @model_validator(mode="after")
    def _references(self) -> Self:
        problems = Problems()
        names = sorted(self.nodes)
        if self.root not in self.nodes:
            problems.add(
                ("root",), f"root {self.root!r} names no node; the nodes are: {', '.join(names)}"
            )
        for node_name, node in self.nodes.items():
            for i, step in enumerate(node.steps):
                if step.node is not None and step.node not in self.nodes:
                    problems.add(
                        ("nodes", node_name, "steps", i, "node"),
                        f"{step.node!r} names no node; the nodes are: {', '.join(names)}",
                    )
        cycle = _find_cycle(self.nodes)
        if cycle:
            problems.add(
                ("nodes", cycle[0]), f"nodes call each other in a cycle: {' -> '.join(cycle)}"
            )
        problems.raise_any()
        return self


def _find_cycle(nodes: dict[str, GraphNode]) -> list[str]:
    edges = {n: [s.node for s in node.steps if s.node in nodes] for n, node in nodes.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> list[str]:
        state[name] = 1
        for nxt in edges[name]:
            assert nxt is not None
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], name, nxt] if nxt in path else [name, nxt]
            if nxt not in state:
                found = visit(nxt, [*path, name])
                if found:
                    return found
        state[name] = 2
        return []

    for name in sorted(nodes):
        if name not in state:
            found = visit(name, [])
            if found:
                return found
    return []


class Graph(Resource):
    """A composition of endpoints served as one model name."""

    spec: GraphSpec = Field(description="Nodes and root.")
    status: Status | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "graphs"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("gr",)
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("ROOT", "spec.root"),
        READY_COLUMN,
    )
