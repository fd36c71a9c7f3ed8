"""Model artifacts signed and verified with OpenSSF ``model-signing`` (key-pair mode, offline).

A signature is a Sigstore bundle (JSON) holding a DSSE envelope whose payload is an in-toto
statement: the per-file SHA-256 manifest of the artifact (``predicate.resources``: name, digest)
signed with an elliptic-curve private key. :func:`sign` writes it beside the artifact
(``PATH.sig``); :func:`verify` checks the signature with a public key, hashes every file again and,
when a file differs, names it with the expected and found digests.

Certificate mode is offline too: the bundle carries the signing certificate and its chain, and
:func:`verify` checks that it chains to the CA certificates given. Keyless Sigstore signing needs
the network (see docs/supplychain.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: files model-signing leaves out of a manifest by default
_IGNORED = (".git", ".gitattributes", ".github", ".gitignore")


class SignatureError(Exception):
    """A signature that cannot be made or does not hold; ``reason`` is CamelCase for a condition,
    ``files`` the files that differ from the signed manifest (empty when the signature itself is
    the problem)."""

    def __init__(self, reason: str, message: str, files: tuple[FileMismatch, ...] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.files = files


@dataclass(frozen=True, slots=True)
class FileMismatch:
    """One file that is not as signed: ``expected``/``found`` are ``sha256:<hex>`` or ``""``
    (not in the signed manifest / not on disk any more)."""

    name: str
    expected: str
    found: str

    def describe(self) -> str:
        if not self.expected:
            return f"{self.name}: not in the signed manifest (found {self.found})"
        if not self.found:
            return f"{self.name}: missing (expected {self.expected})"
        return f"{self.name}: expected {self.expected}, found {self.found}"


def signature_path(path: str | os.PathLike[str]) -> Path:
    """Where :func:`sign` writes the signature of ``path``: beside it, ``PATH.sig``."""
    artifact = Path(path)
    if artifact.name in ("", ".", ".."):
        artifact = artifact.resolve()  # "." has no name to put .sig after
    return artifact.with_name(artifact.name + ".sig")


def generate_key(private_out: str | os.PathLike[str]) -> Path:
    """Write a new ECDSA P-256 private key (PEM, PKCS#8, unencrypted, mode 0600) to
    ``private_out`` and its public key beside it (``.pub``); returns the public key's path."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private = Path(private_out)
    public = private.with_suffix(".pub")
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return public


def sign(
    path: str | os.PathLike[str],
    private_key: str | os.PathLike[str],
    signature: str | os.PathLike[str] | None = None,
    *,
    certificate: str | os.PathLike[str] | None = None,
    chain: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Sign the file or folder ``path`` with ``private_key`` (PEM); returns the signature's path
    (``signature``, else ``PATH.sig``). With ``certificate`` (the key's signing certificate, PEM)
    and ``chain`` (its issuers), the bundle carries the certificates instead of a key hint
    (model-signing's certificate mode). Raises SignatureError when it cannot."""
    from model_signing import signing

    if certificate is not None and not chain:
        raise SignatureError("SigningFailed", "a certificate needs its chain: at least its CA")
    target = Path(signature) if signature is not None else signature_path(path)
    for given, what in (
        (path, "artifact"),
        (private_key, "private key"),
        *_certs(certificate, chain),
    ):
        _must_exist(given, what)
    try:
        config = signing.Config()  # type: ignore[no-untyped-call]
        if certificate is None:
            config.use_elliptic_key_signer(private_key=Path(private_key))
        else:
            config.use_certificate_signer(
                private_key=Path(private_key),
                signing_certificate=Path(certificate),
                certificate_chain=[Path(c) for c in chain],
            )
        config.sign(Path(path), target)
    except (ValueError, TypeError, OSError) as exc:
        message = f"cannot sign {path} with {private_key}: {exc}"
        raise SignatureError("SigningFailed", message) from None
    return target


def _certs(
    certificate: str | os.PathLike[str] | None, chain: Sequence[str | os.PathLike[str]]
) -> list[tuple[str | os.PathLike[str], str]]:
    given = [(certificate, "certificate")] if certificate is not None else []
    return [*given, *((c, "certificate") for c in chain)]


def verify(
    path: str | os.PathLike[str],
    public_key: str | os.PathLike[str] | None,
    signature: str | os.PathLike[str] | None = None,
    *,
    trusted_certificates: Sequence[str | os.PathLike[str]] = (),
) -> dict[str, str]:
    """Check that ``signature`` (else ``PATH.sig``) signs ``path`` with ``public_key``, or (when
    ``public_key`` is None) with a certificate that chains to ``trusted_certificates`` (PEM CA
    certificates; model-signing's certificate mode, offline).

    Returns the signed manifest (file name -> ``sha256:<hex>``). Raises SignatureError:
    ``SignatureNotFound``, ``SignatureInvalid`` (wrong key or issuer, a damaged bundle) or
    ``ArtifactTampered`` naming each file with its expected and found digests.
    """
    from model_signing import verifying

    sig = Path(signature) if signature is not None else signature_path(path)
    trust = public_key if public_key is not None else ", ".join(map(str, trusted_certificates))
    if public_key is None and not trusted_certificates:
        raise SignatureError("NotFound", "give a public key, or the certificates to trust")
    givens = [(path, "artifact"), *_certs(None, trusted_certificates)]
    for given, what in givens + ([(public_key, "public key")] if public_key is not None else []):
        _must_exist(given, what)
    if not sig.is_file():
        raise SignatureError(
            "SignatureNotFound",
            f"no signature {sig}; sign it with `modelplane models sign {path} --key KEY`",
        )
    expected = signed_manifest(sig)
    try:
        checker = verifying.Config()  # type: ignore[no-untyped-call]
        if public_key is not None:
            checker.use_elliptic_key_verifier(public_key=Path(public_key))
        else:
            checker.use_certificate_verifier(
                certificate_chain=[Path(c) for c in trusted_certificates]
            )
        checker.verify(Path(path), sig)
    except ValueError as exc:
        if str(exc).startswith("Signature mismatch"):
            files = _differences(Path(path), expected)
            raise SignatureError(
                "ArtifactTampered",
                f"{path} is not what {sig} signed: " + "; ".join(f.describe() for f in files),
                files,
            ) from None
        raise SignatureError(
            "SignatureInvalid", f"{sig} does not verify with {trust}: {exc}"
        ) from None
    except Exception as exc:  # a damaged bundle, key or chain fails deep inside the library
        raise SignatureError(
            "SignatureInvalid", f"{sig} does not verify with {trust}: {exc}"
        ) from None
    return expected


def signed_manifest(signature: str | os.PathLike[str]) -> dict[str, str]:
    """The per-file manifest a signature bundle holds (name -> ``sha256:<hex>``), read without
    checking the signature; ``.`` names the file itself when a single file was signed."""
    try:
        bundle = json.loads(Path(signature).read_text())
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        resources: list[dict[str, Any]] = statement["predicate"]["resources"]
        return {str(r["name"]): f"{r.get('algorithm', 'sha256')}:{r['digest']}" for r in resources}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SignatureError(
            "SignatureInvalid",
            f"{signature} is not a model-signing bundle ({type(exc).__name__}: {exc})",
        ) from None


def file_manifest(path: str | os.PathLike[str]) -> dict[str, str]:
    """Every file of ``path`` (a folder, or ``.`` for a file) with its ``sha256:<hex>``, as
    model-signing lists them (git files left out)."""
    root = Path(path)
    if root.is_file():
        return {".": _sha256(root)}
    found: dict[str, str] = {}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        if rel.split("/")[0] not in _IGNORED:
            found[rel] = _sha256(file)
    return found


def _differences(path: Path, expected: dict[str, str]) -> tuple[FileMismatch, ...]:
    found = file_manifest(path)
    names = sorted(set(expected) | set(found))
    shown = path.name if path.is_file() else None
    return tuple(
        FileMismatch(shown if shown and n == "." else n, expected.get(n, ""), found.get(n, ""))
        for n in names
        if expected.get(n) != found.get(n)
    )


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


def _must_exist(path: str | os.PathLike[str], what: str) -> None:
    if not Path(path).exists():
        raise SignatureError("NotFound", f"{what} {path} does not exist")
