"""Authorization of the object routes: who may write which kinds, who may read Secret values.

Until the governance issue brings Policy, the rules are those of
:mod:`modelplane.api._principal`:

* **writes** (create, replace, patch, delete, and the same on ``/status``) of a kind whose
  :attr:`~modelplane.api.KindInfo.admin_only` is set (operator-owned configuration) need an
  administrator (a member of ``system:masters``); anyone else gets 403 ``Forbidden``;
* **status** (``/status`` of every kind) is written by the platform's components, and read as
  fact by others: the gateway sends requests to the replica URLs in ``Endpoint.status``, the node
  agent runs replicas where a claim's ``status.allocation`` says. A tenant who could write status
  could point the gateway at any host, so ``/status`` writes need an administrator too (as
  Kubernetes' RBAC gives ``*/status`` to controllers, not to users);
* **Relationships** of namespace ``N`` may also be written by an owner of ``N`` (a
  ``Relationship`` ``owner-of Namespace N``), who relates people and agents within ``N``;
* **Secret values** are shown only to administrators. Everyone else gets Secrets from get, list,
  watch and the answers to their own writes with every key of ``data`` kept and every value
  replaced by :data:`REDACTED` (not base64, so a client cannot mistake it for a value, and a
  redacted object written back is refused by validation instead of overwriting the values).
  ``stringData`` is never stored, so never shown.

A server without authentication serves :data:`~modelplane.api.LOCAL_OPERATOR`, an administrator:
embedded mode on one machine behaves as before. The routes call :func:`authorize_write` before
a write and pass every object they answer with through :func:`presenter`.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

from modelplane.api import ADMIN_GROUP, KindInfo, Principal, principal_of
from modelplane.api.errors import Forbidden
from modelplane.server._context import context
from modelplane.store import JSON

#: what a Secret value is replaced with for a principal who may not read it
REDACTED = "<redacted>"
#: the kinds whose values only principals allowed to read secrets see
_SECRET_KINDS = frozenset({"Secret"})


def may_read_secrets(principal: Principal) -> bool:
    """Whether ``principal`` sees Secret values (administrators only, for now)."""
    return principal.is_admin


def authorize_write(
    request: Request,
    info: KindInfo,
    verb: str,
    name: str | None = None,
    *,
    status: bool = False,
) -> None:
    """Raise Forbidden unless the caller of ``request`` may ``verb`` objects of ``info``'s kind
    (``status``: the write is to the ``/status`` subresource)."""
    principal = principal_of(request.scope)
    refusal = write_refusal(principal, info, verb, name, status=status)
    if refusal is not None and (status or not _relates_as_owner(request, info, principal)):
        raise refusal


def _relates_as_owner(request: Request, info: KindInfo, principal: Principal) -> bool:
    # the owner of a namespace (owner-of Namespace N) writes the Relationships of N; those
    # reaching outside N take no effect (modelplane.policy._relations)
    namespace = request.path_params.get("namespace")
    relations = context(request).relations
    return (
        info.kind == "Relationship"
        and bool(namespace)
        and relations is not None
        and relations.owns_namespace(principal, str(namespace))
    )


def write_refusal(
    principal: Principal,
    info: KindInfo,
    verb: str,
    name: str | None = None,
    *,
    status: bool = False,
) -> Forbidden | None:
    """The Forbidden a write by ``principal`` gets from the built-in rules, None if allowed
    (also what ``SelfSubjectAccessReview`` answers with)."""
    if principal.is_admin or not (info.admin_only or status):
        return None
    target = f"{info.plural}{f' {name!r}' if name else ''}"
    why = (
        f"{info.kind} is operator-owned configuration"
        if info.admin_only
        else f"the status of {info.kind} objects is written by the platform's components"
    )
    return Forbidden(
        f"{target} is forbidden: user {principal.name!r} cannot {verb} {info.kind}"
        f" ({info.api_version}): {why}, which only members of the group {ADMIN_GROUP!r} may"
        " write; ask an operator, or use an administrator's token",
        details={
            "kind": info.kind,
            "group": info.group,
            **({"name": name} if name else {}),
        },
    )


def redact(obj: JSON) -> JSON:
    """``obj`` (a Secret) with its values replaced by :data:`REDACTED`, keys kept."""
    out = {k: v for k, v in obj.items() if k != "stringData"}
    data = obj.get("data")
    if isinstance(data, dict):
        out["data"] = dict.fromkeys(data, REDACTED)
    return out


def presenter(request: Request, info: KindInfo) -> Callable[[JSON], JSON] | None:
    """How objects of ``info``'s kind are shown to the caller of ``request``; None: as stored."""
    if info.kind not in _SECRET_KINDS or may_read_secrets(principal_of(request.scope)):
        return None
    return redact


def visible(request: Request, info: KindInfo, obj: JSON) -> JSON:
    """``obj`` as the caller of ``request`` may see it."""
    present = presenter(request, info)
    return obj if present is None else present(obj)
