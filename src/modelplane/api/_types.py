"""Field types and checks shared by the kinds: durations, digests, names, per-field problems.

A kind's cross-field rules (weights that must sum to 100, one of two fields) run as pydantic
``model_validator(mode="after")`` hooks and report through :class:`Problems`, which carries each
problem's path *relative to the model* so that validation can name the exact field
(``spec.traffic[1].weight``) instead of the whole object.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, WithJsonSchema

from modelplane.api._meta import check_dns_subdomain

#: One step of a field path: a field (camelCase, as on the wire), a map key or a list index.
PathPart = str | int
Path = tuple[PathPart, ...]


class FieldProblems(ValueError):
    """Raised by a model validator: one or more problems, each at a path below that model."""

    def __init__(self, problems: list[tuple[Path, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{render_path(p) or '.'}: {m}" for p, m in problems))


class Problems:
    """Collects the problems a model validator finds, then raises them all at once."""

    def __init__(self) -> None:
        self._items: list[tuple[Path, str]] = []

    def add(self, path: Path, message: str) -> None:
        self._items.append((path, message))

    def extend(self, items: Iterable[tuple[Path, str]]) -> None:
        self._items.extend(items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def raise_any(self) -> None:
        if self._items:
            raise FieldProblems(self._items)


def render_path(path: Iterable[PathPart]) -> str:
    """``("traffic", 1, "weight")`` -> ``traffic[1].weight`` (no schema: keys look like fields)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part}]"
    return out


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice most like ``word`` (a typo's intended spelling), if any is close enough."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def suggest(word: str, choices: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest choice, or an empty string."""
    close = closest(word, choices)
    return f"; did you mean {close!r}?" if close else ""


def wire_names(model: type[BaseModel]) -> list[str]:
    """The field names of a model as written on the wire (camelCase aliases)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def unknown_fields(model: BaseModel, path: Path = ()) -> list[tuple[Path, str]]:
    """Fields a model kept without knowing them (``extra="allow"``), anywhere below ``model``.

    Our kinds embed Kubernetes DRA structures (a claim template in an Endpoint or a Job); those
    structures keep unknown fields when they arrive in a real DRA object, but inside our own kinds
    a field we do not know is a typo and is refused like any other.
    """
    found: list[tuple[Path, str]] = []
    for key in model.model_extra or {}:
        found.append(
            ((*path, key), f"unknown field {key!r}{suggest(key, wire_names(type(model)))}")
        )
    for name, info in type(model).model_fields.items():
        found.extend(_unknown_below(getattr(model, name), (*path, info.alias or name)))
    return found


M = TypeVar("M", bound=BaseModel)


def refuse_unknown_fields(model: M | None) -> M | None:
    """``model`` as it is, unless :func:`unknown_fields` finds any below it: then all of them as
    problems. The field validator of a DRA structure embedded in one of our kinds."""
    if model is not None:
        problems = Problems()
        problems.extend(unknown_fields(model))
        problems.raise_any()
    return model


def _unknown_below(value: Any, path: Path) -> list[tuple[Path, str]]:
    if isinstance(value, BaseModel):
        return unknown_fields(value, path)
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _unknown_below(item, (*path, i))]
    if isinstance(value, dict):
        return [p for k, item in value.items() for p in _unknown_below(item, (*path, k))]
    return []


# --- durations -----------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration: ``"500ms"`` -> 0.5, ``"1h30m"`` -> 5400, ``"0"`` -> 0.

    Raises :class:`ValueError` saying what a duration looks like.
    """
    if not isinstance(text, str):
        raise ValueError(
            f'{text!r} is not a duration; write a string such as "500ms", "30s" or "5m"'
        )
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            break
        total += float(match[1]) * _UNIT_SECONDS[match[2]]
        position = match.end()
    if position == 0 or position != len(text) or len(text) > 64:
        raise ValueError(
            f'{text!r} is not a duration; write a number with a unit, such as "500ms", "30s",'
            ' "5m" or "1h30m" (units: ns, us, ms, s, m, h)'
        )
    return total


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


#: A Go-style duration string (``"500ms"``, ``"5m"``), kept as written.
Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+)$",
            "description": 'A duration such as "500ms", "30s", "5m" or "1h30m".',
        }
    ),
]

# --- digests and names ---------------------------------------------------------------------------

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _check_digest(value: str) -> str:
    if not _DIGEST.match(value):
        raise ValueError(
            f"{value!r} is not a digest; write 'sha256:' followed by the 64 lowercase hex"
            " characters of the artifact's SHA-256 (e.g. the output of `sha256sum FILE`)"
        )
    return value


#: ``sha256:<64 lowercase hex>``.
Digest = Annotated[
    str,
    AfterValidator(_check_digest),
    WithJsonSchema({"type": "string", "pattern": _DIGEST.pattern}),
]


def _check_name(value: str) -> str:
    return check_dns_subdomain(value, "name")


#: The name of another object (or of an entry in this one): an RFC 1123 subdomain.
Name = Annotated[
    str,
    AfterValidator(_check_name),
    WithJsonSchema({"type": "string", "maxLength": 253}),
]


def duplicates(names: Iterable[str]) -> list[tuple[int, str, int]]:
    """``(index, name, first_index)`` for every name already seen earlier in ``names``."""
    seen: dict[str, int] = {}
    out: list[tuple[int, str, int]] = []
    for i, name in enumerate(names):
        if name in seen:
            out.append((i, name, seen[name]))
        else:
            seen[name] = i
    return out
