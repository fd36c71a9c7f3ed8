"""How objects look in tables (``modelplane get`` and the API's ``Table`` responses): cells, and
ages written the way kubectl prints them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """A duration the way kubectl prints ages (``duration.HumanDuration``): 5s, 3m20s, 2h, 4d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return _two_units(minutes, "m", s % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return _two_units(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return _two_units(hours // 24, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        return _two_units(hours // 24 // 365, "y", hours // 24 % 365, "d")
    return f"{hours // 24 // 365}y"


def _two_units(big: int, big_unit: str, rest: int, rest_unit: str) -> str:
    """``3m20s``, or ``3m`` when nothing is left over (kubectl drops a zero second unit)."""
    return f"{big}{big_unit}{rest}{rest_unit}" if rest else f"{big}{big_unit}"


def age(timestamp: Any, now: datetime | None = None) -> str:
    """How long ago ``timestamp`` was, as kubectl's AGE column; ``<unknown>`` when absent."""
    when = parse_timestamp(timestamp)
    if when is None:
        return "<unknown>"
    now = now or datetime.now(UTC)
    return human_duration((now - when).total_seconds())


def cell(value: Any) -> str:
    """A value as a table cell: ``<none>`` for nothing, lists comma-separated, dicts as JSON."""
    if value is None or value == "" or value == [] or value == {}:
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)
