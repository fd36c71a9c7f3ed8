"""``Agent``: a durable, stateful agent definition (its instances live in the agent runtime)."""

from __future__ import annotations

import re
from typing import ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from modelplane.api._meta import Resource, Schema, Status
from modelplane.api._quantity import Quantity
from modelplane.api._types import Duration, Name, Problems, duplicates

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ENTRYPOINT = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")


class Tool(Schema):
    """An MCP server the agent may call."""

    name: Name = Field(description="Unique within the agent; tools are called as `<name>.<tool>`.")
    transport: Literal["stdio", "streamable-http"] = Field(
        description="stdio (a local process) or streamable-http (a remote MCP server)."
    )
    command: str | None = Field(default=None, description="stdio: the program to start.")
    args: list[str] = Field(default_factory=list, description="stdio: its arguments.")
    env: dict[str, str] = Field(default_factory=dict, description="stdio: extra environment.")
    url: str | None = Field(default=None, description="streamable-http: the server's URL.")

    @model_validator(mode="after")
    def _transport(self) -> Self:
        problems = Problems()
        if self.transport == "stdio":
            if not self.command:
                problems.add(
                    ("command",), "a stdio tool needs the command that starts the MCP server"
                )
            if self.url is not None:
                problems.add(
                    ("url",), "url is for streamable-http tools; a stdio tool has a command"
                )
        else:
            if not self.url or not re.match(r"^https?://", self.url):
                problems.add(
                    ("url",),
                    "a streamable-http tool needs the server's http(s) URL, e.g. 'http://localhost:8000/mcp'",
                )
            if self.command is not None or self.args:
                problems.add(
                    ("command",),
                    "command and args are for stdio tools; a streamable-http tool has a url",
                )
        problems.raise_any()
        return self


class Memory(Schema):
    """What an instance remembers between turns, beyond its durable journal."""

    max_bytes: Quantity | None = Field(
        default=None, description='Largest memory per instance, e.g. "10Mi".'
    )
    ttl: Duration | None = Field(
        default=None, description='How long an idle instance\'s memory is kept, e.g. "720h".'
    )


class Backoff(Schema):
    """Delays between attempts: initial, multiplied each time, capped."""

    initial: Duration = Field(default="1s", description="Delay before the second attempt.")
    max: Duration = Field(default="1m", description="Longest delay.")
    multiplier: float = Field(default=2.0, ge=1, description="Growth of the delay per attempt.")


class Retry(Schema):
    """How failed steps (model calls, tool calls) are retried."""

    max_attempts: int = Field(
        default=3, ge=1, description="Attempts in total, including the first."
    )
    backoff: Backoff = Field(default_factory=Backoff, description="Delays between attempts.")


class AgentResources(Schema):
    """What one agent worker slot needs."""

    cpu: Quantity | None = Field(default=None, description='CPU, e.g. "500m".')
    memory: Quantity | None = Field(default=None, description='Memory, e.g. "256Mi".')


class AgentSpec(Schema):
    """What runs, what it may use, and how it is kept alive."""

    entrypoint: str = Field(
        description="The handler, as `package.module:handler` (importable by the agent worker)."
    )
    models: list[Name] = Field(
        default_factory=list, description="Endpoints or Graphs (same namespace) the agent may call."
    )
    tools: list[Tool] = Field(default_factory=list, description="MCP servers the agent may call.")
    memory: Memory | None = Field(default=None, description="Memory limits.")
    idle_timeout: Duration = Field(
        default="5m",
        description="An idle instance is passivated (unloaded, state kept) after this.",
    )
    retry: Retry = Field(default_factory=Retry, description="Retries of failed steps.")
    resources: AgentResources | None = Field(default=None, description="Per-instance resources.")

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        if not _ENTRYPOINT.match(value):
            raise ValueError(
                f"{value!r} is not an entrypoint; write `package.module:handler`, e.g."
                " 'support_bot.agent:handle'"
            )
        return value

    @model_validator(mode="after")
    def _unique_tools(self) -> Self:
        problems = Problems()
        for i, name, first in duplicates(t.name for t in self.tools):
            problems.add(
                ("tools", i, "name"), f"duplicate tool name {name!r} (also tools[{first}])"
            )
        problems.raise_any()
        return self


class Agent(Resource):
    """A durable, stateful agent definition; instances are created at run time."""

    spec: AgentSpec = Field(description="Entrypoint, models, tools and run-time settings.")
    status: Status | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "agents"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ag",)
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("ENTRYPOINT", "spec.entrypoint"),
        ("READY", "status.conditions[type=Ready].status"),
    )
