"""The Kubernetes DRA CEL environment on top of a real CEL engine.

Selectors in DeviceClasses and ResourceClaims are CEL expressions over one variable, ``device``:

- ``device.driver``: the driver name (string);
- ``device.attributes['<domain>'].<name>``: attributes by domain; an attribute published without a
  domain belongs to the driver's domain; an unknown domain is an empty map (as in Kubernetes);
- ``device.capacity['<domain>'].<name>``: capacities as quantities, compared with
  ``.compareTo(quantity("40Gi")) >= 0``, ``.isGreaterThan(...)``, ``.isLessThan(...)``, plus
  ``add``, ``sub``, ``asInteger``, ``asApproximateFloat``, ``sign``, ``isInteger``;
- version attributes as semantic versions: ``semver("1.2.3")``, ``isSemver(s)``, ``.major()``,
  ``.minor()``, ``.patch()``, ``.compareTo``, ``.isGreaterThan``, ``.isLessThan``.

The engine is ``common-expression-language`` (module ``cel``, a binding of the Rust CEL
implementation). Quantities and versions are passed to it as one-key maps in canonical form, so
``==`` between two quantities compares their values, like ``Quantity.Equal``.

Speed: every expression is compiled once (:func:`compile_selector` caches), and results are
cached per device *projection*: the device's driver, its domains and only those attribute and
capacity values whose names occur in the expression. Devices that agree on everything an
expression can see share one evaluation, so a 500-node cluster of identical GPUs costs a handful
of CEL evaluations per expression, not one per device.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

import cel

from modelplane.api import QuantityError, format_quantity, parse_quantity

from .._errors import CelCompileError, CelRuntimeError

__all__ = [
    "CelCompileError",
    "CelRuntimeError",
    "SelectorProgram",
    "Semver",
    "compile_selector",
    "parse_semver",
]

_Q = "__quantity__"
_V = "__semver__"


# --------------------------------------------------------------------------------------------
# semantic versions


@dataclass(frozen=True, slots=True, order=False)
class Semver:
    """A semantic version 2.0.0 (``major.minor.patch[-pre][+build]``)."""

    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()
    build: str = ""

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += "-" + ".".join(self.pre)
        if self.build:
            text += "+" + self.build
        return text

    def compare(self, other: Semver) -> int:
        """Precedence as semver.org defines it (build metadata ignored)."""
        a = (self.major, self.minor, self.patch)
        b = (other.major, other.minor, other.patch)
        if a != b:
            return -1 if a < b else 1
        if self.pre == other.pre:
            return 0
        if not self.pre:
            return 1
        if not other.pre:
            return -1
        for x, y in zip(self.pre, other.pre, strict=False):
            if x == y:
                continue
            xn, yn = x.isdigit(), y.isdigit()
            if xn and yn:
                return -1 if int(x) < int(y) else 1
            if xn != yn:
                return -1 if xn else 1
            return -1 if x < y else 1
        return -1 if len(self.pre) < len(other.pre) else 1


_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


@lru_cache(maxsize=4096)
def parse_semver(text: str, normalize: bool = False) -> Semver:
    """Parse a semantic version; with ``normalize`` accept ``v1.2``-style input like Kubernetes."""
    s = text
    if normalize:
        # "v1.2" -> "1.2.0", "1.02.3" -> "1.2.3": the leniency of Kubernetes' semver(s, true).
        head = re.match(r"^v?(\d+(?:\.\d+){0,2})(.*)$", s)
        if head is not None:
            parts = [str(int(p)) for p in head[1].split(".")]
            parts += ["0"] * (3 - len(parts))
            s = ".".join(parts) + head[2]
    match = _SEMVER.match(s)
    if match is None:
        raise ValueError(f"{text!r} is not a semantic version (expected MAJOR.MINOR.PATCH)")
    pre = tuple(match[4].split(".")) if match[4] else ()
    return Semver(int(match[1]), int(match[2]), int(match[3]), pre, match[5] or "")


# --------------------------------------------------------------------------------------------
# values as the CEL engine sees them


def quantity_to_cel(value: Fraction) -> dict[str, str]:
    return {_Q: f"{value.numerator}/{value.denominator}"}


def _semver_to_cel(value: Semver) -> dict[str, str]:
    return {_V: str(value)}


def attribute_to_cel(value: Any) -> Any:
    if isinstance(value, Semver):
        return _semver_to_cel(value)
    if isinstance(value, tuple):  # a list-typed attribute
        return [attribute_to_cel(v) for v in value]
    return value


def _as_quantity(value: Any, what: str) -> Fraction:
    if isinstance(value, dict) and _Q in value:
        return Fraction(value[_Q])
    raise TypeError(f"{what}: expected a quantity, got {_describe(value)}")


def _as_semver(value: Any, what: str) -> Semver:
    if isinstance(value, dict) and _V in value:
        return parse_semver(value[_V])
    raise TypeError(f"{what}: expected a semver, got {_describe(value)}")


def _describe(value: Any) -> str:
    if isinstance(value, dict) and _Q in value:
        return "a quantity"
    if isinstance(value, dict) and _V in value:
        return "a semver"
    return type(value).__name__


def _ordered(a: Any, b: Any, what: str) -> int:
    """compareTo over quantities or versions: -1, 0 or 1."""
    if isinstance(a, dict) and _V in a:
        return _as_semver(a, what).compare(_as_semver(b, what))
    x, y = _as_quantity(a, what), _as_quantity(b, what)
    return (x > y) - (x < y)


def _fn_quantity(text: str) -> dict[str, str]:
    try:
        return quantity_to_cel(parse_quantity(text))
    except QuantityError as exc:
        raise ValueError(str(exc)) from None


def _fn_is_quantity(text: str) -> bool:
    try:
        parse_quantity(text)
    except QuantityError:
        return False
    return True


def _fn_semver(text: str, normalize: bool = False) -> dict[str, str]:
    return _semver_to_cel(parse_semver(text, normalize))


def _fn_is_semver(text: str, normalize: bool = False) -> bool:
    try:
        parse_semver(text, normalize)
    except ValueError:
        return False
    return True


def _arith(a: Any, b: Any, sign: int) -> dict[str, str]:
    x = _as_quantity(a, "add/sub")
    y = (
        Fraction(b)
        if isinstance(b, int) and not isinstance(b, bool)
        else _as_quantity(b, "add/sub")
    )
    return quantity_to_cel(x + sign * y)


def _fn_as_integer(a: Any) -> int:
    q = _as_quantity(a, "asInteger")
    if q.denominator != 1:
        raise ValueError(f"quantity {format_quantity(q)} is not an integer")
    return q.numerator


def _make_context() -> cel.Context:
    ctx = cel.Context()
    functions: dict[str, Any] = {
        "quantity": _fn_quantity,
        "isQuantity": _fn_is_quantity,
        "semver": _fn_semver,
        "isSemver": _fn_is_semver,
        "compareTo": lambda a, b: _ordered(a, b, "compareTo"),
        "isGreaterThan": lambda a, b: _ordered(a, b, "isGreaterThan") > 0,
        "isLessThan": lambda a, b: _ordered(a, b, "isLessThan") < 0,
        "add": lambda a, b: _arith(a, b, 1),
        "sub": lambda a, b: _arith(a, b, -1),
        "sign": lambda a: (lambda q: (q > 0) - (q < 0))(_as_quantity(a, "sign")),
        "isInteger": lambda a: _as_quantity(a, "isInteger").denominator == 1,
        "asInteger": _fn_as_integer,
        "asApproximateFloat": lambda a: float(_as_quantity(a, "asApproximateFloat")),
        "major": lambda a: _as_semver(a, "major").major,
        "minor": lambda a: _as_semver(a, "minor").minor,
        "patch": lambda a: _as_semver(a, "patch").patch,
        # A few of Kubernetes' string extensions that selectors commonly use.
        "lowerAscii": lambda s: s.lower(),
        "upperAscii": lambda s: s.upper(),
        "trim": lambda s: s.strip(),
    }
    for name, fn in functions.items():
        ctx.add_function(name, fn)
    return ctx


# --------------------------------------------------------------------------------------------
# selector programs

_STRING = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Expressions that look at a whole attribute map (iteration, size, passing it around) can see
# attributes whose names they never spell out; those are evaluated against the full device.
_WHOLE_MAP = re.compile(
    r"(attributes|capacity)\s*(\[\s*(\"[^\"]*\"|'[^']*')\s*\])?\s*(?![\s.\[\w])"
    r"|(attributes|capacity)\s*\[\s*(\"[^\"]*\"|'[^']*')\s*\]\s*\.\s*(exists|exists_one|all|map|filter|size)\b"
    r"|\bsize\s*\(|\bdevice\s*(?![\s.\w])"
)


# A string literal that names a domain: ``attributes['gpu.nvidia.com']``.
_DOMAIN_LITERAL = re.compile(
    r"(attributes|capacity)\s*\[\s*(?:'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\")\s*\]"
)


@dataclass(frozen=True, slots=True)
class CelDevice:
    """What a selector sees of a device: driver, attributes and capacity by qualified name.

    ``attributes`` values are ``int``, ``bool``, ``str`` or :class:`Semver`; ``capacity`` values
    are exact quantities. Names are fully qualified (``domain/name``).
    """

    driver: str
    attributes: Mapping[str, Any]
    capacity: Mapping[str, Fraction]
    domains: tuple[tuple[str, ...], tuple[str, ...]] = field(default=((), ()))
    allow_multiple: bool = False
    #: Derived once per device (devices are static): names by identifier, the CEL activation.
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def by_ident(self) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]]]:
        """Attribute and capacity ``(qualified, value)`` pairs keyed by their identifier."""
        hit = self.cache.get("ident")
        if hit is None:
            attrs: dict[str, tuple[Any, ...]] = {}
            for k, v in self.attributes.items():
                ident = k.rpartition("/")[2]
                attrs[ident] = (*attrs.get(ident, ()), (k, v, v.__class__))
            caps: dict[str, tuple[Any, ...]] = {}
            for k, q in self.capacity.items():
                ident = k.rpartition("/")[2]
                caps[ident] = (*caps.get(ident, ()), (k, q))
            hit = self.cache["ident"] = (attrs, caps)
        return hit  # type: ignore[no-any-return]

    def full_key(self) -> tuple[Any, ...]:
        """Everything an expression can see of the device, hashable."""
        hit = self.cache.get("full")
        if hit is None:
            hit = self.cache["full"] = (
                self.driver,
                self.allow_multiple,
                tuple(sorted(((k, v, v.__class__) for k, v in self.attributes.items()))),
                tuple(sorted(self.capacity.items(), key=lambda kv: kv[0])),
            )
        return hit  # type: ignore[no-any-return]

    def activation(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The whole ``attributes`` and ``capacity`` maps as CEL sees them (built once)."""
        hit = self.cache.get("maps")
        if hit is None:
            hit = self.cache["maps"] = _maps(
                self.driver, self.attributes.items(), self.capacity.items(), ()
            )
        return hit  # type: ignore[no-any-return]


def _maps(
    driver: str,
    attributes: Any,
    capacity: Any,
    domains: tuple[str, ...],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    attrs: dict[str, dict[str, Any]] = {d: {} for d in domains}
    for name, value in attributes:
        domain, ident = _split(name, driver)
        attrs.setdefault(domain, {})[ident] = attribute_to_cel(value)
    caps: dict[str, dict[str, Any]] = {d: {} for d in domains}
    for name, qty in capacity:
        domain, ident = _split(name, driver)
        caps.setdefault(domain, {})[ident] = quantity_to_cel(qty)
    return attrs, caps


def _split(name: str, driver: str) -> tuple[str, str]:
    domain, sep, ident = name.rpartition("/")
    return (domain, ident) if sep else (driver, name)


class SelectorProgram:
    """One compiled selector expression, with its per-device-projection result cache."""

    __slots__ = (
        "_cache",
        "_domain_literals",
        "_full",
        "_literals",
        "_program",
        "_sorted_tokens",
        "_tokens",
        "expression",
    )

    def __init__(self, expression: str) -> None:
        self.expression = expression
        try:
            self._program = cel.compile(expression)
        except Exception as exc:  # the engine raises ValueError with a caret diagram
            raise CelCompileError(_first_lines(str(exc))) from None
        literals = {a or b for a, b in _STRING.findall(expression)}
        self._literals = tuple(sorted(literals))
        self._tokens = frozenset(_IDENT.findall(expression)) | literals
        self._sorted_tokens = tuple(sorted(self._tokens))
        self._domain_literals = tuple(
            sorted({a or b for _, a, b in _DOMAIN_LITERAL.findall(expression)})
        )
        self._full = _WHOLE_MAP.search(expression) is not None
        self._cache: dict[tuple[Any, ...], bool] = {}

    def matches(self, device: CelDevice) -> bool:
        """True when the expression holds for ``device``; :class:`CelRuntimeError` otherwise fails."""
        key = self._key(device)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        result = self._evaluate(device)
        self._cache[key] = result
        return result

    def _key(self, device: CelDevice) -> tuple[Any, ...]:
        if self._full:
            return device.full_key()
        attrs, caps = device.by_ident()
        return (
            device.driver,
            device.allow_multiple,
            device.domains,
            tuple(attrs[t] for t in self._sorted_tokens if t in attrs),
            tuple(caps[t] for t in self._sorted_tokens if t in caps),
        )

    def _evaluate(self, device: CelDevice) -> bool:
        if self._full:
            attributes, capacity = device.activation()
            missing = [lit for lit in self._literals if lit not in attributes]
            if missing:
                attributes = {**attributes, **{lit: {} for lit in missing}}
            missing = [lit for lit in self._literals if lit not in capacity]
            if missing:
                capacity = {**capacity, **{lit: {} for lit in missing}}
        else:
            # Only names the expression spells out can be read: hand the engine just those
            # (a device with 80 attributes costs as much as one with 2), every domain of the
            # device as a map, and an empty map for every other literal (Kubernetes answers an
            # unknown domain with an empty map; domains are named only by string literals).
            attrs, caps = device.by_ident()
            domains = tuple(
                dict.fromkeys((*device.domains[0], *device.domains[1], *self._domain_literals))
            )
            attributes, capacity = _maps(
                device.driver,
                [(k, v) for t in self._sorted_tokens if t in attrs for k, v, _ in attrs[t]],
                [kv for t in self._sorted_tokens if t in caps for kv in caps[t]],
                domains,
            )
        ctx = _context()
        ctx.add_variable(
            "device",
            {
                "driver": device.driver,
                "attributes": attributes,
                "capacity": capacity,
                "allowMultipleAllocations": device.allow_multiple,
            },
        )
        try:
            result = self._program.execute(ctx)
        except KeyError as exc:
            raise CelRuntimeError(f"no such key: {exc.args[0]}") from None
        except Exception as exc:
            raise CelRuntimeError(_first_lines(str(exc))) from None
        if not isinstance(result, bool):
            raise CelRuntimeError(f"must evaluate to bool, not {type(result).__name__}")
        return result


def _first_lines(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines()[:3] if line.strip())


_CONTEXT: list[cel.Context] = []


def _context() -> cel.Context:
    # One context with the functions registered; the device variable is replaced per evaluation.
    if not _CONTEXT:
        _CONTEXT.append(_make_context())
    return _CONTEXT[0]


@lru_cache(maxsize=4096)
def compile_selector(expression: str) -> SelectorProgram:
    """Compile ``expression`` once; raises :class:`CelCompileError` with the engine's message."""
    return SelectorProgram(expression)
