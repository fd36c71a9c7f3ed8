"""Known vulnerabilities from an offline OSV database: the per-ecosystem ``all.zip`` as OSV
publishes it (one JSON advisory per file).

A pinned version is affected when an advisory lists it in ``affected[].versions`` or an
``ECOSYSTEM`` range holds it: events sorted by version, ``introduced`` opens the range, ``fixed``
closes it before the fix and ``last_affected`` after that version (versions compared by
``packaging``). ``GIT`` and ``SEMVER`` ranges are not evaluated (OSV's ``versions`` lists them).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from packaging.version import InvalidVersion, Version

from modelplane.supplychain._names import package_key


class OsvError(ValueError):
    """An OSV database file that cannot be read."""


@dataclass(frozen=True)
class Advisory:
    """One advisory's statement about one package."""

    id: str
    summary: str
    aliases: tuple[str, ...]
    versions: frozenset[str]
    ranges: tuple[tuple[tuple[str, str], ...], ...]  # per range, (event kind, version) pairs

    def affects(self, version: str) -> bool:
        if version in self.versions:
            return True
        try:
            pinned = Version(version)
        except InvalidVersion:
            return False
        return any(_in_range(pinned, events) for events in self.ranges)

    def fixed_in(self) -> list[str]:
        return [v for events in self.ranges for kind, v in events if kind == "fixed"]


def _key(event: tuple[str, str]) -> Version:
    try:
        return Version(event[1])
    except InvalidVersion:
        return Version("0")


def _in_range(version: Version, events: tuple[tuple[str, str], ...]) -> bool:
    affected = False
    for kind, at in sorted(events, key=_key):
        bound = _key((kind, at))
        if kind == "introduced" and version >= bound:
            affected = True
        elif version > bound or (kind == "fixed" and version == bound):
            # past a fix, a last affected version or a limit
            affected = affected and kind == "introduced"
    return affected


class OsvDatabase:
    """The advisories of one OSV zip, by (ecosystem, package name)."""

    def __init__(self, advisories: dict[tuple[str, str], list[Advisory]], source: str) -> None:
        self._by_package = advisories
        self.source = source

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_package.values())

    def advisories(self, ecosystem: str, name: str) -> list[Advisory]:
        return self._by_package.get((ecosystem, package_key(name, ecosystem)), [])

    def affecting(self, ecosystem: str, name: str, version: str) -> list[Advisory]:
        return [a for a in self.advisories(ecosystem, name) if a.affects(version)]

    @classmethod
    def load(cls, path: Path) -> OsvDatabase:
        found: dict[tuple[str, str], list[Advisory]] = {}
        try:
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    if member.endswith(".json"):
                        _add(found, orjson.loads(archive.read(member)), f"{path}:{member}")
        except (AttributeError, TypeError, KeyError):
            raise OsvError(f"{path}: an advisory is not in the OSV schema") from None
        except FileNotFoundError:
            raise OsvError(f"{path}: no such OSV database") from None
        except (OSError, zipfile.BadZipFile, orjson.JSONDecodeError) as exc:
            raise OsvError(f"{path}: not an OSV database zip ({exc})") from None
        return cls(found, str(path))


def _add(found: dict[tuple[str, str], list[Advisory]], doc: Any, where: str) -> None:
    if not isinstance(doc, dict) or "id" not in doc:
        raise OsvError(f"{where}: not an OSV advisory (no id)")
    for affected in doc.get("affected") or []:
        package = affected.get("package") or {}
        ecosystem, name = str(package.get("ecosystem", "")), str(package.get("name", ""))
        if not name:
            continue
        ranges = tuple(
            tuple(
                (kind, str(value))
                for event in r.get("events") or []
                for kind, value in event.items()
            )
            for r in affected.get("ranges") or []
            if r.get("type") == "ECOSYSTEM"
        )
        advisory = Advisory(
            id=str(doc["id"]),
            summary=str(doc.get("summary") or str(doc.get("details", ""))[:120]),
            aliases=tuple(doc.get("aliases") or ()),
            versions=frozenset(str(v) for v in affected.get("versions") or ()),
            ranges=ranges,
        )
        found.setdefault((ecosystem, package_key(name, ecosystem)), []).append(advisory)
