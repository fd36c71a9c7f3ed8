"""``modelplane audit bom``: the quickstart's Models and Endpoints, written to the store and read
back through a real API server (no workers: the BOM needs only the objects), as CycloneDX 1.6 JSON
validated against the schema cyclonedx-python-lib ships."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from tests.server.conftest import serving

from modelplane.cli import cli
from modelplane.server import create_app
from modelplane.store import open_store
from modelplane.supplychain import PythonPackage, build_bom, validate_bom

ROOT = Path(__file__).resolve().parents[2]


def _quickstart() -> list[dict[str, Any]]:
    docs = yaml.safe_load_all((ROOT / "examples/quickstart/smollm2.yaml").read_text())
    return [d for d in docs if d and d["kind"] in ("Model", "Endpoint")]


@pytest.fixture
def server(sqlite_url: str) -> Iterator[str]:
    store = open_store(sqlite_url)
    for obj in _quickstart():
        obj["metadata"]["namespace"] = "default"
        store.create(obj)
    try:
        with serving(create_app(store)) as base:
            yield base
    finally:
        store.close()


def test_the_bom_of_the_quickstart_validates_and_relates_the_endpoint_to_its_model(
    server: str,
) -> None:
    # when the documented command runs against the quickstart's objects
    result = CliRunner().invoke(cli, ["audit", "bom", "--server", server, "-n", "default"])
    # then it is CycloneDX 1.6 JSON that validates against the schema
    assert result.exit_code == 0, result.output
    assert validate_bom(result.stdout) is None
    bom = json.loads(result.stdout)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    by_ref = {c["bom-ref"]: c for c in bom["components"]}
    # the model version: digest as its SHA-256 hash, its license and a model card
    model = by_ref["model:default/smollm2@v1"]
    assert model["type"] == "machine-learning-model"
    assert model["hashes"] == [
        {
            "alg": "SHA-256",
            "content": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        }
    ]
    assert model["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    assert model["modelCard"]["modelParameters"]["task"] == "chat"
    # the Endpoint depends on the version it serves and on the serving code
    depends = {d["ref"]: d.get("dependsOn", []) for d in bom["dependencies"]}
    assert depends["endpoint:default/smollm2"] == ["model:default/smollm2@v1", "serving:modelplane"]
    # the serving code's Python dependencies, with versions, purls and licenses
    libraries = {c["name"]: c for c in bom["components"] if c["type"] == "library"}
    assert {"pydantic", "starlette", "torch"} <= set(libraries)
    assert libraries["pydantic"]["purl"].startswith("pkg:pypi/pydantic@")
    assert libraries["pydantic"]["licenses"]
    assert set(depends["serving:modelplane"]) == {c["bom-ref"] for c in libraries.values()}


def test_the_bom_of_one_endpoint_names_only_its_model_and_an_unknown_one_is_an_error(
    server: str,
) -> None:
    one = CliRunner().invoke(cli, ["audit", "bom", "smollm2", "--server", server])
    assert one.exit_code == 0, one.output
    refs = [c["bom-ref"] for c in json.loads(one.stdout)["components"]]
    assert "endpoint:default/smollm2" in refs and "model:default/smollm2@v1" in refs
    missing = CliRunner().invoke(cli, ["audit", "bom", "nope", "--server", server])
    assert missing.exit_code != 0
    assert "nope" in missing.output and "Traceback" not in missing.output


def test_traffic_targets_choose_the_versions_an_endpoint_depends_on() -> None:
    model = {
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {
            "task": "embedding",
            "versions": [
                {"name": "v1", "format": "safetensors", "digest": "sha256:" + "1" * 64},
                {"name": "v2", "format": "gguf", "digest": "sha256:" + "2" * 64, "license": "MIT"},
                {"name": "api", "format": "upstream", "source": "https://api.example.com/v1"},
            ],
        },
    }
    endpoint = {
        "metadata": {"name": "e", "namespace": "ns"},
        "spec": {
            "model": "m",
            "traffic": [{"version": "v1", "weight": 0}, {"version": "v2", "weight": 100}],
        },
    }
    text = build_bom([model], [endpoint], [PythonPackage("click", "8.1.0", "BSD-3-Clause")])
    bom = json.loads(text)
    depends = {d["ref"]: d.get("dependsOn", []) for d in bom["dependencies"]}
    assert depends["endpoint:ns/e"] == ["model:ns/m@v2", "serving:modelplane"]
    models = [c for c in bom["components"] if c["type"] == "machine-learning-model"]
    assert [c["version"] for c in models] == ["v1", "v2"]  # upstream versions have no artifact
    assert models[1]["modelCard"]["modelParameters"]["outputs"] == [{"format": "embedding"}]


def test_osv_advisories_affecting_an_installed_version_are_vulnerabilities_of_its_library(
    tmp_path: Path, server: str
) -> None:
    # given an OSV zip with an advisory for requests < 2.32.0, and a BOM of packages built by hand
    from modelplane.supplychain import OsvDatabase

    from .test_guard import write_osv

    osv = OsvDatabase.load(write_osv(tmp_path / "all.zip"))
    packages = [PythonPackage("requests", "2.31.0", "Apache-2.0"), PythonPackage("click", "8.1.0")]
    bom = json.loads(build_bom([], [], packages, osv=osv))
    # then the affected library has the advisory, its alias and the fixed version; the BOM validates
    (vulnerability,) = bom["vulnerabilities"]
    assert vulnerability["id"] == "GHSA-0001"
    assert vulnerability["affects"] == [{"ref": "pypi:requests@2.31.0"}]
    assert vulnerability["recommendation"] == "upgrade requests to 2.32.0"
    assert {"name": "modelplane:alias", "value": "CVE-2024-0001"} in vulnerability["properties"]
    # and the command takes the zip too
    result = CliRunner().invoke(
        cli, ["audit", "bom", "--server", server, "--osv", str(tmp_path / "all.zip")]
    )
    assert result.exit_code == 0, result.output
    assert validate_bom(result.stdout) is None
