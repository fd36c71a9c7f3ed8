"""Licenses: an SPDX expression held against an allow-list.

``MIT OR GPL-3.0-only`` is allowed when either side is; ``MIT AND BSD-3-Clause`` when both are;
``GPL-2.0-only WITH Classpath-exception-2.0`` when the license before ``WITH`` is. Identifiers
compare without case, and a ``+`` suffix is kept as written (allow it by its own name).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_TOKEN = re.compile(r"\(|\)|[A-Za-z0-9.+:-]+")


class LicenseError(ValueError):
    """An SPDX expression that does not parse."""


def allowed(expression: str, allow: frozenset[str]) -> bool:
    """Whether an SPDX expression is satisfied by the allowed identifiers (lower case)."""
    tokens = _TOKEN.findall(expression)
    if "".join(tokens) != re.sub(r"\s+", "", expression) or not tokens:
        raise LicenseError(f"{expression!r} is not an SPDX license expression")
    value, rest = _or(tokens, allow)
    if rest:
        raise LicenseError(f"{expression!r}: unexpected {rest[0]!r}")
    return value


def _or(tokens: list[str], allow: frozenset[str]) -> tuple[bool, list[str]]:
    return _joined("OR", _and, tokens, allow)


def _and(tokens: list[str], allow: frozenset[str]) -> tuple[bool, list[str]]:
    return _joined("AND", _term, tokens, allow)


def _joined(
    operator: str,
    operand: Callable[[list[str], frozenset[str]], tuple[bool, list[str]]],
    tokens: list[str],
    allow: frozenset[str],
) -> tuple[bool, list[str]]:
    """One precedence level: ``operand (operator operand)*``, every operand parsed (so a later
    malformed one is still an error), the values joined by ``OR`` (any) or ``AND`` (all)."""
    value, rest = operand(tokens, allow)
    values = [value]
    while rest and rest[0].upper() == operator:
        value, rest = operand(rest[1:], allow)
        values.append(value)
    return (any(values) if operator == "OR" else all(values)), rest


def _term(tokens: list[str], allow: frozenset[str]) -> tuple[bool, list[str]]:
    if not tokens:
        raise LicenseError("the expression ends where a license was expected")
    head, rest = tokens[0], tokens[1:]
    if head == "(":
        value, rest = _or(rest, allow)
        if not rest or rest[0] != ")":
            raise LicenseError("a '(' is not closed")
        return value, rest[1:]
    if head == ")" or head.upper() in ("AND", "OR", "WITH"):
        raise LicenseError(f"{head!r} where a license was expected")
    if rest and rest[0].upper() == "WITH":
        if len(rest) < 2:
            raise LicenseError("WITH needs an exception after it")
        rest = rest[2:]
    return head.lower() in allow, rest
