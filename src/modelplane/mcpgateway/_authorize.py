"""Who may list and call which tool: the authorizer hook, its default (tenancy), the audit record.

An :data:`Authorizer` answers ``(principal, namespace, server, tool, arguments)`` with a
:class:`~modelplane.policy.Decision`. ``arguments`` is the call's JSON object for ``tools/call``,
and None for ``tools/list`` ("may this principal call this tool at all?"), so a policy on
arguments can still let a tool be listed. The gateway is given one at construction; the platform
wires the Cedar runtime policies in. The default, :func:`tenancy`, allows administrators and the
principals of the namespace: members of the group ``modelplane:namespace:<ns>`` and the namespace's
service accounts (``system:serviceaccount:<ns>:<name>``).

An authorizer that raises denies (fail closed); the error is the reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from modelplane.api import NAMESPACE_GROUP_PREFIX, Principal
from modelplane.policy import AuditEvent, Decision

#: ``(principal, namespace, server, tool, arguments or None for tools/list) -> Decision``
Authorizer = Callable[[Principal, str, str, str, Mapping[str, Any] | None], Decision]

#: the group of a namespace's members (the tenancy convention)
NAMESPACE_GROUP = NAMESPACE_GROUP_PREFIX + "{}"
# Kubernetes' group of all the service accounts of a namespace; the tenancy rule reads only the
# service account's name, so a principal with this group alone is admitted here and not there
_SERVICE_ACCOUNT_GROUP = "system:serviceaccounts:{}"


def belongs_to(principal: Principal, namespace: str) -> bool:
    """Whether ``principal`` is an administrator or a member or service account of ``namespace``
    (:attr:`~modelplane.api.Principal.namespaces`, what the tenancy rule reads)."""
    return (
        principal.is_admin
        or namespace in principal.namespaces
        or _SERVICE_ACCOUNT_GROUP.format(namespace) in principal.groups
    )


def tenancy(
    principal: Principal,
    namespace: str,
    server: str,
    tool: str,
    arguments: Mapping[str, Any] | None,
) -> Decision:
    """The default authorizer: the namespace's own principals (and administrators) may call
    every tool of its servers; nobody else may call any."""
    if belongs_to(principal, namespace):
        return Decision(True)
    return Decision(
        False,
        ("tenancy",),
        (
            f"{principal.name} is not a member of the namespace {namespace!r}: ask for the group"
            f" {NAMESPACE_GROUP.format(namespace)!r}, or use the namespace of your own tenant",
        ),
    )


def decide(
    authorizer: Authorizer,
    principal: Principal,
    namespace: str,
    server: str,
    tool: str,
    arguments: Mapping[str, Any] | None,
) -> Decision:
    """``authorizer``'s decision; one that raises is a deny naming the error (fail closed)."""
    try:
        return authorizer(principal, namespace, server, tool, arguments)
    except Exception as exc:
        return Decision(False, ("authorizer-error",), (f"{type(exc).__name__}: {exc}",))


def arguments_digest(arguments: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``arguments`` (sorted keys, no spaces)."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def call_event(
    principal: Principal,
    namespace: str,
    server: str,
    tool: str,
    arguments: Any,
    decision: Decision,
    action: str = "tools/call",
) -> AuditEvent:
    """The audit record of one ``tools/call`` (or, with ``action="tools/list"``, of a tool hidden
    from a listing: ``arguments`` is then None)."""
    return AuditEvent.of(
        decision,
        category="tool",
        principal=principal.name,
        action=action,
        resource=f"{server}/{tool}",
        namespace=namespace,
        arguments_digest="" if arguments is None else arguments_digest(arguments),
    )
