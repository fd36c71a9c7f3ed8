"""``ToolServer``: an operator's catalogue entry for a stdio MCP server (cluster-scoped).

The program an Agent's stdio tool starts is the operator's choice, never the Agent author's: an
Agent names a ToolServer (``tools[].server``) and the runtime starts the ``command`` written here.
Only administrators may write ToolServers (``ADMIN_ONLY``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from modelplane.api._meta import Resource, Schema, Status


class ToolServerSpec(Schema):
    """How to start the MCP server: a program, its arguments and extra environment."""

    command: str = Field(
        min_length=1,
        description="The program to start; `python` or `python3` is the Python that runs the"
        " agent runtime (it has the `mcp` SDK).",
    )
    args: list[str] = Field(
        default_factory=list,
        description="Its arguments. A relative path is relative to the folder the server starts"
        " in: the Agent's bundle when it has one.",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment.")


class ToolServer(Resource):
    """A stdio MCP server an administrator allows agents to start (``tools[].server``)."""

    spec: ToolServerSpec = Field(description="The command that starts the MCP server.")
    status: Status | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "toolservers"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("tsv",)
    NAMESPACED: ClassVar[bool] = False
    ADMIN_ONLY: ClassVar[bool] = True
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (("COMMAND", "spec.command"),)
