"""Versioned object store: one contract (``_contract``), two backends.

Owns: persistence of objects, resourceVersions, watch history, leases. ``sqlite`` (``_sqlite``) is the
embedded default under ``$MODELPLANE_HOME``; ``postgres`` (``_postgres``) is shared by many processes.
Must not touch: schemas (``modelplane.api`` validates before writing), controllers, HTTP.

Where things are:

* ``_contract``: the Store protocol and its value types (what callers may rely on);
* ``_store``: the contract's methods over a backend (versions, events, list, watch, leases);
* ``_lifecycle``: what each write does to an object (server-owned fields, generation, status,
  optimistic concurrency, merge patch, finalizers);
* ``_sql``: the one SQL flow (statements, read snapshot, write transaction) and its ``Dialect``;
* ``_sqlite``, ``_postgres``: a backend each: its dialect, tables, connections and errors;
* ``_hub``: watch fan-out; ``_selector``: label and field selectors; ``_paging``: continue tokens;
* ``_leases``: lease compare-and-set; ``_allowances``: slices of limits shared by processes; ``_codec``: the stored JSON and the Codec that seals Secrets,
  ``_encryption``: that codec; ``_gc``: the garbage-collector pause while parsing many objects;
* ``_urls``: database URLs (which backend, SQLite's parts, redaction); ``_open``: opening a store;
  ``_pool``: the connection pool.
"""

from modelplane.store._contract import (
    JSON,
    AllowanceRequest,
    EventType,
    Lease,
    ObjectList,
    Store,
    Watch,
    WatchEvent,
)
from modelplane.store._lifecycle import merge_patch
from modelplane.store._open import default_url, open_store
from modelplane.store._postgres import guard_session
from modelplane.store._selector import FieldSelector, parse_field_selector
from modelplane.store._urls import SQLiteURL, backend_of, parse_sqlite_url, redact_url

__all__ = [
    "JSON",
    "AllowanceRequest",
    "EventType",
    "FieldSelector",
    "Lease",
    "ObjectList",
    "SQLiteURL",
    "Store",
    "Watch",
    "WatchEvent",
    "backend_of",
    "default_url",
    "guard_session",
    "merge_patch",
    "open_store",
    "parse_field_selector",
    "parse_sqlite_url",
    "redact_url",
]
