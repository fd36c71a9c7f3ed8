"""Kubernetes resource quantities: ``"80Gi"``, ``"40960Mi"``, ``"500m"``, ``"1"``, ``"1e3"``.

The grammar is the one of ``k8s.io/apimachinery/pkg/api/resource``: a signed decimal number followed
by a binary suffix (``Ki Mi Gi Ti Pi Ei``), a decimal suffix (``n u m "" k M G T P E``) or a decimal
exponent (``e3``, ``E-2``). A quantity keeps the text it was written with on the wire (so objects
round-trip unchanged); :func:`parse_quantity` gives its exact value as a :class:`~fractions.Fraction`
(Kubernetes keeps quantities exact too), so that sums of counters and capacities never drift
through float rounding. This is the one parser: validation and the scheduler both use it.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache
from typing import Annotated, Any

from pydantic import PlainValidator, WithJsonSchema

_NUMBER = r"(?P<sign>[+-]?)(?P<number>\d+(?:\.\d*)?|\.\d+)"
_QUANTITY = re.compile(
    rf"^{_NUMBER}(?:(?P<exponent>[eE][+-]?\d{{1,3}})|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_MULTIPLIER: dict[str, Fraction] = {**{k: Fraction(v) for k, v in _BINARY.items()}, **_DECIMAL}
#: exponents beyond this are not quantities anyone means (and would cost a huge integer)
_MAX_EXPONENT = 100
_EXAMPLE = 'write a number such as 1, "80Gi" or "500m"'


class QuantityError(ValueError):
    """A value is not a Kubernetes quantity; the message says what a valid one looks like."""


def parse_quantity(value: str | int | float) -> Fraction:
    """The exact value of a Kubernetes quantity (``"80Gi"`` -> ``Fraction(85899345920)``).

    Integers and finite floats are accepted as they are (JSON numbers are valid quantities, and
    YAML turns ``count: 8``-like capacities into ints). Raises :class:`QuantityError` (a
    :class:`ValueError`) with a message saying what a valid quantity looks like.
    """
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity; {_EXAMPLE}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise QuantityError(f"{value!r} is not a quantity; it must be a finite number")
        return Fraction(repr(value))
    if not isinstance(value, str):
        raise QuantityError(f"{value!r} is not a quantity; {_EXAMPLE}")
    return _parse_text(value)


@lru_cache(maxsize=16384)
def _parse_text(value: str) -> Fraction:
    # Slices repeat the same few quantities thousands of times; parse each spelling once.
    match = _QUANTITY.match(value.strip()) if len(value) <= 64 else None
    if match is None:
        raise QuantityError(
            f"{value!r} is not a quantity; write a number with an optional suffix, such as"
            ' "80Gi", "40960Mi", "500m", "2" or "1e3" (binary suffixes Ki Mi Gi Ti Pi Ei,'
            " decimal suffixes n u m k M G T P E)"
        )
    number = Fraction(match["number"])
    if match["exponent"]:
        exponent = int(match["exponent"][1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise QuantityError(
                f"{value!r} is not a usable quantity: its exponent must be within ±100"
            )
        number *= Fraction(10) ** exponent
    elif match["suffix"]:
        number *= _MULTIPLIER[match["suffix"]]
    return -number if match["sign"] == "-" else number


def format_quantity(value: Fraction) -> str:
    """Render a quantity in its shortest exact Kubernetes spelling ("4G", "80Gi", "500m")."""
    if value.denominator == 1:
        n = value.numerator
        options = [str(n)]
        if n != 0:
            for table in (_BINARY, _DECIMAL):
                for suffix, factor in table.items():
                    if suffix and factor >= 1 and n % factor == 0:
                        options.append(f"{n // int(factor)}{suffix}")
        return min(options, key=len)
    milli = value * 1000
    if milli.denominator == 1:
        return f"{milli.numerator}m"
    nano = value * 10**9
    return f"{-(-nano.numerator // nano.denominator)}n"  # round up, as Kubernetes does


def _validate_quantity(value: Any) -> str | int | float:
    parse_quantity(value)
    # keep the text as written: a dumped object must come back unchanged
    return value  # type: ignore[no-any-return]


#: A quantity field: validated with :func:`parse_quantity`, stored as written.
Quantity = Annotated[
    str | int | float,
    PlainValidator(_validate_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "description": 'A Kubernetes quantity such as "80Gi", "500m" or 2.',
        }
    ),
]
