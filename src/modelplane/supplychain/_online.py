"""The live package index pip is configured with, through its PEP 691 JSON simple API.

The index is the one pip uses: ``PIP_INDEX_URL``, else ``index-url`` from ``pip config list``.
Each answer is cached on disk (one small JSON file per name, kept a day), so a CI run asks the
index once per name per day. A credential in the index URL is never shown.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from modelplane.supplychain._names import normalize
from modelplane.supplychain._snapshot import Package, Release

ACCEPT = "application/vnd.pypi.simple.v1+json"
CACHE_SECONDS = 24 * 3600


class PackageIndexError(RuntimeError):
    """The package index could not answer: which index (without credentials) and why."""


def configured_index_url() -> str:
    """The index pip would use, from its own configuration."""
    url = os.environ.get("PIP_INDEX_URL")
    if url:
        return url
    try:
        listed = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PackageIndexError(f"cannot ask pip for its index ({exc})") from None
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(".index-url"):
            return value.strip().strip("'\"")
    raise PackageIndexError(
        "pip has no index configured: set PIP_INDEX_URL or `pip config set global.index-url URL`"
    )


def shown(url: str) -> str:
    """The URL without user and password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class OnlineIndex:
    """Existence and first upload of names, asked of a PEP 691 index and cached on disk."""

    def __init__(self, url: str, cache: Path, client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/") + "/"
        self.cache = cache
        self._client = client or httpx.Client(timeout=20, follow_redirects=True)

    def __call__(self, name: str) -> Package | None:
        key = normalize(name)
        doc = self._cached(key)
        if doc is None:
            doc = self._fetch(key)
            self.cache.mkdir(parents=True, exist_ok=True)
            (self.cache / f"{key}.json").write_bytes(orjson.dumps({"at": time.time(), **doc}))
        if not doc.get("exists"):
            return None
        first = doc.get("first")
        return Package(key, Release.parse(str(first)) if first else None, None, None)

    def _cached(self, key: str) -> dict[str, object] | None:
        path = self.cache / f"{key}.json"
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        fresh = isinstance(doc, dict) and time.time() - float(doc.get("at", 0)) < CACHE_SECONDS
        return doc if fresh else None

    def _fetch(self, key: str) -> dict[str, object]:
        try:
            response = self._client.get(self.url + key + "/", headers={"Accept": ACCEPT})
        except httpx.HTTPError as exc:
            raise PackageIndexError(f"the index {shown(self.url)} did not answer ({exc})") from None
        if response.status_code == 404:
            return {"exists": False}
        if response.status_code != 200 or "json" not in response.headers.get("content-type", ""):
            raise PackageIndexError(
                f"the index {shown(self.url)} answered {response.status_code} for {key}"
                " without PEP 691 JSON"
            )
        try:
            files = response.json().get("files") or []
            uploads = sorted(str(f["upload-time"]) for f in files if f.get("upload-time"))
        except (ValueError, AttributeError, TypeError):
            raise PackageIndexError(
                f"the index {shown(self.url)} answered for {key} with JSON that is not PEP 691"
            ) from None
        return {"exists": True, "first": uploads[0][:10] if uploads else None}
