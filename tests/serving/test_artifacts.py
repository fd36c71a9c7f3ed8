"""The content-addressed artifact store: digests, tampering, pickle."""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from modelplane.serving import ArtifactError, ArtifactStore


def _safetensors_file(path: Path, payload: bytes = b"\x00" * 16) -> Path:
    # a minimal valid safetensors file: 8-byte header length, JSON header, data
    header = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
    path.write_bytes(len(header).to_bytes(8, "little") + header + payload)
    return path


def test_import_records_the_sha256_of_the_file_and_is_idempotent(tmp_path: Path) -> None:
    # given a safetensors file
    weights = _safetensors_file(tmp_path / "w.safetensors")
    store = ArtifactStore(tmp_path / "home")
    # when it is imported twice
    first = store.import_path(weights)
    second = store.import_path(weights)
    # then its digest is the file's sha256, its bytes live under models/sha256/<hex>/
    assert first.digest == "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()
    assert first.format == "safetensors"
    assert first.path == tmp_path / "home/models/sha256" / first.hex / "w.safetensors"
    assert second == first
    assert store.open(first.digest).path.read_bytes() == weights.read_bytes()


def test_an_artifact_changed_after_import_is_refused(tmp_path: Path) -> None:
    # given an imported artifact
    store = ArtifactStore(tmp_path / "home")
    artifact = store.import_path(_safetensors_file(tmp_path / "w.safetensors"))
    # when one byte changes behind the store's back
    data = bytearray(artifact.path.read_bytes())
    data[-1] ^= 0xFF
    artifact.path.write_bytes(bytes(data))
    # then opening it fails with the reason and both digests
    with pytest.raises(ArtifactError) as caught:
        store.open(artifact.digest)
    assert caught.value.reason == "DigestMismatch"
    assert artifact.digest in caught.value.message


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.pkl"])
def test_pickle_based_weights_are_refused_unless_allowed(tmp_path: Path, name: str) -> None:
    # given a folder holding pickled weights
    folder = tmp_path / "model"
    folder.mkdir()
    # a benign pickle (a dict of floats): allowPickle still inspects it before accepting it
    (folder / name).write_bytes(pickle.dumps({"w": [0.0, 1.0]}))
    store = ArtifactStore(tmp_path / "home")
    # when it is imported without allowPickle, then it is refused with what to do
    with pytest.raises(ArtifactError) as caught:
        store.import_path(folder)
    assert caught.value.reason == "PickleRefused"
    assert "allowPickle" in caught.value.message
    # and with allow_pickle it is imported as format pytorch
    assert store.import_path(folder, allow_pickle=True).format == "pytorch"


def test_worker_refuses_to_load_an_artifact_whose_digest_does_not_match(tmp_path: Path) -> None:
    # given a model folder and a digest that is not its own
    folder = tmp_path / "model"
    folder.mkdir()
    _safetensors_file(folder / "model.safetensors")
    wrong = "sha256:" + "0" * 64
    # when a worker is started on it
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelplane.serving.worker",
            "--model-dir",
            str(folder),
            "--digest",
            wrong,
            "--home",
            str(tmp_path / "home"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # then it exits with status 3 and says why, without loading anything
    assert proc.returncode == 3, proc.stderr
    assert "DigestMismatch" in proc.stderr
    assert wrong in proc.stderr
