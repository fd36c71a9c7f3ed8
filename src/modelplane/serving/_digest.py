"""Artifact digests: the sha256 of a model file, or of a directory of files, computed streaming.

A **file**'s digest is ``sha256:`` and the hex sha256 of its bytes, as ``sha256sum FILE`` prints it.

A **directory**'s digest is ``sha256:`` and the hex sha256 of a manifest listing its files, one line
per regular file (symlinks to files are followed; symlinked directories are not entered)::

    <hex sha256 of the file>  <path relative to the directory, '/'-separated>\\n

with lines sorted by path (byte order of the UTF-8 path, as ``LC_ALL=C sort``). It is the output of
``sha256sum`` over the sorted files, so for paths without newlines or backslashes it can be
reproduced with standard tools::

    cd DIR && find . -type f | sed 's|^\\./||' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum

Renaming, adding or removing a file changes the digest, as does changing any byte; empty
directories and file metadata (mode, times) do not.

:class:`DigestCache` remembers file digests by (path, device, inode, size, mtime_ns) so that a
controller revisiting a multi-gigabyte file does not read it again unless it changed. A file
modified within the last :data:`RACY_SECONDS` before it was hashed is not remembered (git's "racy
clean" rule): file times have a coarse granularity, and a write landing in the same tick as our read
would otherwise go unnoticed.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import time
from collections import OrderedDict
from pathlib import Path

#: files changed this recently (seconds) are hashed again on every visit, see the module docstring
RACY_SECONDS = 2.0

_CacheKey = tuple[str, int, int, int, int]


class DigestCache:
    """A bounded, thread-safe memo of file sha256 hex digests, keyed by file identity and mtime."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[_CacheKey, str] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def file_hex(self, path: str, st: os.stat_result) -> str:
        """The hex sha256 of the regular file at ``path`` whose ``os.stat`` is ``st``."""
        key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        hex_digest = _hash_file(path)
        if time.time_ns() - st.st_mtime_ns < RACY_SECONDS * 1e9:
            return hex_digest
        with self._lock:
            self._entries[key] = hex_digest
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return hex_digest


def _hash_file(path: str) -> str:
    with open(path, "rb") as f:
        # hashlib.file_digest reads in chunks (and without the GIL): memory stays flat
        return hashlib.file_digest(f, "sha256").hexdigest()


def artifact_digest(path: str | os.PathLike[str], cache: DigestCache | None = None) -> str:
    """``sha256:<hex>`` of the file or directory at ``path`` (see the module docstring).

    Raises FileNotFoundError when ``path`` does not exist, PermissionError when it cannot be read,
    and ValueError when it is neither a regular file nor a directory (a device, a socket).
    """
    cache = cache if cache is not None else DigestCache(max_entries=0)
    root = os.fspath(path)
    st = os.stat(root)
    if stat.S_ISREG(st.st_mode):
        return "sha256:" + cache.file_hex(root, st)
    if not stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{root} is neither a regular file nor a directory")
    manifest = hashlib.sha256()
    for rel, file_path, file_st in _walk_files(root):
        manifest.update(f"{cache.file_hex(file_path, file_st)}  {rel}\n".encode())
    return "sha256:" + manifest.hexdigest()


def _walk_files(root: str) -> list[tuple[str, str, os.stat_result]]:
    found: list[tuple[str, str, os.stat_result]] = []
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)  # follows a symlink to its file
            except FileNotFoundError:
                continue  # a dangling symlink, or removed while we walked
            if stat.S_ISREG(st.st_mode):
                rel = Path(os.path.relpath(full, root)).as_posix()
                found.append((rel, full, st))
    found.sort(key=lambda entry: entry[0])
    return found


def stored_artifact(models_root: str | os.PathLike[str], digest: str) -> Path | None:
    """Where the artifact with ``digest`` lies in the content-addressed store at ``models_root``.

    The layout (written by ``modelplane models import``): ``sha256/<hex>.json`` records the import
    (``kind`` file or folder, ``name``); the content is ``sha256/<hex>/<name>`` for a file and
    ``sha256/<hex>/`` for a folder. None when nothing with that digest was imported.
    """
    entry = Path(models_root) / "sha256" / digest.removeprefix("sha256:")
    try:
        meta = json.loads(entry.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    path = entry / str(meta["name"]) if meta.get("kind") == "file" else entry
    return path if path.exists() else None
