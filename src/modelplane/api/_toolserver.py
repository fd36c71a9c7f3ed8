"""``ToolServer``: an operator's catalogue entry for an MCP server (cluster-scoped).

The program an Agent's stdio tool starts is the operator's choice, never the Agent author's: an
Agent names a ToolServer (``tools[].server``) and the runtime starts the ``command`` written here.
The MCP gateway (``/mcp/{namespace}/{server}``) serves each ToolServer to the principals of a
namespace: the ``command`` it runs, or the Streamable HTTP server at ``url`` it forwards to.
Only administrators may write ToolServers (``ADMIN_ONLY``).
"""

from __future__ import annotations

import re
from typing import ClassVar, Self

from pydantic import Field, model_validator

from modelplane.api._meta import Resource, Schema, Status
from modelplane.api._types import Problems


class ToolServerSpec(Schema):
    """How to reach the MCP server: a program to start (stdio), or a Streamable HTTP URL."""

    command: str | None = Field(
        default=None,
        min_length=1,
        description="stdio: the program to start; `python` or `python3` is the Python that runs"
        " the agent runtime (it has the `mcp` SDK).",
    )
    args: list[str] = Field(
        default_factory=list,
        description="Its arguments. A relative path is relative to the folder the server starts"
        " in: the Agent's bundle when it has one.",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment.")
    url: str | None = Field(
        default=None,
        description="streamable-http: the server's http(s) URL, reached through the egress rules"
        " (instead of a command).",
    )

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        problems = Problems()
        if (self.command is None) == (self.url is None):
            problems.add(
                ("command",),
                "write either `command` (a stdio server to start) or `url` (a Streamable HTTP"
                " server), not both and not neither",
            )
        if self.url is not None:
            if not re.match(r"^https?://[^/\s]+", self.url):
                problems.add(
                    ("url",), "the server's http(s) URL, e.g. 'https://mcp.example.com/mcp'"
                )
            for key in ("args", "env"):
                if getattr(self, key):
                    problems.add((key,), f"{key} is for a stdio server (`command`); remove it")
        problems.raise_any()
        return self


class ToolServer(Resource):
    """An MCP server an administrator allows agents and the MCP gateway to use."""

    spec: ToolServerSpec = Field(description="The command that starts the MCP server, or its URL.")
    status: Status | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "toolservers"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("tsv",)
    NAMESPACED: ClassVar[bool] = False
    ADMIN_ONLY: ClassVar[bool] = True
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("COMMAND", "spec.command"),
        ("URL", "spec.url"),
    )
