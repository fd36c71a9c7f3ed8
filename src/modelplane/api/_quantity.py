"""Kubernetes resource quantities: ``"80Gi"``, ``"40960Mi"``, ``"500m"``, ``"1"``, ``"1e3"``.

The grammar is the one of ``k8s.io/apimachinery/pkg/api/resource``: a signed decimal number followed
by a binary suffix (``Ki Mi Gi Ti Pi Ei``), a decimal suffix (``n u m "" k M G T P E``) or a decimal
exponent (``e3``, ``E-2``). A quantity keeps the text it was written with on the wire (so objects
round-trip unchanged); :func:`parse_quantity` gives its exact value as a :class:`~decimal.Decimal`
for comparisons and sums.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import PlainValidator, WithJsonSchema

_NUMBER = r"(?P<sign>[+-]?)(?P<number>\d+(?:\.\d*)?|\.\d+)"
_QUANTITY = re.compile(
    rf"^{_NUMBER}(?:(?P<exponent>[eE][+-]?\d{{1,3}})|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$"
)
_MULTIPLIER: dict[str, Decimal] = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
#: exponents beyond this are not quantities anyone means (and would overflow Decimal's context)
_MAX_EXPONENT = 100


def parse_quantity(value: str | int | float) -> Decimal:
    """The exact value of a Kubernetes quantity (``"80Gi"`` -> ``Decimal(85899345920)``).

    Integers and finite floats are accepted as they are (JSON numbers are valid quantities).
    Raises :class:`ValueError` with a message saying what a valid quantity looks like.
    """
    if isinstance(value, bool):
        raise ValueError(f'{value!r} is not a quantity; write a number such as 1, "80Gi" or "500m"')
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not a quantity; it must be a finite number")
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise ValueError(f'{value!r} is not a quantity; write a number such as 1, "80Gi" or "500m"')
    match = _QUANTITY.match(value.strip()) if len(value) <= 64 else None
    if match is None:
        raise ValueError(
            f"{value!r} is not a quantity; write a number with an optional suffix, such as"
            ' "80Gi", "40960Mi", "500m", "2" or "1e3" (binary suffixes Ki Mi Gi Ti Pi Ei,'
            " decimal suffixes n u m k M G T P E)"
        )
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"{value!r} is not a quantity") from exc
    if match["exponent"]:
        exponent = int(match["exponent"][1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise ValueError(
                f"{value!r} is not a usable quantity: its exponent must be within ±100"
            )
        number = number.scaleb(exponent)
    elif match["suffix"]:
        number = number * _MULTIPLIER[match["suffix"]]
    return -number if match["sign"] == "-" else number


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
