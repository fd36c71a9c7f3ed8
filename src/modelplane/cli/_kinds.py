"""Naming objects on the command line: ``models``, ``models,endpoints``, ``model/foo``.

Kinds are found with :func:`modelplane.api.lookup` (kind, plural, singular or short name, any
case); an unknown name is an error (exit 1) that lists the known kinds, as in kubectl.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import click

from modelplane.api import KindInfo, lookup


def kind(name: str) -> KindInfo:
    """The kind named ``name``; :class:`~modelplane.api.errors.NotFound` naming the known kinds."""
    return lookup(name.strip())


def qualified(info: KindInfo, name: str) -> str:
    """``model.modelplane.dev/foo``: how kubectl names an object in ``-o name`` and messages."""
    return f"{info.kind.lower()}.{info.group}/{name}"


@dataclass(frozen=True)
class Selection:
    """What a ``get``/``describe``/``delete`` command line names: kinds, and names per kind."""

    #: (kind, names); empty names mean every object of the kind
    targets: tuple[tuple[KindInfo, tuple[str, ...]], ...]

    @property
    def kinds(self) -> list[KindInfo]:
        return [info for info, _ in self.targets]


def select(args: Sequence[str], *, names_required: bool = False) -> Selection:
    """Parse ``KIND[,KIND...] [NAME...]`` or ``KIND/NAME [KIND/NAME...]``.

    Several kinds with names, or mixing both forms, is a usage error, as in kubectl.
    """
    if not args:
        raise click.UsageError("name a kind, e.g. `models`, `endpoints` or `model/NAME`")
    if any("/" in a for a in args):
        if not all("/" in a for a in args):
            raise click.UsageError(
                "either write KIND NAME... or KIND/NAME..., not both in one command"
            )
        grouped: dict[str, tuple[KindInfo, list[str]]] = {}
        for arg in args:
            head, _, name = arg.partition("/")
            if not name:
                raise click.UsageError(f"{arg!r} names no object: write KIND/NAME")
            info = kind(head)
            grouped.setdefault(info.kind, (info, []))[1].append(name)
        return Selection(tuple((info, tuple(names)) for info, names in grouped.values()))
    kinds: list[KindInfo] = []
    for part in args[0].split(","):
        if part.strip():
            info = kind(part)
            if info not in kinds:
                kinds.append(info)
    if not kinds:
        raise click.UsageError("name a kind, e.g. `models`, `endpoints` or `model/NAME`")
    names = tuple(args[1:])
    if names and len(kinds) > 1:
        raise click.UsageError(
            "names can be given with one kind only; write KIND/NAME for objects of several kinds"
        )
    if names_required and not names:
        raise click.UsageError(f"name the {kinds[0].singular} (or several): KIND NAME...")
    return Selection(tuple((info, names) for info in kinds))
