"""Encryption at rest of Secrets, as Kubernetes' EncryptionConfiguration does in its storage layer.

The store seals every Secret before it reaches the database and opens it when it is read back,
so every process that opens the store (the API server, a standalone gateway's informers) sees
plain objects and the database holds only ciphertext: the rows of the objects table *and* of the
events table (watch history). What is sealed is ``data`` and ``stringData``; the envelope
(``apiVersion``, ``kind``, ``metadata``, ``type``) stays readable, so selectors and watches work.

Stored form: the sealed fields are replaced by one field::

    "encryptedData": "modelplane:enc:aesgcm:v1:<key id>:<base64 of nonce + ciphertext + tag>"

AES-256-GCM with a random 96-bit nonce per write, and the object's ``kind/namespace/name`` as
associated data, so a ciphertext copied onto another object does not open. The key id is the
first 8 hex digits of the key's SHA-256: it tells a wrong key from a corrupt row.

The key is 32 random bytes, base64-encoded, in a file kept outside the database (by default
``$MODELPLANE_HOME/encryption.key``; ``MODELPLANE_ENCRYPTION_KEY_FILE`` or ``open_store``'s
``encryption_key_file`` name another). It is read on first use; a process that writes a Secret
and finds no key file creates one (mode 0600). Every process sharing a database needs the same
key file: one with another key gets an error that says so, never garbage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from modelplane.api.errors import ModelplaneError
from modelplane.store._contract import JSON

#: the kinds whose values are sealed
SEALED_KINDS = frozenset({"Secret"})
#: the fields of a Secret that are sealed
_SEALED_FIELDS = ("data", "stringData")
_FIELD = "encryptedData"
_PREFIX = "modelplane:enc:aesgcm:v1:"
_KEY_BYTES = 32
_NONCE_BYTES = 12


def default_key_file() -> Path:
    """``$MODELPLANE_ENCRYPTION_KEY_FILE``, else ``$MODELPLANE_HOME/encryption.key`` (home
    defaulting to ``./.modelplane``, as for the database)."""
    named = os.environ.get("MODELPLANE_ENCRYPTION_KEY_FILE", "").strip()
    if named:
        return Path(named).expanduser().absolute()
    home = Path(os.environ.get("MODELPLANE_HOME") or ".modelplane").expanduser().absolute()
    return home / "encryption.key"


class EncryptionError(ModelplaneError):
    """A sealed object cannot be opened, or no key is available (a server misconfiguration)."""


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


class SecretEncryption:
    """Seals and opens the values of :data:`SEALED_KINDS` objects with a key file's key."""

    def __init__(self, key_file: str | Path) -> None:
        self.key_file = Path(key_file)
        self._lock = threading.Lock()
        self._aead: AESGCM | None = None
        self._key_id = ""

    @staticmethod
    def applies(kind: str) -> bool:
        return kind in SEALED_KINDS

    # -- the key ---------------------------------------------------------------------------

    def _load(self, *, create: bool) -> tuple[AESGCM, str]:
        with self._lock:
            if self._aead is None:
                key = self._read_key(create=create)
                self._aead, self._key_id = AESGCM(key), _key_id(key)
            return self._aead, self._key_id

    def _read_key(self, *, create: bool) -> bytes:
        path = self.key_file
        if create and not path.exists():
            self._create_key(path)
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise EncryptionError(
                f"Secrets in this store are encrypted, and the key file {path} does not exist:"
                " give this process the key file of the server that wrote them"
                " (--encryption-key-file or MODELPLANE_ENCRYPTION_KEY_FILE)"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise EncryptionError(f"cannot read the encryption key file {path}: {reason}") from None
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != _KEY_BYTES:
            raise EncryptionError(
                f"the encryption key file {path} must hold {_KEY_BYTES} random bytes, base64"
                " encoded (e.g. `head -c 32 /dev/urandom | base64`)"
            )
        return key

    @staticmethod
    def _create_key(path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return  # another process created it first: use theirs
        except OSError as exc:
            raise EncryptionError(
                f"cannot create the encryption key file {path} ({exc.strerror or exc}): pass"
                " --encryption-key-file with a writable path"
            ) from None
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(base64.b64encode(os.urandom(_KEY_BYTES)).decode() + "\n")
            f.flush()
            os.fsync(f.fileno())

    # -- sealing ---------------------------------------------------------------------------

    @staticmethod
    def _aad(obj: JSON) -> bytes:
        meta = obj.get("metadata") or {}
        return f"{obj.get('kind')}/{meta.get('namespace') or ''}/{meta.get('name')}".encode()

    def seal(self, obj: JSON) -> JSON:
        """``obj`` as stored: its sealed fields replaced by ``encryptedData``."""
        payload = {f: obj[f] for f in _SEALED_FIELDS if f in obj}
        out = {k: v for k, v in obj.items() if k not in _SEALED_FIELDS}
        aead, key_id = self._load(create=True)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = aead.encrypt(nonce, orjson.dumps(payload), self._aad(obj))
        out[_FIELD] = f"{_PREFIX}{key_id}:{base64.b64encode(nonce + sealed).decode()}"
        return out

    def open(self, obj: JSON) -> JSON:
        """``obj`` as read from the database, with its sealed fields back in the clear."""
        sealed = obj.get(_FIELD)
        if sealed is None:
            return obj  # written before encryption was on: shown as it is
        meta = obj.get("metadata") or {}
        what = f"{obj.get('kind')} {meta.get('namespace') or ''}/{meta.get('name')}"
        if not isinstance(sealed, str) or not sealed.startswith(_PREFIX):
            raise EncryptionError(f"{what} is stored in a form this version cannot read")
        key_id, _, blob = sealed[len(_PREFIX) :].partition(":")
        aead, ours = self._load(create=False)
        if key_id != ours:
            raise EncryptionError(
                f"{what} was encrypted with key {key_id}, but this process's key file"
                f" {self.key_file} holds key {ours}: start every process that shares the"
                " database with the same --encryption-key-file"
            )
        try:
            raw = base64.b64decode(blob, validate=True)
            plain = aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._aad(obj))
            payload: Any = orjson.loads(plain)
        except (binascii.Error, ValueError, InvalidTag, orjson.JSONDecodeError):
            raise EncryptionError(
                f"{what} cannot be decrypted with key {ours} from {self.key_file}: the row is"
                " damaged or was copied from another object"
            ) from None
        out = {k: v for k, v in obj.items() if k != _FIELD}
        if isinstance(payload, dict):
            out.update(payload)
        return out
