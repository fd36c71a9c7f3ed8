"""Shared fixtures: a real store on each backend.

PostgreSQL tests use the server at ``MODELPLANE_TEST_DATABASE_URL`` (default: the local one on
127.0.0.1:5432, database ``test``), each test in a schema of its own that is dropped afterwards. Under
``CI=true`` an unreachable PostgreSQL fails those tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

PG_URL = os.environ.get("MODELPLANE_TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")


def _pg_unreachable_reason() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure to connect is a reason to skip (or fail under CI)
        return f"PostgreSQL at {PG_URL} is unreachable ({type(exc).__name__}: {exc})".strip()
    return None


_PG_REASON: list[str | None] = []


def require_postgres() -> None:
    if not _PG_REASON:
        _PG_REASON.append(_pg_unreachable_reason())
    reason = _PG_REASON[0]
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true requires PostgreSQL for the postgres tests")
    pytest.skip(f"{reason}; set MODELPLANE_TEST_DATABASE_URL to run the postgres tests")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema."""
    require_postgres()
    import psycopg

    schema = f"mp_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'modelplane.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """A URL for a fresh store, once per backend."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def store(store_url: str) -> Iterator[object]:
    """An open store on each backend (``modelplane.store.Store``)."""
    from modelplane.store import open_store

    s = open_store(store_url)
    try:
        yield s
    finally:
        s.close()
