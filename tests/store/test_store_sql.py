"""One SQL flow for both backends: the same statements, the same object rules, the same rollback.

The write path (``modelplane.store._sql``) is written once; each backend only names its dialect.
These tests hold the backends to that: what one does, the other does, down to the statements.
"""

from __future__ import annotations

import pytest
from store_helpers import collect, model

from modelplane.api import SERVER_OWNED
from modelplane.api.errors import BadRequest, NotFound
from modelplane.store import Store
from modelplane.store._sql import Dialect

# resourceVersion is server-owned too, but a different one sent is a Conflict, not ignored
_FORGEABLE = [field for field in SERVER_OWNED if field != "resourceVersion"]
_FORGED = {
    "uid": "forged",
    "creationTimestamp": "1999-01-01T00:00:00Z",
    "generation": 99,
    "deletionTimestamp": "1999-01-01T00:00:00Z",
    "deletionGracePeriodSeconds": 30,
}


@pytest.mark.parametrize("field", _FORGEABLE)
def test_every_server_owned_field_the_api_names_is_kept_by_an_update(
    store: Store, field: str
) -> None:
    # given a stored object
    obj = store.create(model("llama"))

    # when a client sends it back with a server-owned field of its own making
    sent = {**obj, "metadata": {**obj["metadata"], field: _FORGED[field]}}
    updated = store.update(sent)

    # then the store keeps its own value (or none, where it set none)
    assert updated["metadata"].get(field) == obj["metadata"].get(field)
    assert store.get("Model", "default", "llama")["metadata"].get(field) == obj["metadata"].get(
        field
    )


def test_a_write_that_fails_inside_its_transaction_takes_no_version_and_the_next_one_does(
    store: Store,
) -> None:
    # given a store at some version
    start = store.current_resource_version()

    # when a create fails after its transaction took the writers' lock and the next version
    # (the object cannot be stored as JSON)
    with pytest.raises(BadRequest, match="cannot be stored as JSON"):
        store.create(model("broken", shape={1, 2}))

    # then nothing of it was committed: no version, no object, no event
    assert store.current_resource_version() == start
    with pytest.raises(NotFound):
        store.get("Model", "default", "broken")
    # and the writer is free: the next write takes the very next version, the only event
    good = store.create(model("good"))
    assert int(good["metadata"]["resourceVersion"]) == start + 1
    with store.watch(since=start) as watch:
        events = collect(watch, 1, timeout=5)
        assert watch.next_batch(0.2) == []
    assert [(e.type, e.resource_version) for e in events] == [("ADDED", start + 1)]


def _statements(dialect: Dialect) -> dict[str, str]:
    return {name: value for name, value in vars(dialect).items() if isinstance(value, str)}


def test_both_backends_send_the_same_statements_but_for_placeholders_and_the_counter() -> None:
    pytest.importorskip("psycopg")
    from modelplane.store._postgres import PostgresDialect
    from modelplane.store._sqlite import DIALECT as SQLITE

    postgres = _statements(PostgresDialect("modelplane_test"))
    sqlite = _statements(SQLITE)
    # where the version and the compacted horizon live is the dialect's own business
    own = {"current_rv", "compacted", "set_compacted"}

    shared = set(sqlite) - own
    assert {"get_raw", "insert_object", "update_object", "insert_event", "put_lease"} <= shared
    for name in sorted(shared):
        assert "%s" not in sqlite[name], name
        assert postgres[name] == sqlite[name].replace("?", "%s"), name
    for name in own:
        assert "?" not in postgres[name], f"{name} still has SQLite placeholders"
