"""Kubernetes quantities parse to exact values and keep the text they were written with."""

from __future__ import annotations

from decimal import Decimal

import pytest

from modelplane.api import parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("80Gi", Decimal(80 * 2**30)),
        ("40960Mi", Decimal(40 * 2**30)),
        ("1", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("1.5Ki", Decimal(1536)),
        ("2k", Decimal(2000)),
        ("1e3", Decimal(1000)),
        ("1E-2", Decimal("0.01")),
        ("+3M", Decimal(3_000_000)),
        ("-4", Decimal(-4)),
        (".5", Decimal("0.5")),
        ("100n", Decimal("1e-7")),
        ("1Ei", Decimal(2**60)),
        ("1E", Decimal(10**18)),
        (7, Decimal(7)),
        (0.25, Decimal("0.25")),
    ],
)
def test_quantity_parses_to_its_exact_value(text: str | int | float, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_binary_and_decimal_spellings_of_one_amount_are_equal() -> None:
    assert parse_quantity("80Gi") == parse_quantity("81920Mi") == parse_quantity("85899345920")


@pytest.mark.parametrize(
    "text", ["", "Gi", "80GB", "1.2.3", "ten", "1 Gi", "0x10", "1e999", "1Gi5", True, None, [1]]
)
def test_malformed_quantity_is_refused_with_an_example(text: object) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(text)  # type: ignore[arg-type]


def test_non_finite_float_is_not_a_quantity() -> None:
    with pytest.raises(ValueError, match="finite"):
        parse_quantity(float("nan"))
