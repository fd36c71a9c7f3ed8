"""``Agent``: a durable, stateful agent definition (its instances live in the agent runtime)."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from modelplane.api._meta import READY_COLUMN, Resource, Schema, Status
from modelplane.api._quantity import Quantity
from modelplane.api._types import Duration, Name, Problems, duplicates

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ENTRYPOINT = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")


#: what an Agent's bundle is named by: the sha256 of its archive
BUNDLE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

#: stdio fields that belong to an operator's ToolServer, not to the Agent
_COMMAND_FIELDS = ("command", "args", "env")


class Tool(Schema):
    """An MCP server the agent may call."""

    name: Name = Field(description="Unique within the agent; tools are called as `<name>.<tool>`.")
    transport: Literal["stdio", "streamable-http", "wasm", "process"] = Field(
        description="stdio (a local process) or streamable-http (a remote MCP server)."
        " wasm: a WebAssembly module of the Agent's bundle, run in the WASM sandbox"
        " (docs/sandbox.md). process: a program of the Agent's bundle (or python3 or sh),"
        " run in the process sandbox, JSON arguments on stdin and a JSON result on stdout."
    )
    server: Name | None = Field(
        default=None,
        description="stdio: the ToolServer (an administrator's catalogue entry) that says which"
        " program to start.",
    )
    url: str | None = Field(default=None, description="streamable-http: the server's URL.")
    module: str | None = Field(
        default=None,
        description="wasm: the module's path inside the Agent's bundle (.wasm binary or .wat"
        " text, the modelplane-json-v1 ABI); called as `<name>.run` with JSON arguments.",
    )
    digest: str | None = Field(
        default=None,
        description="wasm: the sha256:<hex> digest of the module's binary; another module is"
        " refused.",
    )
    command: str | None = Field(
        default=None,
        description="process: the program, a relative path inside the Agent's bundle or one of"
        " the system's python3 and sh; it starts in the bundle's folder.",
    )
    args: list[str] = Field(
        default_factory=list,
        description="process: the program's arguments (e.g. [tools/fetch.py]).",
    )
    hosts: list[str] = Field(
        default_factory=list,
        description="process: the only hosts the tool may reach, each `host` (any port) or"
        " `host:port`, through the runtime's forwarder (MODELPLANE_PROXY); the platform's egress"
        " rules apply too, and each use and refusal is audited. Empty: no network.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_command(cls, data: Any) -> Any:
        # The program a tool starts is the operator's choice: say how to move, not "extra field".
        if isinstance(data, dict):
            problems = Problems()
            # a process tool names a program of its own bundle (checked after), never env
            own = ("command", "args") if data.get("transport") == "process" else ()
            for key in _COMMAND_FIELDS:
                if key in data and key not in own and data[key] not in (None, [], {}):
                    if own:
                        problems.add(
                            (key,),
                            "a process tool gets no environment of the Agent's choosing (only"
                            " PATH, HOME, LANG and MODELPLANE_PROXY); pass settings as arguments",
                        )
                        continue
                    problems.add(
                        (key,),
                        "an Agent may not name the program its tool starts; ask an"
                        " administrator to create a ToolServer with this command, args and env,"
                        " and write `server: <its name>` here instead",
                    )
            problems.raise_any()
        return data

    @model_validator(mode="after")
    def _transport(self) -> Self:
        problems = Problems()
        if self.transport == "wasm":
            _check_wasm(self, problems)
            problems.raise_any()
            return self
        if self.transport == "process":
            _check_process(self, problems)
            problems.raise_any()
            return self
        if self.hosts:
            problems.add(("hosts",), "hosts is for process tools (transport: process)")
        for key in ("module", "digest"):
            if getattr(self, key) is not None:
                problems.add((key,), f"{key} is for wasm tools")
        if self.transport == "stdio":
            if not self.server:
                problems.add(
                    ("server",),
                    "a stdio tool needs `server: NAME`, the ToolServer that starts the MCP"
                    " server (`modelplane get toolservers` lists them)",
                )
            if self.url is not None:
                problems.add(
                    ("url",), "url is for streamable-http tools; a stdio tool has a server"
                )
        else:
            if not self.url or not re.match(r"^https?://", self.url):
                problems.add(
                    ("url",),
                    "a streamable-http tool needs the server's http(s) URL, e.g. 'http://localhost:8000/mcp'",
                )
            if self.server is not None:
                problems.add(
                    ("server",), "server is for stdio tools; a streamable-http tool has a url"
                )
        problems.raise_any()
        return self


def _inside_bundle(path: str | None) -> bool:
    """Whether ``path`` is a relative path that stays inside the Agent's bundle (no ``..``)."""
    if not path:
        return False
    return not path.startswith("/") and ".." not in path.split("/")


def _not_for(
    tool: Tool, keys: tuple[str, ...], transport: str, has: str, problems: Problems
) -> None:
    """A problem for each of ``keys`` set on a tool of ``transport``, which has ``has`` instead."""
    for key in keys:
        if getattr(tool, key) is not None:
            problems.add(
                (key,), f"{key} is not for {transport} tools; a {transport} tool has {has}"
            )


def _check_wasm(tool: Tool, problems: Problems) -> None:
    """A wasm tool names a relative path inside its bundle and the digest of its binary."""
    if not _inside_bundle(tool.module):
        problems.add(
            ("module",),
            "a wasm tool needs `module: PATH`, a relative path inside the Agent's bundle"
            " (e.g. tools/echo.wasm), without '..'",
        )
    if not tool.digest or not BUNDLE_DIGEST.match(tool.digest):
        problems.add(
            ("digest",),
            "a wasm tool needs `digest: sha256:<64 hex>`, the digest of its module's binary",
        )
    _not_for(tool, ("server", "url"), "wasm", "a module", problems)
    if tool.hosts:
        problems.add(
            ("hosts",),
            "a wasm tool has no network (WASI preview 1 has no sockets); hosts is for process"
            " tools",
        )


_HOST_GRANT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$")


def _check_process(tool: Tool, problems: Problems) -> None:
    """A process tool names a program inside its bundle (or python3, sh) and host grants."""
    if not _inside_bundle(tool.command):
        problems.add(
            ("command",),
            "a process tool needs `command: PATH`, a relative path inside the Agent's bundle"
            " (e.g. tools/fetch) without '..', or python3 or sh",
        )
    for i, host in enumerate(tool.hosts):
        if not _HOST_GRANT.match(host):
            problems.add(
                ("hosts", i),
                f"{host!r} is not `host` or `host:port` (e.g. api.example.com:443, 127.0.0.1)",
            )
    _not_for(tool, ("server", "url", "module", "digest"), "process", "a command", problems)


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
        description="The handler, as `package.module:handler`: a module of the Agent's bundle, or"
        " of a package the operator allows (`--agent-packages`)."
    )
    bundle: str | None = Field(
        default=None,
        description="The content-addressed archive of the Agent's code, `sha256:<64 hex digits>`"
        " (`modelplane apply -f` of an Agent's folder uploads it and sets this).",
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

    @field_validator("bundle")
    @classmethod
    def _bundle(cls, value: str | None) -> str | None:
        if value is not None and not BUNDLE_DIGEST.match(value):
            raise ValueError(
                f"{value!r} is not a bundle digest; write `sha256:` and 64 lowercase hex digits"
                " (`modelplane apply -f` of the Agent's folder sets it)"
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
        READY_COLUMN,
    )
