"""Opening a store: the default URL, and the backend a URL names (the URL forms are in
:mod:`modelplane.store._urls`; without one, :func:`default_url`).

Every store opened here seals Secrets at rest with the key in ``encryption_key_file`` (default
:func:`~modelplane.store._encryption.default_key_file`; see :mod:`modelplane.store._encryption`):
every process that opens the store this way reads and writes them in the clear, the database
only ever holds ciphertext.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from modelplane.api.errors import Unavailable
from modelplane.store._contract import Store
from modelplane.store._encryption import SecretEncryption, default_key_file
from modelplane.store._store import DEFAULT_HISTORY, DEFAULT_WATCH_BUFFER
from modelplane.store._urls import backend_of, parse_sqlite_url


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
    backend = backend_of(url)
    codec = SecretEncryption(encryption_key_file or default_key_file())
    options: dict[str, Any] = {"history": history, "watch_buffer": watch_buffer, "codec": codec}
    if backend == "postgres":
        from modelplane.store._postgres import PostgresStore

        return PostgresStore(url, **options)
    where = parse_sqlite_url(url)
    from modelplane.store._sqlite import SQLiteStore

    return SQLiteStore(
        where.url, where.path, timeout=where.timeout, synchronous=where.synchronous, **options
    )
