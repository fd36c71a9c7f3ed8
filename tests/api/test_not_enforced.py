"""Fields the schemas accept but nothing enforces yet say so: in their help text (``explain``), and
as a Kubernetes-style ``Warning`` on every write that sets them (REST and ``modelplane apply``)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from tests.cli._platform import run_cli
from tests.server.conftest import serving

from modelplane.api import explain, not_enforced, validate
from modelplane.server import create_app
from modelplane.store import open_store

GROUP = "modelplane.dev/v1alpha1"
DIGEST = "sha256:" + "a" * 64


def _model(name: str, **version: Any) -> dict[str, Any]:
    v1 = {"name": "v1", "format": "safetensors", "source": "/models/m", "digest": DIGEST}
    return {
        "apiVersion": GROUP,
        "kind": "Model",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"versions": [{k: v for k, v in {**v1, **version}.items() if v is not None}]},
    }


def _endpoint(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Endpoint",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"model": "m", **spec},
    }


_POLICY = {
    "apiVersion": GROUP,
    "kind": "Policy",
    "metadata": {"name": "p", "namespace": "default"},
    "spec": {"scope": "runtime", "cedar": "permit(principal, action, resource);"},
}

#: (object, the field path its only warning names)
CASES = [
    pytest.param(_model("lic", license="apache-2.0"), "spec.versions[0].license", id="license"),
    pytest.param(_model("s3", source="s3://bucket/m"), "spec.versions[0].source", id="s3-source"),
    pytest.param(_model("hf", source="hf://org/m"), "spec.versions[0].source", id="hf-source"),
    pytest.param(
        _model("web", source="https://example.com/m.safetensors"),
        "spec.versions[0].source",
        id="https-source",
    ),
    pytest.param(_model("onnx", format="onnx"), "spec.versions[0].format", id="onnx-format"),
]

#: objects that set nothing unenforced: no warning
QUIET = [
    pytest.param(_model("local"), id="local-path"),
    # signatures are verified by the Model controller and the node agent (docs/supplychain.md)
    pytest.param(_model("sig", signature="sha256:" + "b" * 64), id="signature"),
    pytest.param(_model("file", source="file:///models/m"), id="file-uri"),
    pytest.param(
        _model("up", format="upstream", source="https://api.example.com/v1", digest=None),
        id="upstream-https",
    ),
    pytest.param(_endpoint("plain"), id="endpoint-without-slo"),
    # the SLO controller evaluates spec.slo (modelplane.sre)
    pytest.param(_endpoint("e", slo={"ttftP99": "500ms", "errorRate": 0.01}), id="endpoint-slo"),
    # runtime Policies are enforced on agents' tool calls and approvals
    pytest.param(_POLICY, id="runtime-policy"),
]


@pytest.mark.parametrize(
    "path",
    [
        "model.spec.versions.license",
        "model.spec.versions.source",
        "model.spec.versions.format",
    ],
)
def test_explain_says_the_field_is_not_enforced_yet(path: str) -> None:
    assert "Not enforced yet:" in " ".join(explain(path).split())


@pytest.mark.parametrize(("obj", "path"), CASES)
def test_an_object_that_sets_an_unenforced_field_gets_one_message_naming_it(
    obj: dict[str, Any], path: str
) -> None:
    (message,) = not_enforced(validate(copy.deepcopy(obj)))
    assert message.startswith(f"{path} is not enforced yet: ")


@pytest.mark.parametrize("obj", QUIET)
def test_an_object_without_unenforced_fields_gets_no_message(obj: dict[str, Any]) -> None:
    assert not_enforced(validate(copy.deepcopy(obj))) == []


# -- REST and CLI ----------------------------------------------------------------------------------


@pytest.fixture
def api_url(tmp_path: Path) -> Iterator[str]:
    """A REST server (no authentication) over a fresh SQLite store, on loopback."""
    store = open_store(f"sqlite:///{tmp_path / 'modelplane.db'}")
    try:
        with serving(create_app(store)) as url:
            yield url
    finally:
        store.close()


def _url(obj: dict[str, Any], name: bool = False) -> str:
    plural = {"Policy": "policies", "Endpoint": "endpoints", "Model": "models"}[obj["kind"]]
    base = f"/apis/{GROUP}/namespaces/default/{plural}"
    return f"{base}/{obj['metadata']['name']}" if name else base


def _warnings(response: httpx.Response) -> list[str]:
    return response.headers.get_list("warning")


@pytest.mark.parametrize(("obj", "path"), CASES)
def test_creating_an_object_with_an_unenforced_field_answers_a_warning_header(
    api_url: str, obj: dict[str, Any], path: str
) -> None:
    # when an object that sets the field is created
    r = httpx.post(api_url + _url(obj), content=orjson.dumps(obj))
    # then it is stored, and the answer warns as kube-apiserver does
    assert r.status_code == 201, r.text
    (warning,) = _warnings(r)
    assert warning.startswith(f'299 - "{path} is not enforced yet: ')


def test_replacing_and_patching_warn_too_and_a_plain_object_gets_no_warning(api_url: str) -> None:
    # given a Model without a license: no warning
    plain = _model("lm")
    created = httpx.post(api_url + _url(plain), content=orjson.dumps(plain))
    assert created.status_code == 201 and _warnings(created) == []
    # when it is replaced with a license, then the answer warns
    body = created.json()
    body["spec"]["versions"][0]["license"] = "apache-2.0"
    replaced = httpx.put(api_url + _url(plain, name=True), content=orjson.dumps(body))
    assert replaced.status_code == 200, replaced.text
    assert [w.split(":")[0] for w in _warnings(replaced)] == [
        '299 - "spec.versions[0].license is not enforced yet'
    ]
    # and a merge patch of another field warns while the stored object still sets it
    patched = httpx.patch(
        api_url + _url(plain, name=True),
        content=orjson.dumps({"metadata": {"labels": {"team": "a"}}}),
        headers={"content-type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    assert len(_warnings(patched)) == 1 and "license" in _warnings(patched)[0]


def test_modelplane_apply_prints_the_servers_warnings_on_stderr(
    api_url: str, tmp_path: Path
) -> None:
    # given a manifest with an Endpoint that sets an SLO and a Model whose source is on S3
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(
        yaml.safe_dump_all(
            [_model("m", source="s3://bucket/m"), _endpoint("e", slo={"errorRate": 0.01})]
        )
    )
    # when it is applied
    result = run_cli("--server", api_url, "apply", "-f", str(manifest))
    # then both objects are created, and the warning is printed as kubectl prints them (the
    # SLO is enforced: no warning for it)
    assert result.exit_code == 0, result.output
    assert "created" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith("Warning: spec.versions[0].source is not enforced yet: ")
    assert "modelplane models import" in warnings[0]
