"""Database URLs: which backend a URL names, the SQLite URL's parts, and the form safe to show.

* ``sqlite:///absolute/path.db`` or a plain file path: the embedded SQLite backend. Query
  parameters: ``timeout`` (seconds to wait for another process's write lock, default 5) and
  ``synchronous`` (``normal``, the default, or ``full``; see :mod:`modelplane.store._sqlite`).
* ``postgresql://user@host:port/db`` (or ``postgres://``): the shared PostgreSQL backend. The URL
  goes to libpq unchanged, so ``?options=-csearch_path=myschema`` puts the tables in a schema.

A URL may hold a password; :func:`redact_url` is the only form of it that may appear in messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from modelplane.api.errors import BadRequest

_SECRET_PARAMS = frozenset({"password", "passfile", "sslpassword"})


def redact_url(url: str) -> str:
    """``url`` without secrets: the password of the user part and password-like parameters."""
    parts = urlsplit(url)
    netloc = parts.netloc
    changed = False
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
            changed = True
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key.lower() in _SECRET_PARAMS for key, _ in pairs):
        query = urlencode(
            [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="/=-"
        )
        changed = True
    if not changed:
        return url  # untouched, so a SQLite path reads exactly as given
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def backend_of(url: str) -> Literal["sqlite", "postgres"]:
    """The backend ``url`` names; BadRequest for a scheme no backend serves."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        return "postgres"
    if scheme in ("sqlite", ""):
        return "sqlite"
    raise BadRequest(
        f"database URL scheme {scheme!r} is not supported: use sqlite:///path/to/file.db or"
        " postgresql://user@host:port/database"
    )


@dataclass(frozen=True)
class SQLiteURL:
    """A SQLite URL taken apart: ``url`` is the canonical ``sqlite://`` form of what was given."""

    url: str
    path: Path
    timeout: float
    synchronous: str


def parse_sqlite_url(url: str) -> SQLiteURL:
    """The parts of a ``sqlite://`` URL or a plain path; BadRequest naming what to write instead."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.netloc or not parts.path:
            raise BadRequest(
                f"database URL {url!r} is not a SQLite URL: write sqlite:///absolute/path.db"
                " (three slashes, then the path)"
            )
        path = Path(unquote(parts.path))
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    else:
        path = Path(url).absolute()
        query = {}
        url = "sqlite://" + quote(path.as_posix())
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
    return SQLiteURL(url, path, timeout, query.get("synchronous", "normal"))
