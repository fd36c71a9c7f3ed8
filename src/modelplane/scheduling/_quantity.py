"""Kubernetes resource quantities ("40Gi", "500m", "1.5e3") as exact fractions.

Kubernetes keeps quantities exact (``resource.Quantity``); so do we, with :class:`fractions.Fraction`,
so that counters and capacities never drift through float rounding.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

__all__ = ["QuantityError", "format_quantity", "parse_quantity"]

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
_PATTERN = re.compile(
    r"^(?P<sign>[+-]?)(?P<num>(\d+(\.\d*)?|\.\d+))"
    r"(?:(?P<bin>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exp>[eE][+-]?\d+)|(?P<dec>[numkMGTPE]?))$"
)


class QuantityError(ValueError):
    """A string is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Fraction:
    """Parse a Kubernetes quantity into an exact :class:`Fraction`.

    Accepts the serialised forms Kubernetes accepts: binary suffixes (``Ki`` .. ``Ei``), decimal
    suffixes (``n u m k M G T P E``) and decimal exponents (``1e3``). Plain numbers are accepted too
    because YAML turns ``count: 8``-like capacities into ints.
    """
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    return _parse_text(str(value))


@lru_cache(maxsize=16384)
def _parse_text(value: str) -> Fraction:
    # Slices repeat the same few quantities thousands of times; parse each spelling once.
    text = value.strip()
    match = _PATTERN.match(text)
    if match is None:
        raise QuantityError(
            f"{value!r} is not a quantity (expected a number with an optional suffix such as "
            "'40Gi', '500m', '2k' or '1e3')"
        )
    number = Fraction(match["num"])
    if match["bin"]:
        number *= _BINARY[match["bin"]]
    elif match["exp"]:
        number *= Fraction(10) ** int(match["exp"][1:])
    else:
        number *= _DECIMAL[match["dec"] or ""]
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
