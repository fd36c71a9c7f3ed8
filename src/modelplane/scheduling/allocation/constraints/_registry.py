"""The constraint types the allocator knows, by API field, and the parsing of one constraint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._base import Constraint
from ._distinct_attribute import DistinctAttribute
from ._match_attribute import MatchAttribute

__all__ = ["CONSTRAINT_TYPES", "parse_constraint"]

#: every constraint type, by the field of ``spec.devices.constraints[]`` that names it
CONSTRAINT_TYPES: dict[str, type[Constraint]] = {
    t.field: t for t in (MatchAttribute, DistinctAttribute)
}


def parse_constraint(spec: Mapping[str, Any]) -> Constraint | None:
    """The constraint ``spec`` states, or None when it names no known type with a qualified
    attribute (``resource.kubernetes.io/pcieRoot``, not ``pcieRoot``)."""
    for field, kind in CONSTRAINT_TYPES.items():
        attribute = spec.get(field)
        if attribute:
            if not isinstance(attribute, str) or "/" not in attribute:
                return None
            return kind(attribute, frozenset(spec.get("requests") or ()))
    return None
