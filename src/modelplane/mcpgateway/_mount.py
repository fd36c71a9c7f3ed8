"""The gateway mounted beside the REST API: ``/mcp/{namespace}/{server}`` over a store's ToolServers.

:class:`ToolServerCache` is the gateway's view of the operator's catalogue: an informer's cache of
``ToolServer`` objects (started with the first request, which waits at most 5 s for its first
list), each spec parsed once per resourceVersion, so a request never reads the store.
"""

from __future__ import annotations

import threading

from starlette.routing import Route

from modelplane.api import ToolServerSpec
from modelplane.control import Informer
from modelplane.egress import EgressRules
from modelplane.mcpgateway._authorize import Authorizer, tenancy
from modelplane.mcpgateway._gateway import McpGateway
from modelplane.policy import AuditSink
from modelplane.store import Store

#: the route the gateway answers on
PATH = "/mcp/{namespace}/{server}"


class ToolServerCache:
    """ToolServer specs by name, from an informer (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._informer = Informer(store, "ToolServer")
        self._started = False
        self._lock = threading.Lock()
        self._parsed: dict[str, tuple[str, ToolServerSpec]] = {}

    def __call__(self, name: str) -> ToolServerSpec | None:
        if not self._started:
            with self._lock:
                if not self._started:
                    self._informer.start()
                    self._informer.wait_for_sync(5.0)
                    self._started = True
        obj = self._informer.get("", name)
        if obj is None:
            return None
        version = str(obj.get("metadata", {}).get("resourceVersion", ""))
        cached = self._parsed.get(name)
        if cached is not None and cached[0] == version:
            return cached[1]
        spec = ToolServerSpec.model_validate(obj.get("spec") or {})
        self._parsed[name] = (version, spec)
        return spec

    def stop(self, timeout: float = 5.0) -> bool:
        return self._informer.stop(timeout)


def mount(
    store: Store,
    *,
    egress: EgressRules | None = None,
    authorizer: Authorizer = tenancy,
    audit: AuditSink | None = None,
) -> Route:
    """``Route("/mcp/{namespace}/{server}")`` serving the store's ToolServers through a
    :class:`McpGateway` (``authorizer`` decides each tool, ``audit`` records each call)."""
    gateway = McpGateway(ToolServerCache(store), authorizer=authorizer, audit=audit, egress=egress)
    return Route(PATH, endpoint=gateway, methods=["GET", "POST", "DELETE"])
