"""Signed Model versions: the signature a version names, checked with the operator's trusted key.

A version's ``signature`` is the ``sha256:<hex>`` of a model-signing bundle imported into the
artifact store (``modelplane models import PATH`` brings ``PATH.sig``). The public key that checks
it is the operator's (``modelplane up --model-signing-key PUB``): a client names which signature,
never which key or which file on the server. The node agent checks before any load and the Model
controller reports the result; both go through :class:`SignatureCheck`, which remembers a verified
(artifact digest, signature, key) so that a multi-gigabyte model is hashed once per change: the
caller has just verified the artifact's digest, and the digest covers every byte the signature does.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from modelplane.serving._artifacts import ArtifactStore
from modelplane.serving._errors import ArtifactError

#: the operator's trusted public key when none is passed (``modelplane up --model-signing-key``)
MODEL_SIGNING_KEY_ENV = "MODELPLANE_MODEL_SIGNING_KEY"


class SignatureCheck:
    """Checks the signatures of Model versions with one trusted public key (or none configured)."""

    def __init__(self, artifacts: ArtifactStore, trusted_key: str | os.PathLike[str] | None):
        self.artifacts = artifacts
        if trusted_key is None:
            trusted_key = os.environ.get(MODEL_SIGNING_KEY_ENV) or None
        self.trusted_key = Path(trusted_key) if trusted_key is not None else None
        self._verified: set[tuple[str, str, str, int]] = set()
        self._lock = threading.Lock()

    def check(self, path: Path, digest: str, version: dict[str, Any]) -> bool:
        """True when ``version`` names a signature and it holds for ``path`` (whose digest the
        caller verified is ``digest``); False when it names none. Raises ArtifactError
        (``SignatureNotFound``, ``SignatureUntrusted``, ``SignatureInvalid``,
        ``ArtifactTampered`` naming the file with its expected and found digests)."""
        from modelplane.supplychain import SignatureError, verify

        signature = version.get("signature")
        if not signature:
            return False
        name = version.get("name")
        if self.trusted_key is None:
            raise ArtifactError(
                "SignatureUntrusted",
                f"version {name} names signature {signature}, but this platform has no trusted"
                " model-signing key; an operator starts it with --model-signing-key PUB",
            )
        bundle = self.artifacts.signature(str(signature))
        key = self._key_identity(str(signature), digest)
        with self._lock:
            if key in self._verified:
                return True
        try:
            verify(path, self.trusted_key, bundle)
        except SignatureError as exc:
            raise ArtifactError(
                exc.reason, f"version {name}: signature {signature}: {exc.message}"
            ) from None
        with self._lock:
            self._verified.add(key)
        return True

    def explain(self, path: Path, version: dict[str, Any]) -> ArtifactError | None:
        """Why ``path`` differs from what ``version``'s signature signed, naming each file with
        its expected and found digests (for a digest mismatch, which names only the artifact);
        None when the version names no signature, no key is trusted, or the signature holds."""
        from modelplane.supplychain import SignatureError, verify

        signature = version.get("signature")
        if not signature or self.trusted_key is None:
            return None
        try:
            verify(path, self.trusted_key, self.artifacts.signature(str(signature)))
        except ArtifactError as exc:
            return exc
        except SignatureError as exc:
            message = f"version {version.get('name')}: signature {signature}: {exc.message}"
            return ArtifactError(exc.reason, message)
        return None

    def _key_identity(self, signature: str, digest: str) -> tuple[str, str, str, int]:
        assert self.trusted_key is not None
        try:
            mtime = self.trusted_key.stat().st_mtime_ns
        except OSError:
            mtime = -1
        return (digest, signature, str(self.trusted_key), mtime)
