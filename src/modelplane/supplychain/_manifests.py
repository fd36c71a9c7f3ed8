"""Where dependencies are named: requirements files, ``pyproject.toml``, ``package.json``, stdin.

Each dependency keeps the file and line that named it, so a finding points at the place to fix.
Requirements lines are parsed by ``packaging`` (specifiers, extras, markers); ``-r``/``-c``
includes are followed relative to the including file; options (``--hash``, ``-e``, index URLs)
and direct references (``name @ URL``) are read for the name only.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from modelplane.supplychain._names import package_key


class ManifestError(ValueError):
    """A dependency file that cannot be read: the file, the line and what was wrong."""


@dataclass(frozen=True)
class Dependency:
    """One named dependency and where it was named."""

    name: str  # as written
    ecosystem: str  # "PyPI" or "npm"
    specifier: str = ""  # ">=2,<3", "==2.31.0", or npm's "^1.2.3"
    extras: tuple[str, ...] = ()
    marker: str = ""
    file: str = "-"  # the path as given, "-" for stdin
    line: int = 0  # 1-based; 0 when the format has no lines (stdin counts lines)

    @property
    def key(self) -> str:
        return package_key(self.name, self.ecosystem)

    @property
    def pinned(self) -> str | None:
        """The exact version when the specifier pins one (``==1.2.3``, npm ``1.2.3``)."""
        spec = self.specifier.strip()
        if self.ecosystem == "npm":
            return spec if re.fullmatch(r"\d+\.\d+\.\d+[\w.+-]*", spec) else None
        match = re.fullmatch(r"===?\s*([\w.+!-]+)", spec)
        return match.group(1) if match and "*" not in match.group(1) else None


def read(path: Path, *, label: str | None = None) -> list[Dependency]:
    """The dependencies a file names, by its kind: ``pyproject.toml``, ``package.json``, else
    a requirements file."""
    shown = label or str(path)
    if path.name == "pyproject.toml":
        return _pyproject(path, shown)
    if path.name == "package.json":
        return _package_json(path, shown)
    return list(_requirements(path, shown, seen=set()))


def read_names(lines: Iterable[str], *, ecosystem: str = "PyPI") -> list[Dependency]:
    """Names one per line (stdin), each with a version specifier if it has one."""
    found: list[Dependency] = []
    for number, text in enumerate(lines, start=1):
        text = text.split("#", 1)[0].strip()
        if text:
            found.append(
                _requirement(text, "-", number)
                if ecosystem == "PyPI"
                else Dependency(text, "npm", file="-", line=number)
            )
    return found


def _text(path: Path, shown: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{shown}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{shown}: cannot read it ({exc})") from None


def _requirement(text: str, shown: str, line: int) -> Dependency:
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise ManifestError(f"{shown}:{line}: {text!r} is not a requirement ({exc})") from None
    return Dependency(
        req.name,
        "PyPI",
        str(req.specifier),
        tuple(sorted(req.extras)),
        str(req.marker) if req.marker else "",
        shown,
        line,
    )


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines with ``\\`` continuations joined and comments removed, with the first line's number."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        if whole:
            yield start, whole
    if pending.strip():
        yield start, pending.strip()


def _requirements(path: Path, shown: str, seen: set[Path]) -> Iterator[Dependency]:
    resolved = path.resolve()
    if resolved in seen:
        return  # an include cycle: each file is read once
    seen.add(resolved)
    for number, line in _logical_lines(_text(path, shown)):
        include = re.match(r"^(-r|-c|--requirement|--constraint)(?:\s+|=)(\S+)", line)
        if include:
            target = path.parent / include.group(2)
            yield from _requirements(target, _shown_beside(shown, include.group(2)), seen)
            continue
        if line.startswith("-e ") or line.startswith("--editable"):
            line = line.split("=", 1)[-1] if line.startswith("--editable=") else line.split()[-1]
            egg = re.search(r"#egg=([\w.-]+)", line)
            if egg is None:
                continue  # a local path: nothing an index answers for
            line = egg.group(1)
        if line.startswith("-"):
            continue  # --index-url, --hash on its own line, --no-binary...
        line = re.split(r"\s+--", line, maxsplit=1)[0]  # per-requirement options (--hash)
        if re.match(r"^(\.|/|[a-z]+://)", line):
            continue  # a path or URL without a name
        yield _requirement(line, shown, number)


def _shown_beside(shown: str, include: str) -> str:
    parent = Path(shown).parent
    return include if str(parent) == "." else str(parent / include)


def _pyproject(path: Path, shown: str) -> list[Dependency]:
    text = _text(path, shown)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{shown}: not TOML ({exc})") from None
    project = doc.get("project") or {}
    optional = project.get("optional-dependencies") or {} if isinstance(project, dict) else {}
    if not isinstance(project, dict) or not isinstance(optional, dict):
        raise ManifestError(f"{shown}: [project] and its optional-dependencies must be tables")
    lists: list[object] = [project.get("dependencies") or [], *optional.values()]
    found: list[Dependency] = []
    for entries in lists:
        if not isinstance(entries, list):
            raise ManifestError(f"{shown}: [project] dependencies must be lists of strings")
        for entry in entries:
            found.append(_requirement(str(entry), shown, _line_of(text, str(entry))))
    return found


def _package_json(path: Path, shown: str) -> list[Dependency]:
    text = _text(path, shown)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{shown}:{exc.lineno}: not JSON ({exc.msg})") from None
    found: list[Dependency] = []
    for section in ("dependencies", "devDependencies"):
        entries = doc.get(section) or {} if isinstance(doc, dict) else {}
        if not isinstance(entries, dict):
            raise ManifestError(f"{shown}: {section} must be an object of name: version")
        for name, version in entries.items():
            line = _line_of(text, json.dumps(name))
            found.append(Dependency(name, "npm", str(version), file=shown, line=line))
    return found


def _line_of(text: str, needle: str) -> int:
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else 0
