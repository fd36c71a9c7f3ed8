"""A Model version's local ``source`` is a path a client chose: the platform reads it only inside
the folders the operator lists (``--model-root``), or finds the artifact by digest in its own
content-addressed store. A source elsewhere is never read: not by the Model controller, not by
the node agent."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.control._wait import wait_until

from modelplane.control import get_condition
from modelplane.serving import (
    ArtifactStore,
    ModelController,
    NodeAgent,
    SourceNotAllowed,
    local_source,
)
from modelplane.store import Store, open_store

SECRET = b"the server's private bytes, not a model\n"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _model(source: str, digest: str | None = None) -> dict[str, Any]:
    version: dict[str, Any] = {"name": "v1", "source": source, "format": "gguf"}
    if digest:
        version["digest"] = digest
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {"task": "chat", "versions": [version]},
    }


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A model root holding one model, and a private file beside it (outside the root)."""
    root = tmp_path / "models-root"
    root.mkdir()
    (root / "ok.gguf").write_bytes(b"GGUF a real model")
    private = tmp_path / "private" / "token"
    private.parent.mkdir()
    private.write_bytes(SECRET)
    (root / "link.gguf").symlink_to(private)
    return {"root": root, "private": private, "home": tmp_path / "home"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


def _settled(store: Store) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = store.get("Model", "default", "probe")
        return obj if get_condition(obj.get("status"), "Ready") else None

    result: dict[str, Any] = wait_until(check, timeout=10, what="the Model's status")
    return result


@pytest.mark.parametrize(
    "source",
    [
        "ABSOLUTE",
        "file://ABSOLUTE",
        "../private/token",
        "link.gguf",
    ],
    ids=["absolute", "file-uri", "dotdot-out-of-the-root", "link-out-of-the-root"],
)
def test_a_model_source_outside_the_model_roots_is_never_read(
    store: Store, layout: dict[str, Path], source: str
) -> None:
    # given a controller that may read the model root only, and a Model naming a private file
    source = source.replace("ABSOLUTE", str(layout["private"]))
    controller = ModelController(store, verify_period=0.1, model_roots=[layout["root"]])
    controller.start()
    try:
        store.create(_model(source, _sha(b"whatever")))
        # when it is reconciled
        obj = _settled(store)
    finally:
        assert controller.stop(10)
    # then it is refused, saying how to import it or which flag an operator sets
    ready = get_condition(obj["status"], "Ready") or {}
    assert (ready["status"], ready["reason"]) == ("False", "SourceNotAllowed")
    assert "modelplane models import" in ready["message"] and "--model-root" in ready["message"]
    # and the private file was not read: its digest appears nowhere
    assert _sha(SECRET) not in json.dumps(obj)


def test_without_model_roots_no_local_source_is_read(store: Store, layout: dict[str, Path]) -> None:
    controller = ModelController(store, verify_period=0.1)
    controller.start()
    try:
        store.create(_model(str(layout["root"] / "ok.gguf")))
        obj = _settled(store)
    finally:
        assert controller.stop(10)
    assert get_condition(obj["status"], "Ready")["reason"] == "SourceNotAllowed"  # type: ignore[index]
    assert _sha(b"GGUF a real model") not in json.dumps(obj)


def test_a_relative_source_is_found_in_the_model_roots_and_verified(
    store: Store, layout: dict[str, Path]
) -> None:
    controller = ModelController(store, verify_period=0.1, model_roots=[layout["root"]])
    controller.start()
    try:
        store.create(_model("ok.gguf", _sha(b"GGUF a real model")))
        obj = _settled(store)
    finally:
        assert controller.stop(10)
    assert get_condition(obj["status"], "Ready")["reason"] == "DigestVerified"  # type: ignore[index]


def test_an_imported_artifact_is_found_by_digest_whatever_its_source_says(
    store: Store, layout: dict[str, Path], tmp_path: Path
) -> None:
    # given the artifact imported into the home's store by the operator, and no model roots
    artifact = ArtifactStore(layout["home"]).import_path(layout["root"] / "ok.gguf")
    controller = ModelController(store, verify_period=0.1, artifact_root=layout["home"] / "models")
    controller.start()
    try:
        # when a Model names it by digest (its source elsewhere: not read)
        store.create(_model(str(layout["private"]), artifact.digest))
        obj = _settled(store)
    finally:
        assert controller.stop(10)
    assert get_condition(obj["status"], "Ready")["reason"] == "DigestVerified"  # type: ignore[index]
    assert _sha(SECRET) not in json.dumps(obj)


def test_the_node_agent_imports_no_artifact_from_outside_the_model_roots(
    store: Store, layout: dict[str, Path]
) -> None:
    # given a node agent whose operator allows the model root only
    agent = NodeAgent(store, "node-a", layout["home"], model_roots=[layout["root"]])
    model = _model(str(layout["private"]), _sha(SECRET))
    version = model["spec"]["versions"][0]
    # when a version's artifact (not imported yet) names a private file, with its true digest
    with pytest.raises(Exception) as refused:
        agent._artifact(model, version)
    # then it is refused, and nothing was copied into the artifact store
    assert getattr(refused.value, "reason", None) == "SourceNotAllowed"
    assert ArtifactStore(layout["home"]).get(_sha(SECRET)) is None
    # while a source inside the root is imported as before
    ok = {**version, "source": "ok.gguf", "digest": _sha(b"GGUF a real model")}
    path, digest = agent._artifact(model, ok)
    assert digest == _sha(b"GGUF a real model") and path.read_bytes() == b"GGUF a real model"


def test_local_source_resolves_inside_the_roots_and_refuses_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    assert local_source("sub/a.gguf", [root]) == str(root / "sub" / "a.gguf")
    assert local_source(f"file://{root}/a%20b.gguf", [root]) == str(root / "a b.gguf")
    assert local_source("s3://bucket/a.gguf", [root]) is None
    assert local_source("https://example.com/a.gguf", []) is None
    for outside in ("/etc/passwd", "../x.gguf", "sub/../../x.gguf", f"{root}-sibling/a"):
        with pytest.raises(SourceNotAllowed):
            local_source(outside, [root])
    with pytest.raises(SourceNotAllowed):
        local_source("a.gguf", [])
    assert os.path.isabs(local_source("a.gguf", [root]) or "")
