"""The kinds the API serves, and how to find one by any of its names."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from modelplane.api import errors
from modelplane.api._agent import Agent
from modelplane.api._dra import DeviceClass, ResourceClaim, ResourceSlice
from modelplane.api._endpoint import Endpoint
from modelplane.api._event import Event
from modelplane.api._gatewayapi import HTTPRoute, InferencePool
from modelplane.api._graph import Graph
from modelplane.api._job import Job
from modelplane.api._meta import Resource
from modelplane.api._model import Model
from modelplane.api._node import Node
from modelplane.api._nodepool import NodePool
from modelplane.api._objective import InferenceObjective
from modelplane.api._policy import Policy
from modelplane.api._queue import Queue
from modelplane.api._relationship import Relationship
from modelplane.api._secret import Secret
from modelplane.api._toolserver import ToolServer
from modelplane.api._types import suggest

_SCHEMAS: tuple[type[Resource], ...] = (
    Model,
    Endpoint,
    Graph,
    Agent,
    ToolServer,
    Policy,
    Relationship,
    Secret,
    DeviceClass,
    ResourceSlice,
    ResourceClaim,
    HTTPRoute,
    InferencePool,
    InferenceObjective,
    Node,
    NodePool,
    Queue,
    Job,
    Event,
)


@dataclass(frozen=True)
class KindInfo:
    """Where a kind sits in the API and how people refer to it."""

    kind: str
    group: str
    version: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    schema: type[Resource]
    #: other apiVersions accepted on input; objects are stored under :attr:`api_version`
    also_accepted: tuple[str, ...]
    #: extra columns of ``get`` tables: (HEADER, path for :func:`~modelplane.api.resolve`)
    columns: tuple[tuple[str, str], ...]
    #: only administrators may write it (operator-owned configuration)
    admin_only: bool = False

    @property
    def api_version(self) -> str:
        """``group/version``, e.g. ``modelplane.dev/v1alpha1``."""
        return f"{self.group}/{self.version}"

    @property
    def names(self) -> tuple[str, ...]:
        """Every name :func:`lookup` accepts for this kind, lowercase."""
        return (self.kind.lower(), self.plural, self.singular, *self.short_names)


def _info(schema: type[Resource]) -> KindInfo:
    kind = schema.__name__
    return KindInfo(
        kind=kind,
        group=schema.GROUP,
        version=schema.VERSION,
        plural=schema.PLURAL,
        singular=kind.lower(),
        short_names=schema.SHORT_NAMES,
        namespaced=schema.NAMESPACED,
        schema=schema,
        also_accepted=schema.ALSO_ACCEPTED,
        columns=schema.COLUMNS,
        admin_only=schema.ADMIN_ONLY,
    )


@cache
def _all() -> tuple[KindInfo, ...]:
    return tuple(_info(s) for s in _SCHEMAS)


@cache
def _by_name() -> dict[str, KindInfo]:
    return {name: info for info in _all() for name in info.names}


def kinds() -> list[KindInfo]:
    """Every kind, in a stable order (ours first, then DRA, then infrastructure)."""
    return list(_all())


def _known_kinds() -> str:
    return ", ".join(i.kind for i in _all())


def lookup(name: str) -> KindInfo:
    """A kind by kind, plural, singular or short name, any case: ``endpoints``, ``ep``, ``Endpoint``.

    A group suffix as kubectl writes it (``resourceslices.resource.k8s.io``) is accepted too.
    Raises :class:`~modelplane.api.errors.NotFound` naming the known kinds.
    """
    key = name.strip().lower()
    info = _by_name().get(key)
    if info is None and "." in key:
        head, _, group = key.partition(".")
        candidate = _by_name().get(head)
        if candidate is not None and group == candidate.group:
            info = candidate
    if info is None:
        raise errors.NotFound(
            f"the server does not have a resource type {name!r}{suggest(key, _by_name())};"
            f" known kinds: {_known_kinds()}",
            details={"kind": name},
        )
    return info


def kind_info(api_version: str, kind: str) -> KindInfo:
    """The kind an object declares with ``apiVersion`` and ``kind`` (both exact, as on the wire).

    Raises :class:`~modelplane.api.errors.Invalid` naming the known kinds, or the apiVersions a
    known kind is served under.
    """
    by_kind = {i.kind: i for i in _all()}
    info = by_kind.get(kind)
    if info is None:
        hint = suggest(kind, by_kind)
        folded = {k.lower(): k for k in by_kind}.get(str(kind).lower())
        if folded:
            hint = f"; did you mean {folded!r}? (kinds are case-sensitive)"
        raise errors.Invalid(
            f"unknown kind {kind!r}",
            causes=[
                errors.Cause(
                    "kind",
                    f"unknown kind {kind!r}{hint}; known kinds: {_known_kinds()}",
                    "FieldValueNotSupported",
                )
            ],
            details={"kind": kind},
        )
    if api_version != info.api_version and api_version not in info.also_accepted:
        accepted = " or ".join(repr(v) for v in (info.api_version, *info.also_accepted))
        raise errors.Invalid(
            f"{kind} is not served as apiVersion {api_version!r}",
            causes=[
                errors.Cause(
                    "apiVersion",
                    f"{kind} is served as apiVersion {accepted}; got {api_version!r}",
                    "FieldValueNotSupported",
                )
            ],
            details={"kind": kind, "group": info.group},
        )
    return info
