"""Versioned object store: one contract (``_contract``), two backends.

Owns: persistence of objects, resourceVersions, watch history, leases. ``sqlite`` (``_sqlite``) is the
embedded default under ``$MODELPLANE_HOME``; ``postgres`` (``_postgres``) is shared by many processes.
Must not touch: schemas (``modelplane.api`` validates before writing), controllers, HTTP.
"""

from modelplane.store._contract import (
    JSON,
    EventType,
    Lease,
    ObjectList,
    Store,
    Watch,
    WatchEvent,
)
from modelplane.store._lifecycle import merge_patch
from modelplane.store._open import default_url, open_store
from modelplane.store._selector import FieldSelector, parse_field_selector
from modelplane.store._urls import redact_url

__all__ = [
    "JSON",
    "EventType",
    "FieldSelector",
    "Lease",
    "ObjectList",
    "Store",
    "Watch",
    "WatchEvent",
    "default_url",
    "merge_patch",
    "open_store",
    "parse_field_selector",
    "redact_url",
]
