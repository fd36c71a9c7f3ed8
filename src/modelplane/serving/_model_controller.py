"""The Model controller: checks that every version's artifact is the one the manifest names.

For each ``Model`` and each entry of ``spec.versions[]``:

* ``format: upstream`` (served by an OpenAI-compatible upstream): ready without a check, reason
  ``Upstream``;
* an artifact imported into the content-addressed store (``$MODELPLANE_HOME/models``), found by
  ``digest``, is verified there and ``source`` is not read;
* otherwise a local ``source`` (an absolute path, a ``file://`` URI, or a relative path) is read
  only inside the folders the operator lists (``--model-root``, :func:`local_source`); a relative
  one is resolved against those folders alone, never against a folder a client names. A source
  elsewhere is not read: reason ``SourceNotAllowed``. The file's sha256 (or a directory's, see
  :mod:`modelplane.serving._digest`) must equal ``digest``; reasons ``DigestVerified``,
  ``DigestMismatch``, ``DigestMissing``, ``InvalidDigest``, ``SourceNotFound``,
  ``SourceUnreadable``;
* any other source (``s3://``, ``https://``...) is not ready, reason ``UnsupportedSource``: this
  controller does not download artifacts;
* a version that names a ``signature`` is then checked with the operator's trusted key
  (:mod:`modelplane.serving._signed`): reason ``SignatureVerified``, or ``ArtifactTampered``
  (naming the file, its expected and found digests), ``SignatureInvalid``, ``SignatureNotFound``,
  ``SignatureUntrusted``.

It writes ``status.versions[] {name, ready, digest (observed), message}``,
``status.observedGeneration`` and a ``Ready`` condition (True only when every version is ready),
only when they change; records an Event (Warning for failures) on each change of ``Ready``; and
re-verifies every ``verify_period`` seconds so that a file replaced behind its back is noticed.
Digests are cached by file identity, size and mtime, so a revisit does not re-read big files.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from modelplane.api.errors import NotFound
from modelplane.control import Controller, Request, Result, commit_status, set_condition
from modelplane.serving._artifacts import ArtifactStore
from modelplane.serving._digest import DigestCache, artifact_digest, stored_artifact
from modelplane.serving._errors import ArtifactError, SourceNotAllowed
from modelplane.serving._signed import SignatureCheck

if TYPE_CHECKING:
    from modelplane.store import Store

log = logging.getLogger("modelplane.control.model")

MODEL_API_VERSION = "modelplane.dev/v1alpha1"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_RELATIVE_HINT = " (a relative source is looked up in each --model-root folder)"


@dataclass(frozen=True, slots=True)
class _VersionCheck:
    name: str
    ready: bool
    reason: str
    message: str
    digest: str | None = None

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "ready": self.ready, "message": self.message}
        if self.digest is not None:
            out["digest"] = self.digest
        return out


def _local_path(source: str) -> str | None:
    """The path a ``source`` names (maybe relative), or None when it is not local."""
    if source.startswith("file:"):
        parsed = urlparse(source)
        if parsed.netloc not in ("", "localhost"):
            return None
        return url2pathname(unquote(parsed.path))
    if _URI_SCHEME.match(source):
        return None
    return source


def _inside(path: str, root: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def local_source(source: str, roots: Sequence[str | os.PathLike[str]]) -> str | None:
    """The absolute path ``source`` names inside one of ``roots``, or None when it is not a
    local path (``s3://``, ``https://``...).

    ``file://`` URIs (host empty or ``localhost``) and paths are local. An absolute one must lie
    inside a root once links are followed; a relative one is looked up in each root in turn (the
    first that holds it wins; else the first root's). Raises :class:`SourceNotAllowed` otherwise:
    a client never makes the platform read a path of its choosing.
    """
    path = _local_path(source)
    if path is None:
        return None
    bases = [Path(r).absolute() for r in roots]
    if os.path.isabs(path):
        if any(_inside(path, base) for base in bases):
            return os.path.abspath(path)
        raise SourceNotAllowed(source, bases)
    # ``..`` or a link may lead out of a root: only what stays inside counts
    found = [
        os.path.abspath(os.path.join(base, path))
        for base in bases
        if _inside(os.path.join(base, path), base)
    ]
    if not found:
        raise SourceNotAllowed(source, bases)
    return next((c for c in found if os.path.exists(c)), found[0])


class ModelController(Controller):
    """Verifies the artifacts of every ``Model`` version against their digests (module docstring).

    ``verify_period``: seconds between re-verifications of a Model when nothing changed.
    ``digest_cache``: share one between controllers to share hashing work (default: a private one).
    ``model_roots``: folders whose files local sources may name (default: none; only the artifact
    store, by digest).
    """

    kind = "Model"
    name = "model-controller"

    def __init__(
        self,
        store: Store,
        *,
        namespace: str | None = None,
        workers: int = 2,
        verify_period: float = 60.0,
        digest_cache: DigestCache | None = None,
        artifact_root: str | os.PathLike[str] | None = None,
        model_roots: Sequence[str | os.PathLike[str]] = (),
        model_signing_key: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(store, namespace=namespace, workers=workers)
        #: the local content-addressed artifact store (``$MODELPLANE_HOME/models``): a version whose
        #: source is not on disk is still verified when its digest was imported there
        home = os.environ.get("MODELPLANE_HOME")
        self.artifact_root = (
            Path(artifact_root)
            if artifact_root is not None
            else (Path(home) / "models" if home else None)
        )
        if verify_period <= 0:
            raise ValueError(f"verify_period must be positive seconds (got {verify_period})")
        self.verify_period = verify_period
        self.digest_cache = digest_cache if digest_cache is not None else DigestCache()
        #: the folders the operator lets local sources be read from (``--model-root``)
        self.model_roots = tuple(Path(r) for r in model_roots)
        #: signed versions are checked with the operator's key (``--model-signing-key``)
        self.signatures = (
            SignatureCheck(ArtifactStore(self.artifact_root.parent), model_signing_key)
            if self.artifact_root is not None
            else None
        )

    def reconcile(self, request: Request) -> Result:
        try:
            model = self.store.get(self.kind, request.namespace, request.name)
        except NotFound:
            return Result()  # deleted: nothing of ours outlives it
        if (model.get("metadata") or {}).get("deletionTimestamp"):
            return Result()

        checks = self._check_versions(model)
        ready, reason, message = _summarise(checks)
        status = copy.deepcopy(model.get("status") or {})
        generation = (model.get("metadata") or {}).get("generation")
        status["versions"] = [c.to_status() for c in checks]
        set_condition(status, "Ready", ready, reason, message, generation)
        if commit_status(self.store, model, status, component=self.component) is None:
            return Result(requeue=True)
        return Result(requeue_after=self.verify_period)

    # -- one version ------------------------------------------------------------------------------

    def _check_versions(self, model: dict[str, Any]) -> list[_VersionCheck]:
        versions = (model.get("spec") or {}).get("versions") or []
        return [self._check_version(i, v) for i, v in enumerate(versions)]

    def _check_version(self, index: int, version: Any) -> _VersionCheck:
        field = f"spec.versions[{index}]"
        if not isinstance(version, dict):
            return _failed(
                f"#{index}", "InvalidSpec", f"{field} must be an object {{name, source, ...}}"
            )
        name = str(version.get("name") or f"#{index}")
        if version.get("format") == "upstream":
            return _VersionCheck(
                name, True, "Upstream", "served by an upstream; no artifact to verify"
            )
        source = str(version.get("source") or "")
        if not source:
            return _failed(
                name,
                "SourceNotSet",
                f"version {name}: {field}.source is empty; set it to the artifact's path",
            )
        path = self._locate(name, field, version, source)
        if isinstance(path, _VersionCheck):
            return path
        return self._verify(name, field, version, source, path)

    def _locate(
        self, name: str, field: str, version: dict[str, Any], source: str
    ) -> str | _VersionCheck:
        """The path to hash for a version: its stored copy when its digest was imported, else
        its local source inside the model roots; or why there is none."""
        label = f"version {name}"
        expected_digest = str(version.get("digest") or "").lower()
        stored = (
            stored_artifact(self.artifact_root, expected_digest)
            if self.artifact_root and _DIGEST.match(expected_digest)
            else None
        )
        try:
            # imported before: verify the stored copy; the source is not read at all
            path = str(stored) if stored is not None else local_source(source, self.model_roots)
        except SourceNotAllowed as exc:
            return _failed(name, "SourceNotAllowed", f"{label}: {exc.message}")
        if path is None:
            return _failed(
                name,
                "UnsupportedSource",
                f"{label}: source {source!r} is not a local path; the model controller verifies"
                " local artifacts (a path or a file:// URI): download it and point"
                f" {field}.source at the copy, or use format: upstream for a model served by an"
                " OpenAI-compatible upstream",
            )
        return path

    def _verify(
        self, name: str, field: str, version: dict[str, Any], source: str, path: str
    ) -> _VersionCheck:
        """Hash ``path`` and compare it with the version's ``digest``."""
        label = f"version {name}"
        hint = "" if os.path.isabs(source) or source.startswith("file:") else _RELATIVE_HINT
        try:
            observed = artifact_digest(path, self.digest_cache)
        except FileNotFoundError:
            return _failed(
                name,
                "SourceNotFound",
                f"{label}: source {source!r} resolves to {path}, which does not exist{hint}; put"
                f" the artifact there or fix {field}.source",
            )
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return _failed(
                name,
                "SourceUnreadable",
                f"{label}: cannot read {path}: {why}; make it readable by the controller's user"
                f" or fix {field}.source",
            )
        what = "directory" if os.path.isdir(path) else "file"
        expected = str(version.get("digest") or "")
        if not expected:
            return _failed(
                name,
                "DigestMissing",
                f"{label}: {field}.digest is not set; the {what} {path} has {observed}: set"
                f" {field}.digest to that if it is the artifact you mean",
                observed,
            )
        if not _DIGEST.match(expected.lower()):
            return _failed(
                name,
                "InvalidDigest",
                f"{label}: {field}.digest {expected!r} is not of the form sha256:<64 hex digits>;"
                f" the {what} {path} has {observed}",
                observed,
            )
        if expected.lower() != observed:
            tampered = self.signatures.explain(Path(path), version) if self.signatures else None
            if tampered is not None:
                return _failed(name, tampered.reason, tampered.message, observed)
            return _failed(
                name,
                "DigestMismatch",
                f"{label}: the {what} {path} has {observed}, the manifest says {expected};"
                f" re-import the artifact or fix {field}.digest",
                observed,
            )
        return self._check_signature(name, version, path, observed)

    def _check_signature(
        self, name: str, version: dict[str, Any], path: str, digest: str
    ) -> _VersionCheck:
        """After the digest holds: the version's signature, when it names one."""
        if version.get("signature") and self.signatures is None:
            return _failed(
                name,
                "SignatureNotFound",
                f"version {name}: names a signature, but the controller has no artifact store"
                " (MODELPLANE_HOME) to find it in",
                digest,
            )
        try:
            signed = self.signatures is not None and self.signatures.check(
                Path(path), digest, version
            )
        except ArtifactError as exc:
            return _failed(name, exc.reason, exc.message, digest)
        if signed:
            message = f"{digest} verified; signature {version.get('signature')} verified"
            return _VersionCheck(name, True, "SignatureVerified", message, digest)
        return _VersionCheck(name, True, "DigestVerified", f"{digest} verified", digest)


def _failed(name: str, reason: str, message: str, digest: str | None = None) -> _VersionCheck:
    """A version that is not ready, and why."""
    return _VersionCheck(name, False, reason, message, digest)


def _summarise(checks: list[_VersionCheck]) -> tuple[bool, str, str]:
    """The Ready condition's (status, reason, message) from the version checks."""
    if not checks:
        return (
            False,
            "NoVersions",
            "spec.versions is empty; add at least one version {name, source, format, digest}",
        )
    failed = [c for c in checks if not c.ready]
    if failed:
        return False, failed[0].reason, "; ".join(c.message for c in failed)
    verified = [c.name for c in checks if c.reason in ("DigestVerified", "SignatureVerified")]
    upstream = [c.name for c in checks if c.reason == "Upstream"]
    parts = []
    if verified:
        parts.append(f"digest verified: {', '.join(verified)}")
    if upstream:
        parts.append(f"upstream (nothing to verify): {', '.join(upstream)}")
    return True, "DigestVerified" if verified else "Upstream", "; ".join(parts)
