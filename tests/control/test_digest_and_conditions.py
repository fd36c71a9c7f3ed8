"""Artifact digests (files, directories, the cache) and the condition helper."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from modelplane.control import parse_rfc3339, rfc3339
from modelplane.serving import DigestCache, artifact_digest, local_source


def _old(path: Path) -> None:
    """Back-date ``path`` so that the cache may remember it (outside the racy window)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 60 * 10**9))


def test_file_digest_is_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    f = tmp_path / "model.gguf"
    f.write_bytes(b"weights" * 1000)

    assert artifact_digest(f) == "sha256:" + hashlib.sha256(b"weights" * 1000).hexdigest()


def test_directory_digest_is_sha256sum_of_the_sorted_file_list(tmp_path: Path) -> None:
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / "b.safetensors").write_bytes(b"b")
    (d / "a.json").write_bytes(b"{}")
    (d / "sub" / "c.bin").write_bytes(b"ccc")
    (d / "empty").mkdir()

    lines = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {rel}\n"
        for rel, data in [("a.json", b"{}"), ("b.safetensors", b"b"), ("sub/c.bin", b"ccc")]
    )
    assert artifact_digest(d) == "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils sha256sum")
def test_directory_digest_matches_the_documented_shell_pipeline(tmp_path: Path) -> None:
    d = tmp_path / "model"
    (d / "tokenizer").mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (d / "Z-upper.bin").write_bytes(b"\x00" * 10)

    out = subprocess.run(
        "find . -type f | sed 's|^\\./||' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum",
        shell=True,
        cwd=d,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[0]

    assert artifact_digest(d) == f"sha256:{out}"


def test_renaming_a_file_in_a_directory_changes_its_digest(tmp_path: Path) -> None:
    d = tmp_path / "model"
    d.mkdir()
    (d / "a.bin").write_bytes(b"x")
    before = artifact_digest(d)

    (d / "a.bin").rename(d / "b.bin")

    assert artifact_digest(d) != before


def test_cache_does_not_reread_an_unchanged_file_but_notices_a_change(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"original")
    _old(f)
    cache = DigestCache()

    first = artifact_digest(f, cache)
    second = artifact_digest(f, cache)
    f.write_bytes(b"tampered")
    third = artifact_digest(f, cache)

    assert first == second
    assert (cache.misses, cache.hits) == (2, 1)
    assert third == "sha256:" + hashlib.sha256(b"tampered").hexdigest()


def test_cache_does_not_remember_a_file_written_just_now(tmp_path: Path) -> None:
    # a same-size write within the file system's timestamp tick would keep (size, mtime): the
    # cache must not trust a file so fresh
    f = tmp_path / "model.bin"
    f.write_bytes(b"aaaa")
    cache = DigestCache()

    artifact_digest(f, cache)
    st = f.stat()
    f.write_bytes(b"bbbb")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))

    assert artifact_digest(f, cache) == "sha256:" + hashlib.sha256(b"bbbb").hexdigest()


def test_a_missing_path_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        artifact_digest(tmp_path / "nope")


def test_sources_resolve_to_local_paths_inside_the_model_roots_or_none_for_remote_uris(
    tmp_path: Path,
) -> None:
    roots = [Path("/models")]
    assert local_source("/models/a.gguf", roots) == "/models/a.gguf"
    assert local_source("file:///models/a%20b.gguf", roots) == "/models/a b.gguf"
    assert local_source("file://localhost/models/a.gguf", roots) == "/models/a.gguf"
    assert local_source("weights/a.gguf", [tmp_path]) == str(tmp_path / "weights/a.gguf")
    assert local_source("s3://bucket/a.gguf", roots) is None
    assert local_source("https://example.com/a.gguf", roots) is None
    assert local_source("file://otherhost/a.gguf", roots) is None


def test_a_controllers_time_reads_back_as_the_seconds_it_was_written_from() -> None:
    # given a moment with milliseconds, when written and read again, then nothing is lost
    written = rfc3339(1_767_225_845.678)
    assert written == "2026-01-01T00:04:05.678Z"
    assert parse_rfc3339(written) == pytest.approx(1_767_225_845.678)
    # and a Kubernetes timestamp (whole seconds) reads too
    assert parse_rfc3339("2026-01-01T00:04:05Z") == 1_767_225_845.0
    # and anything else is refused, naming the text
    with pytest.raises(ValueError, match="'soon' is not an RFC 3339 time"):
        parse_rfc3339("soon")
