"""Choosing and opening a backend from a URL.

* ``sqlite:///absolute/path.db`` or a plain file path: the embedded SQLite backend. Query
  parameters: ``timeout`` (seconds to wait for another process's write lock, default 5) and
  ``synchronous`` (``normal``, the default, or ``full``; see :mod:`modelplane.store._sqlite`).
* ``postgresql://user@host:port/db`` (or ``postgres://``): the shared PostgreSQL backend. The URL
  goes to libpq unchanged, so ``?options=-csearch_path=myschema`` puts the tables in a schema.
* nothing: :func:`default_url`.

Every store opened here seals Secrets at rest with the key in ``encryption_key_file`` (default
:func:`~modelplane.store._encryption.default_key_file`; see :mod:`modelplane.store._encryption`):
every process that opens the store this way reads and writes them in the clear, the database
only ever holds ciphertext.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from modelplane.api.errors import BadRequest, Unavailable
from modelplane.store._common import DEFAULT_HISTORY, DEFAULT_WATCH_BUFFER
from modelplane.store._contract import Store
from modelplane.store._encryption import SecretEncryption, default_key_file


def default_url() -> str:
    """``$MODELPLANE_DATABASE_URL`` if set, else ``sqlite:///$MODELPLANE_HOME/modelplane.db`` with
    ``MODELPLANE_HOME`` defaulting to ``./.modelplane`` (created if missing)."""
    url = os.environ.get("MODELPLANE_DATABASE_URL", "").strip()
    if url:
        return url
    home = Path(os.environ.get("MODELPLANE_HOME") or ".modelplane").absolute()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Unavailable(
            f"cannot create the Modelplane home folder {home} ({exc.strerror or exc}): set"
            " MODELPLANE_HOME to a writable folder, or MODELPLANE_DATABASE_URL to a database"
        ) from None
    return "sqlite://" + quote((home / "modelplane.db").as_posix())


def open_store(
    url: str | None = None,
    *,
    history: int = DEFAULT_HISTORY,
    watch_buffer: int = DEFAULT_WATCH_BUFFER,
    encryption_key_file: str | Path | None = None,
) -> Store:
    """Open the store at ``url`` (default: :func:`default_url`).

    ``history``: how many recent events are kept for watches and continue tokens (older ones are
    compacted automatically; 0 keeps everything). ``watch_buffer``: how many recent events the
    process keeps in memory for its watches (a watch further behind reads the table).
    ``encryption_key_file``: the key Secrets are encrypted with (read on first use, created with
    mode 0600 by the first write of a Secret when missing); default
    ``$MODELPLANE_ENCRYPTION_KEY_FILE``, else ``$MODELPLANE_HOME/encryption.key``.

    Raises Unavailable when the database cannot be opened (with the reason and what to do), and
    BadRequest for a URL that names no supported backend.
    """
    url = url or default_url()
    codec = SecretEncryption(encryption_key_file or default_key_file())
    options: dict[str, Any] = {"history": history, "watch_buffer": watch_buffer, "codec": codec}
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        from modelplane.store._postgres import PostgresStore

        return PostgresStore(url, **options)
    if scheme == "sqlite":
        parts = urlsplit(url)
        if parts.netloc or not parts.path:
            raise BadRequest(
                f"database URL {url!r} is not a SQLite URL: write sqlite:///absolute/path.db"
                " (three slashes, then the path)"
            )
        path = Path(unquote(parts.path))
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    elif not scheme:
        path = Path(url).absolute()
        query = {}
        url = "sqlite://" + quote(path.as_posix())
    else:
        raise BadRequest(
            f"database URL scheme {scheme!r} is not supported: use sqlite:///path/to/file.db or"
            " postgresql://user@host:port/database"
        )
    unknown = sorted(set(query) - {"timeout", "synchronous"})
    if unknown:
        raise BadRequest(
            f"database URL {url!r} has unknown parameters {', '.join(unknown)}: SQLite URLs take"
            " timeout (seconds) and synchronous (normal or full)"
        )
    try:
        timeout = float(query.get("timeout", 5.0))
    except ValueError:
        raise BadRequest(
            f"timeout={query['timeout']!r} in {url!r} must be a number of seconds"
        ) from None
    from modelplane.store._sqlite import SQLiteStore

    return SQLiteStore(
        url, path, timeout=timeout, synchronous=query.get("synchronous", "normal"), **options
    )
