"""The quickstart manifests are valid, and their digests match the artifacts they point at."""

from __future__ import annotations

import hashlib
from pathlib import Path

from modelplane import api

from . import _objects


def test_quickstart_manifests_all_validate() -> None:
    manifests = api.load_paths([_objects.QUICKSTART])
    kinds = sorted(api.validate(m.obj, manifest=m)["kind"] for m in manifests)
    assert kinds == ["DeviceClass", "Endpoint", "Model", "Node", "ResourceSlice"]


def test_quickstart_artifact_digests_match_the_files_relative_to_the_manifest() -> None:
    (manifest,) = api.load_paths([_objects.QUICKSTART / "model.yaml"])
    versions = api.validate(manifest.obj)["spec"]["versions"]
    assert [v["name"] for v in versions] == ["v1", "v2"]
    for version in versions:
        artifact = Path(manifest.resolve_path(version["source"]))
        digest = "sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest()
        assert digest == version["digest"], artifact


def test_quickstart_endpoint_splits_traffic_90_10_on_one_gpu() -> None:
    (manifest,) = api.load_paths([_objects.QUICKSTART / "endpoint.yaml"])
    spec = api.validate(manifest.obj)["spec"]
    assert [(t["version"], t["weight"]) for t in spec["traffic"]] == [("v1", 90), ("v2", 10)]
    assert spec["devices"]["requests"][0]["exactly"]["deviceClassName"] == "gpu.nvidia.com"


def test_quickstart_node_offers_two_gpus() -> None:
    slices = [
        m.obj for m in api.load_paths([_objects.QUICKSTART]) if m.obj["kind"] == "ResourceSlice"
    ]
    (slice_,) = slices
    assert len(slice_["spec"]["devices"]) == 2
