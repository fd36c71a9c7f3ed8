"""Matching a request as the Gateway API's HTTPRoute matches do: path, method, headers, query.

One compiled form for the header matches of ``HTTPRoute`` rules and of an Endpoint's
``spec.routing.headerRoutes``, so both mean the same thing: header names compare
case-insensitively, values exactly (``Exact``) or by a Python regular expression that must match
the whole value (``RegularExpression``); every listed header must match (AND). A path match is
``PathPrefix`` by path elements (``/v1`` matches ``/v1`` and ``/v1/chat/completions``, not
``/v1x``), ``Exact``, or ``RegularExpression`` (whole path). Objects come from the store already
validated; a value that does not compile here (written around the API) matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ValueMatch:
    """One header (name lowercased) or query parameter that must have a value."""

    name: str
    value: str
    pattern: re.Pattern[str] | None = None

    def fits(self, values: Mapping[str, str]) -> bool:
        got = values.get(self.name)
        if got is None:
            return False
        if self.pattern is not None:
            return self.pattern.fullmatch(got) is not None
        return got == self.value


_NEVER = re.compile(r"(?!)")


def _value_match(raw: Any, *, fold: bool) -> ValueMatch:
    name = str(raw.get("name") or "")
    value = str(raw.get("value") or "")
    pattern: re.Pattern[str] | None = None
    if raw.get("type") == "RegularExpression":
        try:
            pattern = re.compile(value)
        except re.error:
            pattern = _NEVER
    return ValueMatch(name.lower() if fold else name, value, pattern)


def header_matches(raw: Any) -> tuple[ValueMatch, ...]:
    """The compiled ``headers`` list of a match (``[{type, name, value}]``)."""
    if not isinstance(raw, list):
        return ()
    return tuple(_value_match(h, fold=True) for h in raw if isinstance(h, dict))


def headers_fit(matches: tuple[ValueMatch, ...], headers: Mapping[str, str]) -> bool:
    """Whether every header match holds (``headers`` keyed by lowercase name)."""
    return all(m.fits(headers) for m in matches)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What a match looks at: the URL path, method, Host (no port), headers (lowercase keys)
    and query parameters of one request."""

    path: str
    method: str = "POST"
    host: str = ""
    headers: Mapping[str, str] | None = None
    query: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """One ``rules[].matches[]`` entry of an HTTPRoute, compiled."""

    path_type: str = "PathPrefix"
    path: str = "/"
    path_pattern: re.Pattern[str] | None = None
    headers: tuple[ValueMatch, ...] = ()
    query: tuple[ValueMatch, ...] = ()
    method: str | None = None

    def fits(self, request: RequestFacts) -> bool:
        if self.method is not None and request.method.upper() != self.method:
            return False
        if not self._path_fits(request.path):
            return False
        if not headers_fit(self.headers, request.headers or {}):
            return False
        return all(q.fits(request.query or {}) for q in self.query)

    def _path_fits(self, path: str) -> bool:
        if self.path_type == "Exact":
            return path == self.path
        if self.path_type == "RegularExpression":
            return self.path_pattern is not None and self.path_pattern.fullmatch(path) is not None
        prefix = self.path.rstrip("/")
        return not prefix or path == prefix or path.startswith(prefix + "/")

    def precedence(self) -> tuple[int, int, int, int, int]:
        """Smaller is more specific, in the Gateway API's order: an Exact path, the longest
        prefix, a method, the most header matches, the most query parameter matches."""
        prefix = len(self.path) if self.path_type != "RegularExpression" else 0
        return (
            0 if self.path_type == "Exact" else 1,
            -prefix,
            0 if self.method else 1,
            -len(self.headers),
            -len(self.query),
        )


def route_match(raw: Any) -> RouteMatch:
    """A compiled ``matches[]`` entry (a missing path is PathPrefix ``/``)."""
    if not isinstance(raw, dict):
        return RouteMatch()
    path: dict[str, Any] = raw["path"] if isinstance(raw.get("path"), dict) else {}
    path_type = str(path.get("type") or "PathPrefix")
    value = str(path.get("value") or "/")
    pattern: re.Pattern[str] | None = None
    if path_type == "RegularExpression":
        try:
            pattern = re.compile(value)
        except re.error:
            pattern = _NEVER
    query = raw.get("queryParams")
    method = raw.get("method")
    return RouteMatch(
        path_type=path_type,
        path=value,
        path_pattern=pattern,
        headers=header_matches(raw.get("headers")),
        query=tuple(_value_match(q, fold=False) for q in query or [] if isinstance(q, dict)),
        method=str(method).upper() if method else None,
    )


def host_fits(hostnames: tuple[str, ...], host: str) -> bool:
    """Whether the request's Host (lowercase, no port) is one of ``hostnames`` (unset: any);
    ``*.example.com`` matches any name below ``example.com``, not ``example.com`` itself."""
    if not hostnames:
        return True
    for name in hostnames:
        if name.startswith("*."):
            if host.endswith(name[1:]) and len(host) > len(name) - 1:
                return True
        elif host == name:
            return True
    return False
