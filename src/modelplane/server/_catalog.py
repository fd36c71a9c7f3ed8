"""The kinds the server serves, indexed the way URLs name them: (group, version, plural)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from modelplane.api import KindInfo
from modelplane.api.errors import NotFound


@dataclass(frozen=True)
class Catalog:
    """Every served kind, by group/version and by plural within it."""

    kinds: tuple[KindInfo, ...]
    _by_group_version: dict[tuple[str, str], dict[str, KindInfo]] = field(repr=False)

    @classmethod
    def of(cls, kinds: Iterable[KindInfo]) -> Catalog:
        infos = tuple(kinds)
        by_gv: dict[tuple[str, str], dict[str, KindInfo]] = {}
        for info in infos:
            by_gv.setdefault((info.group, info.version), {})[info.plural] = info
        return cls(infos, by_gv)

    @property
    def groups(self) -> dict[str, list[str]]:
        """Group name -> its versions, in the order the kinds were given."""
        out: dict[str, list[str]] = {}
        for group, version in self._by_group_version:
            out.setdefault(group, []).append(version)
        return out

    def group_version(self, group: str, version: str) -> list[KindInfo]:
        """The kinds of ``group/version``; NotFound naming the served ones when there is none."""
        found = self._by_group_version.get((group, version))
        if found is None:
            served = ", ".join(f"{g}/{v}" for g, v in self._by_group_version)
            raise NotFound(
                f"the server has no API {group}/{version}; it serves {served}",
                details={"group": group},
            )
        return list(found.values())

    def resource(self, group: str, version: str, plural: str) -> KindInfo:
        """The kind behind a URL's ``{plural}``; NotFound naming the known resources."""
        found = self._by_group_version.get((group, version))
        if found is None:
            self.group_version(group, version)  # raises, naming the served group versions
            raise AssertionError("unreachable")
        info = found.get(plural)
        if info is None:
            raise NotFound(
                f"the server has no resource {plural!r} in {group}/{version}; its resources are"
                f" {', '.join(found)}",
                details={"group": group, "kind": plural},
            )
        return info
