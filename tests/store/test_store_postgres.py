"""What is particular to the PostgreSQL backend: unreachable servers and schemas."""

from __future__ import annotations

import psycopg
import pytest
from store_helpers import collect, model

from modelplane.api.errors import Unavailable
from modelplane.store import open_store

pytestmark = pytest.mark.postgres


def test_an_unreachable_server_is_unavailable_naming_host_and_port() -> None:
    with pytest.raises(Unavailable) as err:
        open_store("postgresql://127.0.0.1:1/modelplane?connect_timeout=2")

    message = err.value.message
    assert "127.0.0.1:1" in message
    assert "check that the server is running" in message


def test_tables_are_created_in_the_schema_of_the_search_path(pg_url: str) -> None:
    with open_store(pg_url) as store:
        store.create(model("x"))
        schema = store.schema  # type: ignore[attr-defined]

    with psycopg.connect(pg_url) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        }
    assert {"mp_objects", "mp_events", "mp_meta", "mp_leases"} <= tables


def test_a_search_path_without_a_schema_is_unavailable(pg_url: str) -> None:
    url = pg_url.rsplit("options=", 1)[0] + "options=-csearch_path%3Dno_such_schema_here"
    with pytest.raises(Unavailable, match="search_path names no existing schema"):
        open_store(url)


def test_writes_of_another_store_wake_watchers_through_notify(pg_url: str) -> None:
    # given a watching store whose fallback poll would take an hour
    from modelplane.store._postgres import PostgresStore

    with (
        open_store(pg_url) as writer,
        PostgresStore(pg_url, poll_interval=3600) as reader,
        reader.watch("Model") as watch,
    ):
        writer.create(model("first"))
        first = collect(watch, 1)
        # (from here on the reader's poller has run, so only a notification can wake it)
        writer.create(model("second"))
        second = collect(watch, 1)

    assert [e.object["metadata"]["name"] for e in first + second] == ["first", "second"]
