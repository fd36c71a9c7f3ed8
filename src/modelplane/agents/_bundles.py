"""Agent bundles: an Agent's code folder as one content-addressed archive.

:func:`pack` turns a folder into a deterministic gzipped tar (entries sorted, owners, modes and
times fixed, gzip header without a name or a time), so the same files always give the same
``sha256:`` digest, and an edit gives a new one. :class:`BundleStore` keeps bundles under
``$MODELPLANE_HOME/bundles``::

    bundles/sha256/<hex>.tar.gz     the archive as uploaded (its sha256 is <hex>)
    bundles/sha256/<hex>/           its files, extracted once (read-only files)

A bundle is checked before anything is written: its bytes must hash to the digest it is stored
under, it must unpack within :data:`MAX_BYTES` and :data:`MAX_ENTRIES`, and every entry must be a
plain file or folder at a relative path without ``..`` (no links, devices or absolute paths). The
archive and its extracted folder appear atomically (rename), so a reader never sees half of one.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from modelplane.agents.errors import BundleError
from modelplane.api import BUNDLE_DIGEST

#: the most bytes a bundle's files may hold in all, unpacked
MAX_BYTES = 64 * 1024 * 1024
#: the most files and folders a bundle may hold
MAX_ENTRIES = 10_000
#: names never packed: caches and tool state that differ between machines, never code
_SKIPPED = frozenset({"__pycache__", ".git", ".hg", ".svn", ".venv", ".mypy_cache", ".ruff_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def digest_of(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``: a bundle's name."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _packed_files(folder: Path) -> list[Path]:
    """The files and folders under ``folder`` that go into its bundle, sorted."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED)
        for name in [*dirs, *files]:
            path = Path(root, name)
            if name.endswith(_SKIPPED_SUFFIXES):
                continue
            if path.is_symlink():
                raise BundleError(
                    "LinkInBundle",
                    f"{path} is a symbolic link; a bundle holds plain files only: copy the file"
                    " it points to into the folder, or move the link out of it",
                )
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def pack(folder: str | os.PathLike[str]) -> bytes:
    """The bundle of ``folder``: deterministic, so the same files give the same digest."""
    base = Path(folder)
    if not base.is_dir():
        raise BundleError("BundleNotFound", f"{base} is not a folder; a bundle packs a folder")
    entries = _packed_files(base)
    if len(entries) > MAX_ENTRIES:
        raise BundleError(
            "BundleTooLarge",
            f"{base} holds {len(entries)} files and folders, more than a bundle's {MAX_ENTRIES};"
            " keep the Agent's manifest and code in a folder of their own",
        )
    raw = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in entries:
            info = tarfile.TarInfo(path.relative_to(base).as_posix())
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                continue
            data = path.read_bytes()
            total += len(data)
            if total > MAX_BYTES:
                raise BundleError(
                    "BundleTooLarge",
                    f"the files under {base} hold more than a bundle's {MAX_BYTES} bytes; keep the"
                    " Agent's manifest and code in a folder of their own (models and data belong"
                    " in the artifact store)",
                )
            executable = path.stat().st_mode & stat.S_IXUSR
            info.mode = 0o755 if executable else 0o644
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    # no file name and time 0 in the gzip header: the archive depends on the files alone
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _gunzip(data: bytes) -> bytes:
    """``data`` decompressed, refusing more than :data:`MAX_BYTES` (plus tar headers) of output."""
    limit = MAX_BYTES + 1024 * (MAX_ENTRIES + 2)  # room for one header block per entry
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BundleError("InvalidBundle", f"the bundle is not a gzip archive ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BundleError(
            "BundleTooLarge", f"the bundle unpacks to more than {MAX_BYTES} bytes; pack less"
        )
    return out


def _checked_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Every entry of ``tar``, or BundleError for the first one that could escape or overflow."""
    members = tar.getmembers()
    if len(members) > MAX_ENTRIES:
        raise BundleError(
            "BundleTooLarge", f"the bundle holds more than {MAX_ENTRIES} files and folders"
        )
    total = 0
    for member in members:
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts or not name.parts or "\\" in member.name:
            raise BundleError(
                "InvalidBundle",
                f"the bundle entry {member.name!r} is not a relative path inside the bundle",
            )
        if not (member.isfile() or member.isdir()):
            raise BundleError(
                "InvalidBundle",
                f"the bundle entry {member.name!r} is a link or a special file; a bundle holds"
                " plain files and folders only",
            )
        total += member.size
        if total > MAX_BYTES:
            raise BundleError(
                "BundleTooLarge", f"the bundle unpacks to more than {MAX_BYTES} bytes; pack less"
            )
    return members


def extract(data: bytes, dest: Path) -> None:
    """Unpack the bundle ``data`` into the new folder ``dest`` (see the module docstring)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(_gunzip(data)), mode="r:") as tar:
            members = _checked_members(tar)
            dest.mkdir(parents=True)
            # the "data" filter re-checks what we checked (paths, links, modes) inside tarfile
            tar.extractall(dest, members=members, filter="data")
    except tarfile.TarError as exc:
        raise BundleError("InvalidBundle", f"the bundle is not a tar archive ({exc})") from None


class BundleStore:
    """The bundles of one home (module docstring). ``fetch(digest)``, when given, returns the
    bytes of a bundle this home lacks (from the API server); they are verified like an upload."""

    def __init__(
        self,
        home: str | os.PathLike[str],
        *,
        fetch: Callable[[str], bytes] | None = None,
    ) -> None:
        self.root = Path(home) / "bundles" / "sha256"
        self._fetch = fetch

    def _archive(self, digest: str) -> Path:
        return self.root / f"{_hex(digest)}.tar.gz"

    def has(self, digest: str) -> bool:
        return (self.root / _hex(digest)).is_dir()

    def read(self, digest: str) -> bytes | None:
        """The archive named ``digest``, or None when this home does not hold it."""
        try:
            return self._archive(digest).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, digest: str, data: bytes) -> bool:
        """Store ``data`` as the bundle ``digest``; False when it was there already.

        Raises BundleError (``DigestMismatch``, ``InvalidBundle``, ``BundleTooLarge``) and
        stores nothing when ``data`` is not a safe bundle with that digest.
        """
        hex_digest = _hex(digest)
        if digest_of(data) != digest:
            raise BundleError(
                "DigestMismatch",
                f"the uploaded bundle has {digest_of(data)}, not {digest}; upload it under the"
                " digest of its bytes",
            )
        if self.has(digest):
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{hex_digest[:12]}-", dir=self.root))
        try:
            extract(data, work / "files")
            (work / "archive").write_bytes(data)
            for path in (work / "files").rglob("*"):  # code to run, not to edit in place
                if path.is_file():
                    path.chmod(0o444)
            os.replace(work / "archive", self._archive(digest))
            try:
                os.rename(work / "files", self.root / hex_digest)
            except OSError:
                if not self.has(digest):  # not a concurrent upload of the same bundle
                    raise
        finally:
            _remove(work)
        return True

    def folder(self, digest: str) -> Path:
        """The extracted folder of bundle ``digest``, fetched first when this home lacks it."""
        path = self.root / _hex(digest)
        if path.is_dir():
            return path
        if self._fetch is not None:
            self.put(digest, self._fetch(digest))
            return path
        raise BundleError(
            "BundleNotFound",
            f"bundle {digest} has not been uploaded; `modelplane apply -f` the Agent's folder"
            " (it uploads the bundle), or upload it with PUT /bundles/{digest}",
        )


def _hex(digest: str) -> str:
    if not BUNDLE_DIGEST.match(digest):
        raise BundleError(
            "InvalidDigest", f"{digest!r} is not a bundle digest (sha256: and 64 hex digits)"
        )
    return digest.removeprefix("sha256:")


def _remove(path: Path) -> None:
    """Remove ``path``, our temporary work (read-only files in writable folders go too)."""
    shutil.rmtree(path, ignore_errors=True)
