"""``modelplane render kubernetes``: CRDs from our schemas, the components, each Endpoint's replicas.

Every rendered object is validated against the official Kubernetes OpenAPI schemas of the three
newest minor versions ``kubernetes-validate`` ships; the example custom resources are validated
against the generated CRD schemas.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from tests.api._objects import ALL
from tests.deploy._k8s import VERSIONS, problems

from modelplane.api import load_manifests, load_paths, validate
from modelplane.cli import cli
from modelplane.deploy import (
    crd_kinds,
    custom_resource_definition,
    json_path,
    render,
    structural,
    structural_problems,
)

ROOT = Path(__file__).parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"

GPU_ENDPOINT = ROOT / "examples" / "kubernetes" / "llama-gpu.yaml"


def _crd_schema(kind: str) -> dict[str, Any]:
    info = next(k for k in crd_kinds() if k.kind == kind)
    crd = custom_resource_definition(info)
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _by(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_the_validation_covers_the_three_newest_kubernetes_minor_versions() -> None:
    assert len(VERSIONS) == 3
    assert all(tuple(map(int, v.split("."))) >= (1, 34) for v in VERSIONS)  # resource.k8s.io/v1


def test_the_kubernetes_validation_sees_an_unknown_field_and_a_wrong_type() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    assert problems({**service, "spec": {"ports": [{"port": 80}]}}) == []
    assert "selectr" in "\n".join(problems({**service, "spec": {"selectr": {}}}))
    assert "eighty" in "\n".join(problems({**service, "spec": {"ports": [{"port": "eighty"}]}}))


def test_every_crd_is_structural_and_valid_on_each_kubernetes_version() -> None:
    for info in crd_kinds():
        crd = custom_resource_definition(info)
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert structural_problems(schema) == [], info.kind
        assert problems(crd) == []


def _defaults(node: Any, path: str) -> list[tuple[str, dict[str, Any], Any]]:
    if not isinstance(node, dict):
        return []
    found = []
    if "default" in node:
        found.append((path, {k: v for k, v in node.items() if k != "default"}, node["default"]))
    for name, child in (node.get("properties") or {}).items():
        found.extend(_defaults(child, f"{path}.{name}"))
    for key in ("items", "additionalProperties"):
        found.extend(_defaults(node.get(key), f"{path}.{key}"))
    return found


def test_every_default_in_a_crd_is_valid_against_its_own_schema() -> None:
    # kube-apiserver refuses a CRD whose defaults its own schema would refuse
    checked = 0
    for info in crd_kinds():
        schema = _crd_schema(info.kind)
        for path, node, default in _defaults(schema, info.kind):
            assert list(jsonschema.Draft4Validator(node).iter_errors(default)) == [], path
            checked += 1
    assert checked > 10


def test_crds_cover_our_kinds_but_not_dra_nor_the_core_shaped_ones() -> None:
    names = {info.kind for info in crd_kinds()}
    assert {"Model", "Endpoint", "Graph", "Agent", "Policy", "Queue", "Job"} <= names
    assert names.isdisjoint({"DeviceClass", "ResourceSlice", "ResourceClaim", "Secret", "Event"})


def test_a_crd_has_the_status_subresource_columns_and_short_names() -> None:
    info = next(k for k in crd_kinds() if k.kind == "Model")
    crd = custom_resource_definition(info)
    version = crd["spec"]["versions"][0]
    assert crd["metadata"]["name"] == "models.modelplane.dev"
    assert crd["spec"]["names"]["shortNames"] == ["mdl"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "TASK",
        "LATEST",
        "READY",
        "Age",
    ]


def test_short_names_of_builtin_kinds_are_left_out() -> None:
    endpoint = custom_resource_definition(next(k for k in crd_kinds() if k.kind == "Endpoint"))
    assert "shortNames" not in endpoint["spec"]["names"]  # `ep` is core Endpoints'


def test_column_paths_become_kubernetes_jsonpath() -> None:
    assert json_path("status.conditions[type=Ready].status") == (
        '.status.conditions[?(@.type=="Ready")].status'
    )
    assert json_path("spec.versions[-1].name") == ".spec.versions[-1:].name"
    assert json_path("status.allocation.devices.results[0].device") == (
        ".status.allocation.devices.results[0].device"
    )


def test_column_types_come_from_the_schema() -> None:
    endpoint = custom_resource_definition(next(k for k in crd_kinds() if k.kind == "Endpoint"))
    columns = {
        c["name"]: c["type"] for c in endpoint["spec"]["versions"][0]["additionalPrinterColumns"]
    }
    assert columns == {"MODEL": "string", "REPLICAS": "integer", "READY": "string", "Age": "date"}


def test_the_structural_check_sees_what_kube_apiserver_refuses() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/definitions/x"},
            "b": {"type": "object", "properties": {}, "additionalProperties": False},
            "c": {"type": "array"},
            "d": {"anyOf": [{"type": "string", "description": "x"}]},
            "e": {"type": "integer", "exclusiveMinimum": 0},
        },
    }
    found = "\n".join(structural_problems(bad))
    root = structural_problems(
        {"type": "array", "additionalProperties": {}, "properties": {"kind": {"type": "integer"}}}
    )
    assert "openAPIV3Schema: the root must be of type object" in root
    assert "openAPIV3Schema: additionalProperties must not be used at the root" in root
    assert "openAPIV3Schema.kind: must be of type string" in root
    for expected in (
        "openAPIV3Schema.a: '$ref' is not allowed",
        "openAPIV3Schema.a: no type",
        "openAPIV3Schema.b: additionalProperties: false",
        "openAPIV3Schema.c: an array without items",
        "openAPIV3Schema.d.anyOf[0]: 'type' inside",
        "openAPIV3Schema.e: exclusiveMinimum must be a boolean",
    ):
        assert expected in found


def test_structural_turns_pydantic_shapes_into_kubernetes_ones() -> None:
    given = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "max": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}], "default": None},
            "size": {
                "anyOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}],
                           "x-kubernetes-int-or-string": True}, {"type": "null"}],
            },
            "free": {"type": "object", "additionalProperties": True},
            "ratio": {"type": "number", "exclusiveMinimum": 0},
        },
    }  # fmt: skip
    got = structural(given)
    assert structural_problems(got) == []
    assert "additionalProperties" not in got
    assert got["properties"]["max"] == {"type": "integer", "minimum": 1, "nullable": True}
    assert got["properties"]["size"] == {"x-kubernetes-int-or-string": True, "nullable": True}
    assert got["properties"]["free"]["x-kubernetes-preserve-unknown-fields"] is True
    assert got["properties"]["ratio"] == {"type": "number", "minimum": 0, "exclusiveMinimum": True}


def test_the_quickstart_renders_objects_valid_on_each_kubernetes_version() -> None:
    rendered = render(load_paths([QUICKSTART]), namespace="modelplane", image="modelplane:test")
    assert [p for obj in rendered.all() for p in problems(obj)] == []
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered.all()}
    assert ("Deployment", "modelplane-server") in kinds
    assert ("Deployment", "modelplane-gateway") in kinds
    assert ("Deployment", "modelplane-agent-worker") in kinds
    assert ("DaemonSet", "modelplane-node") in kinds
    assert ("Deployment", "smollm2-v1") in kinds
    assert ("Service", "smollm2-polish-v1") in kinds


def test_components_have_probes_service_accounts_and_least_rbac() -> None:
    objects = render([], namespace="mp", image="modelplane:test").platform
    server = _by(objects, "Deployment", "modelplane-server")
    container = server["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["spec"]["template"]["spec"]["serviceAccountName"] == "modelplane-server"
    binding = _by(objects, "ClusterRoleBinding", "modelplane-node")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "modelplane-node", "namespace": "mp"}
    ]
    node_rules = _by(objects, "ClusterRole", "modelplane-node")["rules"]
    assert any("resourceslices" in r["resources"] and "create" in r["verbs"] for r in node_rules)
    # the gateway talks only to the database: no role, and no token in its pods
    assert not [
        o for o in objects if o["kind"] == "ClusterRole" and "gateway" in o["metadata"]["name"]
    ]
    assert (
        _by(objects, "ServiceAccount", "modelplane-gateway")["automountServiceAccountToken"]
        is False
    )


def test_an_endpoint_with_devices_gets_a_v1_resource_claim_template_per_its_pods() -> None:
    rendered = render(load_paths([GPU_ENDPOINT]), image="modelplane:test")
    objects = rendered.endpoints
    assert [p for obj in objects for p in problems(obj)] == []
    template = _by(objects, "ResourceClaimTemplate", "llama-devices")
    assert template["apiVersion"] == "resource.k8s.io/v1"
    assert template["metadata"]["namespace"] == "team-a"
    request = template["spec"]["spec"]["devices"]["requests"][0]
    assert request["exactly"]["deviceClassName"] == "gpu.nvidia.com"
    for version, digest in (("v1", "1" * 64), ("v2", "2" * 64)):
        deployment = _by(objects, "Deployment", f"llama-{version}")
        pod = deployment["spec"]["template"]["spec"]
        assert deployment["spec"]["replicas"] == 2
        assert pod["resourceClaims"] == [
            {"name": "devices", "resourceClaimTemplateName": "llama-devices"}
        ]
        assert pod["containers"][0]["resources"]["claims"] == [{"name": "devices"}]
        assert f"sha256:{digest}" in pod["containers"][0]["command"]
        assert _by(objects, "Service", f"llama-{version}")["spec"]["selector"] == {
            "modelplane.dev/endpoint": "llama",
            "modelplane.dev/version": version,
        }


def test_an_upstream_version_renders_no_replicas() -> None:
    text = """
apiVersion: modelplane.dev/v1alpha1
kind: Model
metadata: {name: hosted}
spec: {task: chat, versions: [{name: v1, source: "https://api.example.com/v1", format: upstream}]}
---
apiVersion: modelplane.dev/v1alpha1
kind: Endpoint
metadata: {name: hosted}
spec: {model: hosted}
"""
    assert render(load_manifests(text, "up.yaml"), image="modelplane:test").endpoints == []


def test_the_example_custom_resources_validate_against_their_crds() -> None:
    checked = set()
    for manifest in load_paths(sorted((ROOT / "examples").rglob("*.yaml"))):
        obj = validate(manifest.obj, manifest=manifest)
        if obj["kind"] not in {k.kind for k in crd_kinds()}:
            continue
        jsonschema.Draft4Validator(_crd_schema(obj["kind"])).validate(obj)
        checked.add(obj["kind"])
    assert {"Node", "Model", "Endpoint", "Graph", "Agent", "ToolServer", "Policy"} <= checked


def test_a_crd_schema_refuses_what_our_api_refuses() -> None:
    schema = _crd_schema("Endpoint")
    good = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Endpoint",
        "metadata": {"name": "e"},
        "spec": {"model": "m", "replicas": {"min": 1}},
    }
    jsonschema.Draft4Validator(schema).validate(good)
    bad = copy.deepcopy(good)
    bad["spec"]["replicas"]["min"] = -1
    with pytest.raises(jsonschema.ValidationError, match="minimum"):
        jsonschema.Draft4Validator(schema).validate(bad)
    bad = copy.deepcopy(good)
    del bad["spec"]["model"]
    with pytest.raises(jsonschema.ValidationError, match="'model' is a required property"):
        jsonschema.Draft4Validator(schema).validate(bad)


def test_an_endpoint_without_its_model_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["render", "kubernetes", "-f", str(QUICKSTART / "polish.yaml")], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "serves Model 'smollm2', which is not among the manifests" in result.output
    assert "Traceback" not in result.output


def test_a_bad_namespace_or_manifest_is_a_clear_error(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["render", "kubernetes", "--namespace", "Not_Valid"])
    assert result.exit_code == 1
    assert "RFC 1123" in result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "apiVersion: modelplane.dev/v1alpha1\nkind: Endpoint\nmetadata: {name: e}\nspec: {}\n"
    )
    result = runner.invoke(cli, ["render", "kubernetes", "-f", str(broken)])
    assert result.exit_code == 1
    assert "broken.yaml" in result.output and "spec.model" in result.output


def test_output_to_a_folder_writes_one_file_per_stage(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["render", "kubernetes", "-f", str(QUICKSTART), "-o", str(tmp_path / "k8s")]
    )
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "k8s").iterdir())
    assert files == ["00-crds.yaml", "10-platform.yaml", "20-endpoints.yaml"]
    crds = list(yaml.safe_load_all((tmp_path / "k8s" / "00-crds.yaml").read_text()))
    assert {c["kind"] for c in crds} == {"CustomResourceDefinition"}
    assert len(crds) == len(crd_kinds())


def test_the_commands_the_components_run_are_the_cli_s() -> None:
    objects = render([], image="modelplane:test").platform
    subcommands = {
        c["command"][1]
        for o in objects
        if o["kind"] in ("Deployment", "DaemonSet")
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert subcommands == {"server", "gateway", "agent-worker", "node"}
    # all of them exist now (tests/deploy/test_component_commands.py parses their options), and
    # docs/kubernetes.md no longer says they are coming
    assert subcommands - set(cli.commands) == set()
    page = (ROOT / "docs" / "kubernetes.md").read_text()
    assert "The `modelplane server` and `modelplane node` commands" not in page


def test_an_output_folder_that_is_a_file_is_an_error_naming_it(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    result = CliRunner().invoke(cli, ["render", "kubernetes", "-o", str(taken)])
    assert result.exit_code == 1
    assert f"cannot write {taken}" in result.output
    assert "Traceback" not in result.output and "bug" not in result.output


def test_an_object_of_every_crd_kind_as_our_api_stores_it_validates_against_its_crd() -> None:
    # normalised (defaults applied, as stored): what the operator mode will write into a cluster
    for info in crd_kinds():
        stored = validate(ALL[info.kind]())
        errors = list(jsonschema.Draft4Validator(_crd_schema(info.kind)).iter_errors(stored))
        assert [e.message for e in errors] == [], info.kind


def test_an_endpoint_renders_an_inference_pool_and_an_httproute_with_its_split() -> None:
    rendered = render(load_paths([GPU_ENDPOINT]), image="modelplane:test")
    objects = rendered.endpoints
    assert [p for obj in objects for p in problems(obj)] == []
    pool = _by(objects, "InferencePool", "llama")
    assert pool["apiVersion"] == "inference.networking.k8s.io/v1"
    assert pool["spec"]["selector"]["matchLabels"] == {"modelplane.dev/endpoint": "llama"}
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    # the pool selects exactly the pods the Deployments make
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pool["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    route = _by(objects, "HTTPRoute", "llama")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["metadata"]["namespace"] == "team-a"
    (rule,) = route["spec"]["rules"]
    assert rule["matches"][0]["headers"] == [
        {"type": "Exact", "name": "X-Gateway-Model-Name", "value": "llama"}
    ]
    endpoint = next(o for o in load_paths([GPU_ENDPOINT]) if o.obj["kind"] == "Endpoint").obj
    split = {t["version"]: t["weight"] for t in endpoint["spec"]["traffic"]}
    assert {b["name"]: b["weight"] for b in rule["backendRefs"]} == {
        f"llama-{v}": w for v, w in split.items()
    }
    services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    assert {b["name"] for b in rule["backendRefs"]} <= services


def test_header_routes_render_a_rule_each_and_their_versions_run_replicas() -> None:
    text = """
apiVersion: modelplane.dev/v1alpha1
kind: Model
metadata: {name: m}
spec:
  versions:
    - {name: v1, source: x, format: safetensors, digest: "sha256:ONE"}
    - {name: v2, source: x, format: safetensors, digest: "sha256:TWO"}
---
apiVersion: modelplane.dev/v1alpha1
kind: Endpoint
metadata: {name: chat}
spec:
  model: m
  traffic: [{version: v1, weight: 100}]
  routing:
    headerRoutes: [{headers: [{name: OpenAI-Project, value: proj_canary}], version: v2}]
""".replace("ONE", "1" * 64).replace("TWO", "2" * 64)
    objects = render(load_manifests(text, "chat.yaml"), image="modelplane:test").endpoints
    assert [p for obj in objects for p in problems(obj)] == []
    assert {"chat-v1", "chat-v2"} <= {
        o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"
    }
    canary, default = _by(objects, "HTTPRoute", "chat")["spec"]["rules"]
    assert {"type": "Exact", "name": "OpenAI-Project", "value": "proj_canary"} in canary["matches"][
        0
    ]["headers"]
    assert canary["backendRefs"] == [{"kind": "Service", "name": "chat-v2", "port": 8000}]
    assert [b["name"] for b in default["backendRefs"]] == ["chat-v1"]


def test_a_single_version_endpoint_routes_through_its_inference_pool() -> None:
    rendered = render(load_paths([QUICKSTART]), namespace="modelplane", image="modelplane:test")
    route = _by(rendered.endpoints, "HTTPRoute", "smollm2")
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "smollm2"}
    ]
    assert _by(rendered.endpoints, "InferencePool", "smollm2")["spec"]["endpointPickerRef"] == {
        "name": "smollm2-epp",
        "port": {"number": 9002},
        "failureMode": "FailOpen",
    }


def test_the_strict_check_of_gateway_api_objects_sees_an_unknown_field() -> None:
    route = {**ALL["HTTPRoute"](), "kind": "HTTPRoute"}
    route["spec"]["rules"][0]["backendRef"] = []
    assert any("rules[0].backendRef" in p for p in problems(route))
