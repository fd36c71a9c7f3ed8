"""The MCP gateway: ``/mcp/{namespace}/{server}``, every ToolServer behind authorization and audit.

Owns: serving each ``ToolServer`` as a Streamable HTTP MCP endpoint per namespace (the SDK's
low-level ``Server`` and session manager, :mod:`._gateway`), the pooled upstream sessions to the
servers (one long-lived stdio process or HTTP session per endpoint, restarted when it dies,
:mod:`._upstream`), the authorizer hook that filters ``tools/list`` and decides each
``tools/call`` with its arguments, with tenancy as the default (:mod:`._authorize`), and the audit
record of each call, and a client for it (:func:`open_session`). See ``docs/mcp.md``.

Must not touch: the store per request (ToolServers come from an informer's cache), other
subsystems' internals (the Cedar decisions come in through the ``authorizer`` hook the platform
passes), or the ToolServer objects (it only reads them).

Example::

    from modelplane.mcpgateway import McpGateway, mount

    routes = [mount(store, audit=audit_log)]      # beside the REST API, as `modelplane up` does
"""

from modelplane.mcpgateway._authorize import (
    NAMESPACE_GROUP,
    Authorizer,
    arguments_digest,
    belongs_to,
    call_event,
    decide,
    tenancy,
)
from modelplane.mcpgateway._client import open_session
from modelplane.mcpgateway._gateway import Admits, McpGateway, ToolServers
from modelplane.mcpgateway._mount import PATH, ToolServerCache, mount
from modelplane.mcpgateway._upstream import Upstream, UpstreamUnavailable

__all__ = [
    "NAMESPACE_GROUP",
    "PATH",
    "Admits",
    "Authorizer",
    "McpGateway",
    "ToolServerCache",
    "ToolServers",
    "Upstream",
    "UpstreamUnavailable",
    "arguments_digest",
    "belongs_to",
    "call_event",
    "decide",
    "mount",
    "open_session",
    "tenancy",
]
