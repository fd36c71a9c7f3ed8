"""What is particular to the SQLite backend: URLs and defaults, and the sentences a person gets
when the file is corrupt, locked or cannot be written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from store_helpers import model

from modelplane.api.errors import BadRequest, Unavailable
from modelplane.store import default_url, open_store


def test_default_url_is_a_file_under_modelplane_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELPLANE_DATABASE_URL", raising=False)
    monkeypatch.setenv("MODELPLANE_HOME", str(tmp_path / "home"))

    url = default_url()

    assert url == f"sqlite://{tmp_path}/home/modelplane.db"
    assert (tmp_path / "home").is_dir()


def test_default_home_is_dot_modelplane_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELPLANE_DATABASE_URL", raising=False)
    monkeypatch.delenv("MODELPLANE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)

    assert default_url() == f"sqlite://{tmp_path}/.modelplane/modelplane.db"


def test_database_url_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELPLANE_DATABASE_URL", "postgresql://db.example:5432/mp")
    assert default_url() == "postgresql://db.example:5432/mp"


def test_open_store_without_a_url_uses_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELPLANE_DATABASE_URL", raising=False)
    monkeypatch.setenv("MODELPLANE_HOME", str(tmp_path))
    with open_store() as store:
        store.create(model("x"))
    assert (tmp_path / "modelplane.db").is_file()


def test_a_plain_path_opens_sqlite(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "plain.db")) as store:
        store.create(model("x"))
        assert store.url == f"sqlite://{tmp_path}/plain.db"


def test_the_file_is_in_wal_mode(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        store.create(model("x"))
    path = sqlite_url.removeprefix("sqlite://")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_synchronous_full_can_be_chosen_in_the_url(sqlite_url: str) -> None:
    with open_store(f"{sqlite_url}?synchronous=full") as store:
        assert store.create(model("x"))["metadata"]["generation"] == 1


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://localhost/db", "scheme 'mysql' is not supported"),
        ("sqlite://relative.db", "three slashes"),
        ("sqlite:///tmp/x.db?journal=off", "unknown parameters journal"),
        ("sqlite:///tmp/x.db?timeout=soon", "must be a number"),
    ],
)
def test_unsupported_urls_are_a_bad_request(url: str, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        open_store(url)


def test_a_corrupt_file_is_unavailable_with_advice(tmp_path: Path) -> None:
    # given a file that is not a SQLite database
    path = tmp_path / "modelplane.db"
    path.write_bytes(b"this is not a database, just some text that happens to be here\n" * 100)

    with pytest.raises(Unavailable) as err:
        open_store(f"sqlite://{path}")

    message = err.value.message
    assert str(path) in message
    assert "corrupt" in message and "move it aside" in message


def test_a_folder_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    # given a database path below a regular file (so its folder cannot exist)
    blocker = tmp_path / "file"
    blocker.write_text("x")

    with pytest.raises(Unavailable) as err:
        open_store(f"sqlite://{blocker}/sub/modelplane.db")

    assert str(blocker / "sub") in err.value.message
    assert "MODELPLANE_HOME" in err.value.message


def test_a_database_locked_by_another_process_is_unavailable(sqlite_url: str) -> None:
    # given a store, and another program holding an exclusive lock on the file
    with open_store(f"{sqlite_url}?timeout=0.2") as store:
        store.create(model("before"))
        path = sqlite_url.removeprefix("sqlite://")
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")

            # when the store must write, it waits its timeout and then says what is wrong
            with pytest.raises(Unavailable) as err:
                store.create(model("during"))
            # reads still work meanwhile (WAL)
            assert store.get("Model", "default", "before")["metadata"]["name"] == "before"
        finally:
            other.execute("ROLLBACK")
            other.close()

        message = err.value.message
        assert path in message and "locked" in message and "another process" in message
        assert err.value.retry_after == 1
        # and once the lock is gone the store works again
        assert store.create(model("after"))["metadata"]["name"] == "after"


def test_opening_a_database_locked_by_another_process_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(Unavailable, match="locked"):
            open_store(f"sqlite://{path}?timeout=0.1")
    finally:
        other.execute("ROLLBACK")
        other.close()
