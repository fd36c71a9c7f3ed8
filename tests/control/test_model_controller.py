"""The Model controller, end to end on a real store: digests verified, tampering noticed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.control._wait import wait_until

from modelplane.api.errors import NotFound
from modelplane.control import Request, Result, get_condition
from modelplane.serving import ModelController, artifact_digest

NS = "team-a"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _model(
    name: str, *versions: dict[str, Any], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
        "spec": {"task": "chat", "versions": list(versions)},
    }


@pytest.fixture
def controller(store: Any, tmp_path: Path) -> Iterator[ModelController]:
    # the test's folder is the operator's model root: its artifacts may be read
    c = ModelController(store, verify_period=0.1, model_roots=[tmp_path])
    c.start()
    yield c
    assert c.stop(10), "the controller did not stop"


def _ready(store: Any, name: str) -> dict[str, Any] | None:
    obj = store.get("Model", NS, name)
    return get_condition(obj.get("status"), "Ready")


def _wait_ready(store: Any, name: str, status: str, reason: str | None = None) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        cond = _ready(store, name)
        if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
            return cond
        return None

    return wait_until(check, what=f"{name} Ready={status} {reason or ''}")


def _wait_events(store: Any, name: str, reason: str) -> list[dict[str, Any]]:
    """The events about ``name`` with ``reason``, once there is one (recorded after the status)."""
    return wait_until(
        lambda: [e for e in _events(store, name) if e["reason"] == reason],
        what=f"a {reason} event about {name}",
    )


def _events(store: Any, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in store.list("Event", NS).items
        if e["involvedObject"]["kind"] == "Model" and e["involvedObject"]["name"] == name
    ]


def test_model_with_a_correct_digest_becomes_ready(
    store: Any, controller: ModelController, tmp_path: Path
) -> None:
    weights = tmp_path / "llama.gguf"
    weights.write_bytes(b"gguf" * 4096)
    created = store.create(
        _model(
            "llama",
            {
                "name": "v1",
                "source": str(weights),
                "format": "gguf",
                "digest": _sha(weights.read_bytes()),
            },
        )
    )

    cond = _wait_ready(store, "llama", "True", "DigestVerified")

    status = store.get("Model", NS, "llama")["status"]
    assert status["observedGeneration"] == created["metadata"]["generation"]
    assert status["versions"] == [
        {
            "name": "v1",
            "ready": True,
            "digest": _sha(weights.read_bytes()),
            "message": f"{_sha(weights.read_bytes())} verified",
        }
    ]
    assert cond["observedGeneration"] == created["metadata"]["generation"]
    normal = _wait_events(store, "llama", "DigestVerified")
    assert [(e["type"], e["count"]) for e in normal] == [("Normal", 1)]


def test_tampered_file_flips_ready_to_false_with_a_warning_and_fixing_it_restores_true(
    store: Any, controller: ModelController, tmp_path: Path
) -> None:
    # given: a verified model
    weights = tmp_path / "mistral.safetensors"
    original = b"original weights" * 1000
    weights.write_bytes(original)
    store.create(
        _model(
            "mistral",
            {
                "name": "v1",
                "source": "file://" + str(weights),
                "format": "safetensors",
                "digest": _sha(original),
            },
        )
    )
    _wait_ready(store, "mistral", "True")

    # when: someone replaces the file behind the controller's back
    weights.write_bytes(b"evil weights!!!!" * 1000)

    # then: the periodic re-verification notices, says what and how to fix, and warns
    cond = _wait_ready(store, "mistral", "False", "DigestMismatch")
    assert cond["message"] == (
        f"version v1: the file {weights} has {_sha(b'evil weights!!!!' * 1000)}, the manifest says"
        f" {_sha(original)}; re-import the artifact or fix spec.versions[0].digest"
    )
    version = store.get("Model", NS, "mistral")["status"]["versions"][0]
    assert version["ready"] is False
    assert version["digest"] == _sha(b"evil weights!!!!" * 1000)
    warnings = _wait_events(store, "mistral", "DigestMismatch")
    assert len(warnings) == 1
    assert warnings[0]["type"] == "Warning"
    assert warnings[0]["message"] == cond["message"]
    assert warnings[0]["source"] == {"component": "model-controller"}

    # when: the artifact is restored, then it is Ready again
    weights.write_bytes(original)
    _wait_ready(store, "mistral", "True", "DigestVerified")


def test_missing_file_is_source_not_found_until_it_appears(
    store: Any, controller: ModelController, tmp_path: Path
) -> None:
    data = b"qwen" * 100
    store.create(
        _model(
            "qwen",
            {"name": "v1", "source": "weights/qwen.gguf", "format": "gguf", "digest": _sha(data)},
        )
    )

    # a relative source is looked up in the controller's model roots
    cond = _wait_ready(store, "qwen", "False", "SourceNotFound")
    assert str(tmp_path / "weights" / "qwen.gguf") in cond["message"]
    assert "spec.versions[0].source" in cond["message"]
    assert [e["type"] for e in _wait_events(store, "qwen", "SourceNotFound")] == ["Warning"]

    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "qwen.gguf").write_bytes(data)

    _wait_ready(store, "qwen", "True", "DigestVerified")


def test_fixing_a_wrong_digest_in_the_spec_makes_it_ready_at_the_new_generation(
    store: Any, controller: ModelController, tmp_path: Path
) -> None:
    weights = tmp_path / "phi.onnx"
    weights.write_bytes(b"onnx")
    model = store.create(
        _model(
            "phi",
            {"name": "v1", "source": str(weights), "format": "onnx", "digest": _sha(b"other")},
        )
    )
    _wait_ready(store, "phi", "False", "DigestMismatch")

    model = store.get("Model", NS, "phi")
    model["spec"]["versions"][0]["digest"] = _sha(b"onnx")
    fixed = store.update(model)

    cond = _wait_ready(store, "phi", "True", "DigestVerified")
    assert cond["observedGeneration"] == fixed["metadata"]["generation"] == 2
    assert store.get("Model", NS, "phi")["status"]["observedGeneration"] == 2


def test_status_is_not_rewritten_when_nothing_changed(
    store: Any, controller: ModelController, tmp_path: Path
) -> None:
    weights = tmp_path / "gemma.gguf"
    weights.write_bytes(b"gemma")
    store.create(
        _model(
            "gemma",
            {"name": "v1", "source": str(weights), "format": "gguf", "digest": _sha(b"gemma")},
        )
    )
    _wait_ready(store, "gemma", "True")
    version = store.get("Model", NS, "gemma")["metadata"]["resourceVersion"]
    reconciles = controller.stats().reconciles

    # when: the controller re-verifies several times (verify_period is 0.1 s)
    wait_until(
        lambda: controller.stats().reconciles >= reconciles + 3, what="three more reconciles"
    )

    # then: the object was not written again
    assert store.get("Model", NS, "gemma")["metadata"]["resourceVersion"] == version
    assert len(_events(store, "gemma")) == 1


def test_upstream_versions_are_ready_without_a_digest_and_others_are_still_checked(
    store: Any, controller: ModelController, tmp_path: Path
) -> None:
    store.create(
        _model(
            "mixed",
            {"name": "hosted", "source": "https://api.example.com/v1", "format": "upstream"},
            {
                "name": "local",
                "source": str(tmp_path / "absent.gguf"),
                "format": "gguf",
                "digest": _sha(b"x"),
            },
        )
    )

    _wait_ready(store, "mixed", "False", "SourceNotFound")
    versions = store.get("Model", NS, "mixed")["status"]["versions"]
    assert [(v["name"], v["ready"]) for v in versions] == [("hosted", True), ("local", False)]

    only_upstream = _model(
        "hosted", {"name": "v1", "source": "https://api.example.com/v1", "format": "upstream"}
    )
    store.create(only_upstream)
    _wait_ready(store, "hosted", "True", "Upstream")


def test_a_directory_artifact_is_verified_by_its_documented_digest(
    store: Any, controller: ModelController, tmp_path: Path
) -> None:
    d = tmp_path / "bert"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"\x01" * 100)
    store.create(
        _model(
            "bert",
            {"name": "v1", "source": str(d), "format": "safetensors", "digest": artifact_digest(d)},
        )
    )

    _wait_ready(store, "bert", "True", "DigestVerified")
    (d / "extra.bin").write_bytes(b"!")
    cond = _wait_ready(store, "bert", "False", "DigestMismatch")
    assert f"the directory {d} has" in cond["message"]


def test_missing_or_malformed_digests_and_remote_sources_say_what_to_do(
    store: Any, controller: ModelController, tmp_path: Path
) -> None:
    weights = tmp_path / "w.gguf"
    weights.write_bytes(b"w")
    store.create(_model("nodigest", {"name": "v1", "source": str(weights), "format": "gguf"}))
    store.create(
        _model(
            "baddigest",
            {"name": "v1", "source": str(weights), "format": "gguf", "digest": "md5:abc"},
        )
    )
    store.create(
        _model(
            "remote",
            {"name": "v1", "source": "s3://bucket/w.gguf", "format": "gguf", "digest": _sha(b"w")},
        )
    )
    store.create(_model("empty"))

    missing = _wait_ready(store, "nodigest", "False", "DigestMissing")
    assert "set spec.versions[0].digest to that" in missing["message"]
    assert _sha(b"w") in missing["message"]
    bad = _wait_ready(store, "baddigest", "False", "InvalidDigest")
    assert "sha256:<64 hex digits>" in bad["message"]
    remote = _wait_ready(store, "remote", "False", "UnsupportedSource")
    assert "format: upstream" in remote["message"]
    _wait_ready(store, "empty", "False", "NoVersions")


def test_reconciling_a_deleted_model_is_a_quiet_no_op(
    store: Any, controller: ModelController
) -> None:
    store.create(_model("gone", {"name": "v1", "source": "https://x/v1", "format": "upstream"}))
    _wait_ready(store, "gone", "True")

    store.delete("Model", NS, "gone")

    # reconcile is safe to run at any time: for a missing object it does nothing, asks for nothing
    assert controller.reconcile(Request(NS, "gone")) == Result()
    with pytest.raises(NotFound):
        store.get("Model", NS, "gone")


def test_an_artifact_imported_into_the_artifact_store_is_verified_there(
    store: Any, tmp_path: Path
) -> None:
    # given an artifact imported into the content-addressed store, and a source not on disk
    data = b"smol" * 256
    digest = _sha(data)
    entry = tmp_path / "models" / "sha256" / digest.removeprefix("sha256:")
    entry.mkdir(parents=True)
    (entry / "smol.gguf").write_bytes(data)
    entry.with_suffix(".json").write_text('{"kind": "file", "name": "smol.gguf"}')
    controller = ModelController(store, verify_period=0.1, artifact_root=tmp_path / "models")
    controller.start()
    try:
        store.create(
            _model(
                "smol",
                {"name": "v1", "source": "gone/smol.gguf", "format": "gguf", "digest": digest},
            )
        )
        # then the stored copy is verified
        _wait_ready(store, "smol", "True", "DigestVerified")

        # when the stored copy is tampered with, then it is a mismatch naming the stored file
        (entry / "smol.gguf").write_bytes(data + b"!")
        cond = _wait_ready(store, "smol", "False", "DigestMismatch")
        assert "smol.gguf" in cond["message"]
    finally:
        assert controller.stop(10)
