"""Label and field selectors in Kubernetes syntax, parsed once and matched many times.

Label selector grammar (``k8s.io/apimachinery/pkg/labels``): requirements separated by commas, each
one of ``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``, ``key in (a,b)``,
``key notin (a,b)``, ``key>3``, ``key<3``. As in Kubernetes, ``!=`` and ``notin`` also match objects
that lack the label, ``>``/``<`` compare integers and match only labels holding an integer. An empty
selector matches everything.

Field selectors support ``metadata.name`` and ``metadata.namespace`` with ``=``, ``==`` and ``!=``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from modelplane.api.errors import BadRequest

_KEY = re.compile(
    r"(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
# a key token as written (validated against _KEY afterwards, for a precise message)
_KEY_TOKEN = re.compile(r"[A-Za-z0-9_.\-/]+")
_VALUE_TOKEN = re.compile(r"[A-Za-z0-9_.\-]*")
_INT = re.compile(r"-?[0-9]+")

_LABEL_HELP = (
    "use requirements separated by commas: key=value, key!=value, key in (a,b), key notin (a,b),"
    " key (exists) or !key (does not exist)"
)

Matcher = Callable[[Mapping[str, str]], bool]


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    #: one of "exists", "!", "=", "!=", "in", "notin", ">", "<"
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.op
        if op == "=" or op == "in":
            return labels.get(self.key) in self.values
        if op == "!=" or op == "notin":
            return labels.get(self.key) not in self.values
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        value = labels.get(self.key)
        if value is None or not _INT.fullmatch(value):
            return False
        (bound,) = self.values
        return int(value) > int(bound) if op == ">" else int(value) < int(bound)


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed label selector: every requirement must hold."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if not self.requirements:
            return True
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)


EVERYTHING = LabelSelector()


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> BadRequest:
        return BadRequest(
            f"label selector {self.text!r} is not valid: {what} (at character {self.pos + 1});"
            f" {_LABEL_HELP}"
        )

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def take(self, pattern: re.Pattern[str]) -> str:
        m = pattern.match(self.text, self.pos)
        token = m.group(0) if m else ""
        self.pos += len(token)
        return token

    def key(self) -> str:
        self.skip_spaces()
        key = self.take(_KEY_TOKEN)
        if not key:
            raise self.fail("expected a label key")
        if not _KEY.fullmatch(key):
            raise self.fail(
                f"{key!r} is not a label key (an optional DNS-subdomain prefix and '/', then at"
                " most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or"
                " digit)"
            )
        return key

    def value(self) -> str:
        self.skip_spaces()
        value = self.take(_VALUE_TOKEN)
        if not _VALUE.fullmatch(value):
            raise self.fail(
                f"{value!r} is not a label value (at most 63 letters, digits, '-', '_' or '.',"
                " starting and ending with a letter or digit)"
            )
        return value

    def value_set(self) -> frozenset[str]:
        self.skip_spaces()
        if not self.peek("("):
            raise self.fail("expected '(' to open the list of values")
        self.pos += 1
        values: set[str] = set()
        while True:
            values.add(self.value())
            self.skip_spaces()
            if self.peek(","):
                self.pos += 1
                continue
            if self.peek(")"):
                self.pos += 1
                return frozenset(values)
            raise self.fail("expected ',' or ')' in the list of values")

    def requirement(self) -> Requirement:
        self.skip_spaces()
        if self.peek("!"):
            self.pos += 1
            return Requirement(self.key(), "!")
        key = self.key()
        self.skip_spaces()
        if self.pos >= len(self.text) or self.peek(","):
            return Requirement(key, "exists")
        for token, op in (("==", "="), ("!=", "!="), ("=", "="), (">", ">"), ("<", "<")):
            if self.peek(token):
                self.pos += len(token)
                value = self.value()
                if op in (">", "<") and not _INT.fullmatch(value):
                    raise self.fail(f"{key}{op} needs an integer, not {value!r}")
                return Requirement(key, op, frozenset((value,)))
        word = self.take(re.compile(r"[a-z]+"))
        if word in ("in", "notin"):
            return Requirement(key, word, self.value_set())
        raise self.fail(f"expected an operator after {key!r}")

    def parse(self) -> LabelSelector:
        requirements: list[Requirement] = []
        while True:
            requirements.append(self.requirement())
            self.skip_spaces()
            if self.pos >= len(self.text):
                return LabelSelector(tuple(requirements))
            if not self.peek(","):
                raise self.fail("expected ',' between requirements")
            self.pos += 1


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse ``text``; raises BadRequest naming the position and the accepted forms."""
    if text is None or not text.strip():
        return EVERYTHING
    return _LabelParser(text).parse()


_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A parsed field selector over ``metadata.name`` / ``metadata.namespace``."""

    #: (field, wanted, equal): equal=False means "!="
    terms: tuple[tuple[str, str, bool], ...] = ()

    def matches(self, namespace: str, name: str) -> bool:
        for field, wanted, equal in self.terms:
            actual = name if field == "metadata.name" else namespace
            if (actual == wanted) != equal:
                return False
        return True


def _split_term(part: str) -> tuple[str, str, str]:
    """(field, "=" or "!=" or "", value)."""
    for token in ("!=", "==", "="):
        field, found, value = part.partition(token)
        if found:
            return field, "!=" if token == "!=" else "=", value
    return part, "", ""


def _shown(value: str) -> str:
    """``value`` quoted for a message, cut short when a client sent something huge."""
    return repr(value if len(value) <= 80 else value[:77] + "...")


def parse_field_selector(text: str | None) -> FieldSelector:
    """``metadata.name`` / ``metadata.namespace`` with ``=``, ``==`` or ``!=``, comma-separated."""
    if text is None or not text.strip():
        return FieldSelector()
    terms: list[tuple[str, str, bool]] = []
    for part in text.split(","):
        field, equal, value = _split_term(part)
        if not equal:
            raise BadRequest(
                f"field selector {_shown(text)} is not valid: {_shown(part.strip())} has no '=' or"
                " '!=';"
                " use metadata.name=NAME or metadata.namespace!=NAMESPACE, separated by commas"
            )
        field = field.strip()
        if field not in _FIELDS:
            raise BadRequest(
                f"field selector {_shown(text)} uses the field {_shown(field)}, which cannot be"
                " selected on;"
                f" the fields are {', '.join(_FIELDS)}"
            )
        terms.append((field, value.strip(), equal == "="))
    return FieldSelector(tuple(terms))
