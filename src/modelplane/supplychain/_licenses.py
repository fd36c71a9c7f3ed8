"""Licenses: an SPDX expression held against an allow-list.

``MIT OR GPL-3.0-only`` is allowed when either side is; ``MIT AND BSD-3-Clause`` when both are;
``GPL-2.0-only WITH Classpath-exception-2.0`` when the license before ``WITH`` is. Identifiers
compare without case, and a ``+`` suffix is kept as written (allow it by its own name).
"""

from __future__ import annotations

import re

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
    value, rest = _and(tokens, allow)
    while rest and rest[0].upper() == "OR":
        right, rest = _and(rest[1:], allow)
        value = value or right
    return value, rest


def _and(tokens: list[str], allow: frozenset[str]) -> tuple[bool, list[str]]:
    value, rest = _term(tokens, allow)
    while rest and rest[0].upper() == "AND":
        right, rest = _term(rest[1:], allow)
        value = value and right
    return value, rest


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
