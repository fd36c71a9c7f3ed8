"""Who made a request: the principal every route hands to authorization.

The REST server's authentication puts a :class:`Principal` into the ASGI scope under ``"user"``
(Starlette's place for it); every route, whichever package mounts it, reads it back with
:func:`principal_of`. A server started without authentication serves the person who started it on
their own machine: its requests are :data:`LOCAL_OPERATOR`, an administrator.

Administrators are the members of :data:`ADMIN_GROUP` (Kubernetes' superuser group). A namespace
is a tenant: a principal belongs to the namespaces of its ``modelplane:namespace:<ns>`` groups and,
for a service account, to its own (:attr:`Principal.namespaces`); the rules that follow from it
are in :mod:`modelplane.policy` (tenancy). Other principals may not write operator-owned kinds
(``ADMIN_ONLY``), read Secret values or upload code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: the group whose members may do everything (as Kubernetes' ``system:masters``)
ADMIN_GROUP = "system:masters"
#: the group every authenticated principal is in (as Kubernetes')
AUTHENTICATED_GROUP = "system:authenticated"
#: the group that makes a principal a member of a namespace (a tenant): ``modelplane:namespace:<ns>``
NAMESPACE_GROUP_PREFIX = "modelplane:namespace:"
#: a service account's user name: ``system:serviceaccount:<namespace>:<name>`` (as Kubernetes')
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user or service account, with its groups."""

    name: str
    groups: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return ADMIN_GROUP in self.groups

    @property
    def namespaces(self) -> frozenset[str]:
        """The namespaces (tenants) this principal belongs to by its name and groups: each
        ``modelplane:namespace:<ns>`` group, and the namespace of a service account."""
        found = {
            g[len(NAMESPACE_GROUP_PREFIX) :]
            for g in self.groups
            if g.startswith(NAMESPACE_GROUP_PREFIX) and len(g) > len(NAMESPACE_GROUP_PREFIX)
        }
        if self.name.startswith(SERVICE_ACCOUNT_PREFIX):
            namespace, sep, _ = self.name[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
            if sep and namespace:
                found.add(namespace)
        return frozenset(found)

    # Starlette's BaseUser protocol, so ``request.user`` works where middleware expects it
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.name

    @property
    def identity(self) -> str:
        return self.name


def service_account(namespace: str, name: str) -> Principal:
    """The service account ``name`` of ``namespace`` (what an Agent's instances and an Endpoint
    act as), with Kubernetes' groups for it."""
    return Principal(
        f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
        frozenset(
            {"system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED_GROUP}
        ),
    )


#: the caller of a server that runs without authentication (embedded, loopback, one user)
LOCAL_OPERATOR = Principal("local-operator", frozenset({ADMIN_GROUP, AUTHENTICATED_GROUP}))


def principal_of(scope: Mapping[str, Any]) -> Principal:
    """The principal of an ASGI request scope (:data:`LOCAL_OPERATOR` when auth is off)."""
    user = scope.get("user")
    if isinstance(user, Principal):
        return user
    if user is None:
        return LOCAL_OPERATOR
    # an authenticated user of another middleware: a name, no groups beyond authenticated
    name = getattr(user, "display_name", None) or str(user)
    return Principal(str(name), frozenset({AUTHENTICATED_GROUP}))
