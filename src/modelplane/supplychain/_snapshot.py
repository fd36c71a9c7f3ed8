"""The index snapshot: every package name of an index with its first release and download rank.

An offline stand-in for the package index: ``modelplane audit snapshot`` builds it from a list a
person gives (TSV or CSV of name, first release, download rank and optionally an SPDX license) or
from the index's PEP 691 JSON API for a few names. The file is one JSON document (gzip when its
name ends in ``.gz``): the names sorted in PEP 503 form and parallel arrays, so loading it is one
``orjson.loads`` and one dict.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from modelplane.supplychain._names import normalize, package_key

FORMAT = "modelplane.dev/index-snapshot/v1"

#: a PyPI name (PEP 508) or an npm one (``@scope/name``)
_NAME = re.compile(r"(@[a-z0-9][\w.-]*/)?[a-z0-9]([\w.-]*[a-z0-9])?", re.I)

#: header words that name each column of a list (lower case, separators folded away)
_COLUMNS = {
    "name": ("name", "package", "project"),
    "released": ("firstrelease", "released", "firstreleased", "month", "date", "created"),
    "rank": ("rank", "downloadrank"),
    "license": ("license", "licence", "spdx"),
}


class SnapshotError(ValueError):
    """A snapshot or a name list that cannot be read: the file, the line and what was wrong."""


@dataclass(frozen=True)
class Release:
    """When a package was first released, as precisely as the list says it."""

    year: int
    month: int
    day: int = 0  # 0: only the month is known

    def last_day(self) -> dt.date:
        """The latest date it may have been: a month counts from its end, so "new" errs on the
        side of saying so."""
        if self.day:
            return dt.date(self.year, self.month, self.day)
        nxt = dt.date(self.year + self.month // 12, self.month % 12 + 1, 1)
        return nxt - dt.timedelta(days=1)

    def __str__(self) -> str:
        if self.day:
            return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
        return f"{self.year:04d}-{self.month:02d}"

    def packed(self) -> int:
        return self.year * 10000 + self.month * 100 + self.day

    @classmethod
    def unpack(cls, value: int) -> Release | None:
        if not value:
            return None
        return cls(value // 10000, value // 100 % 100, value % 100)

    @classmethod
    def parse(cls, text: str) -> Release | None:
        """``YYYY-MM``, ``YYYY-MM-DD`` or an ISO timestamp; None for an empty cell."""
        text = text.strip()
        if not text:
            return None
        try:
            if len(text) == 7 and text[4] == "-":
                month = dt.date(int(text[:4]), int(text[5:7]), 1)
                return cls(month.year, month.month)
            day = dt.date.fromisoformat(text[:10])
        except ValueError:
            raise SnapshotError(f"{text!r} is not a date (YYYY-MM or YYYY-MM-DD)") from None
        return cls(day.year, day.month, day.day)


@dataclass(frozen=True)
class Package:
    """What the snapshot knows of one name."""

    name: str  # PEP 503 form
    released: Release | None
    rank: int | None  # 1 = most downloaded; None = not among the ranked
    license: str | None


@dataclass
class IndexSnapshot:
    """Names of one index (PyPI or npm) with first release, rank and license where known."""

    ecosystem: str
    built: str  # the date the snapshot was built, YYYY-MM-DD
    source: str
    names: list[str]
    released: list[int]
    ranks: list[int]
    licenses: dict[str, str] = field(default_factory=dict)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.key(name) in self._index

    def key(self, name: str) -> str:
        """The form this snapshot's names are kept in."""
        return package_key(name, self.ecosystem)

    def get(self, name: str) -> Package | None:
        """The package of that name (any spelling PEP 503 folds to it), or None."""
        key = self.key(name)
        i = self._index.get(key)
        if i is None:
            return None
        rank = self.ranks[i] or None
        return Package(key, Release.unpack(self.released[i]), rank, self.licenses.get(key))

    def rank(self, name: str) -> int | None:
        i = self._index.get(name)
        return (self.ranks[i] or None) if i is not None else None

    def top(self, count: int) -> list[tuple[str, int]]:
        """The ``count`` best-ranked names with their ranks, best first."""
        ranked = [(r, n) for n, r in zip(self.names, self.ranks, strict=True) if r]
        ranked.sort()
        return [(n, r) for r, n in ranked[:count]]

    def dump(self, path: Path) -> None:
        data = orjson.dumps(
            {
                "format": FORMAT,
                "ecosystem": self.ecosystem,
                "built": self.built,
                "source": self.source,
                "names": self.names,
                "released": self.released,
                "ranks": self.ranks,
                "licenses": self.licenses,
            }
        )
        path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)

    @classmethod
    def load(cls, path: Path) -> IndexSnapshot:
        try:
            raw = path.read_bytes()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            doc = orjson.loads(raw)
        except FileNotFoundError:
            raise SnapshotError(f"{path}: no such index snapshot") from None
        except (OSError, EOFError, orjson.JSONDecodeError) as exc:
            raise SnapshotError(f"{path}: not an index snapshot ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise SnapshotError(f"{path}: not an index snapshot (format is not {FORMAT})")
        names, released, ranks = doc.get("names"), doc.get("released"), doc.get("ranks")
        if not (
            isinstance(names, list)
            and isinstance(released, list)
            and isinstance(ranks, list)
            and len(names) == len(released) == len(ranks)
            and all(isinstance(n, str) for n in names)
            and all(isinstance(v, int) for v in released)
            and all(isinstance(v, int) for v in ranks)
        ):
            raise SnapshotError(
                f"{path}: names (strings), released and ranks (integers) must be arrays of one"
                " length"
            )
        return cls(
            ecosystem=str(doc.get("ecosystem", "PyPI")),
            built=str(doc.get("built", "")),
            source=str(doc.get("source", "")),
            names=names,
            released=released,
            ranks=ranks,
            licenses=dict(doc.get("licenses") or {}),
        )


def build(
    packages: Iterable[Package], *, ecosystem: str, source: str, built: dt.date
) -> IndexSnapshot:
    """A snapshot of these packages (a name given twice keeps its best rank and earliest date)."""
    by_name: dict[str, Package] = {}
    for pkg in packages:
        old = by_name.get(pkg.name)
        by_name[pkg.name] = pkg if old is None else _merge(old, pkg)
    ordered = [by_name[name] for name in sorted(by_name)]
    return IndexSnapshot(
        ecosystem=ecosystem,
        built=built.isoformat(),
        source=source,
        names=[p.name for p in ordered],
        released=[p.released.packed() if p.released else 0 for p in ordered],
        ranks=[p.rank or 0 for p in ordered],
        licenses={p.name: p.license for p in ordered if p.license},
    )


def _merge(a: Package, b: Package) -> Package:
    ranks = [r for r in (a.rank, b.rank) if r]
    dates = [d for d in (a.released, b.released) if d]
    return Package(
        a.name,
        min(dates, key=Release.packed) if dates else None,
        min(ranks) if ranks else None,
        a.license or b.license,
    )


def read_name_list(path: Path, ecosystem: str = "PyPI") -> list[Package]:
    """Packages from a TSV or CSV list. With a header row its columns are found by name (name;
    first release, month or date; rank; license); without one the columns are name, first
    release, rank and optionally license, in that order."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path}: cannot read the name list ({exc})") from None
    first = next((r for r in text.splitlines() if r.strip() and not r.startswith("#")), "")
    delimiter = "\t" if "\t" in first else ","
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    return list(_packages(path, rows, ecosystem))


def _packages(path: Path, rows: Iterable[Sequence[str]], ecosystem: str) -> Iterable[Package]:
    columns: dict[str, int] = {"name": 0, "released": 1, "rank": 2, "license": 3}
    first = True
    for line, row in enumerate(rows, start=1):
        if not row or not row[0].strip() or row[0].startswith("#"):
            continue
        if first and _is_header(row):
            columns = _header_columns(path, line, row)
            first = False
            continue
        first = False
        try:
            yield _package(row, columns, ecosystem)
        except SnapshotError as exc:
            raise SnapshotError(f"{path}:{line}: {exc}") from None


def _is_header(row: Sequence[str]) -> bool:
    cell = normalize(row[0]).replace("-", "")
    return cell in _COLUMNS["name"]


def _header_columns(path: Path, line: int, row: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, cell in enumerate(row):
        key = normalize(cell).replace("-", "")
        for column, words in _COLUMNS.items():
            if column not in found and any(key.startswith(w) for w in words):
                found[column] = i
    if "name" not in found:
        raise SnapshotError(f"{path}:{line}: the header names no name column")
    return found


def _cell(row: Sequence[str], columns: dict[str, int], column: str) -> str:
    i = columns.get(column)
    return row[i].strip() if i is not None and i < len(row) else ""


def _package(row: Sequence[str], columns: dict[str, int], ecosystem: str) -> Package:
    rank_text = _cell(row, columns, "rank")
    try:
        rank = int(rank_text) if rank_text else None
    except ValueError:
        raise SnapshotError(f"rank {rank_text!r} is not a whole number") from None
    if rank is not None and rank < 1:
        raise SnapshotError(f"rank {rank} must be 1 or more (1 = most downloaded)")
    name = _cell(row, columns, "name")
    if not _NAME.fullmatch(name):
        raise SnapshotError(f"{name!r} is not a package name")
    return Package(
        package_key(name, ecosystem),
        Release.parse(_cell(row, columns, "released")),
        rank,
        _cell(row, columns, "license") or None,
    )
