"""validate(): normalisation, pass-through of server fields and status, and refusals of bad data."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelplane import api
from modelplane.api import errors

from . import _objects


def _causes(obj: Any, **kwargs: Any) -> dict[str, errors.Cause]:
    with pytest.raises(errors.Invalid) as caught:
        api.validate(obj, **kwargs)
    return {c.field: c for c in caught.value.causes}


def test_namespaced_object_without_namespace_gets_the_default() -> None:
    assert api.validate(_objects.endpoint())["metadata"]["namespace"] == "default"
    out = api.validate(_objects.endpoint(), default_namespace="team-b")
    assert out["metadata"]["namespace"] == "team-b"


def test_namespace_written_in_the_object_wins_over_the_default() -> None:
    out = api.validate(_objects.model(), default_namespace="elsewhere")
    assert out["metadata"]["namespace"] == "team-a"


def test_cluster_scoped_object_loses_any_namespace() -> None:
    obj = _objects.node()
    obj["metadata"]["namespace"] = "team-a"
    assert "namespace" not in api.validate(obj)["metadata"]
    assert "namespace" not in api.validate(_objects.resource_slice())["metadata"]


def test_invalid_default_namespace_is_refused_at_metadata_namespace() -> None:
    causes = _causes(_objects.endpoint(), default_namespace="Not Valid")
    assert "RFC 1123" in causes["metadata.namespace"].message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("metadata.name", "chat\n"),
        ("metadata.namespace", "team-a\n"),
        ("metadata.labels", {"app\n": "x"}),
        ("metadata.labels", {"app": "x\n"}),
    ],
)
def test_a_trailing_newline_is_not_part_of_a_valid_name(field: str, value: Any) -> None:
    obj = _objects.endpoint()
    obj["metadata"][field.split(".")[1]] = value
    assert field in _causes(obj)


def test_dra_object_written_with_our_group_is_stored_under_resource_k8s_io() -> None:
    obj = _objects.resource_claim()
    obj["apiVersion"] = "modelplane.dev/v1alpha1"
    assert api.validate(obj)["apiVersion"] == "resource.k8s.io/v1"


def test_server_owned_metadata_and_status_pass_through_unchanged() -> None:
    obj = _objects.endpoint()
    server = {
        "uid": "0c6f3f0e-52a8-4d0b-9a57-0f4b8e2b1d21",
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": "2025-01-01T00:00:00Z",
        "deletionTimestamp": "2025-01-02T00:00:00Z",
    }
    obj["metadata"].update(server)
    obj["status"] = {
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Serving"}],
        "readyReplicas": 2,
        "somethingAControllerAdded": {"x": 1},
    }
    out = api.validate(obj)
    assert {k: out["metadata"][k] for k in server} == server
    assert out["status"] == obj["status"]
    assert out["status"] is not obj["status"]  # a copy: the caller's object is not shared


def test_status_of_the_wrong_shape_is_refused() -> None:
    obj = _objects.endpoint()
    obj["status"] = {"conditions": {"type": "Ready"}}
    assert "must be a list" in _causes(obj)["status.conditions"].message


def test_validation_does_not_change_its_input() -> None:
    obj = _objects.endpoint()
    before = copy.deepcopy(obj)
    api.validate(obj)
    assert obj == before


@pytest.mark.parametrize("kind", list(_objects.ALL))
def test_validating_a_normalised_object_again_changes_nothing(kind: str) -> None:
    once = api.validate(_objects.ALL[kind]())
    assert api.validate(once) == once


def test_unknown_kind_is_refused_listing_the_known_kinds() -> None:
    obj = _objects.endpoint()
    obj["kind"] = "Endpoitn"
    cause = _causes(obj)["kind"]
    assert "did you mean 'Endpoint'?" in cause.message
    assert "ResourceClaim" in cause.message


def test_unknown_api_version_is_refused_naming_the_accepted_ones() -> None:
    obj = _objects.endpoint()
    obj["apiVersion"] = "modelplane.dev/v1"
    assert "'modelplane.dev/v1alpha1'" in _causes(obj)["apiVersion"].message


def test_object_without_api_version_or_kind_is_refused_for_each() -> None:
    causes = _causes({"metadata": {"name": "x"}})
    assert set(causes) == {"apiVersion", "kind"}
    assert causes["kind"].reason == "FieldValueRequired"


@pytest.mark.parametrize("value", [None, [], "Endpoint", 7])
def test_object_that_is_not_a_mapping_is_refused(value: Any) -> None:
    with pytest.raises(errors.Invalid, match="mapping"):
        api.validate(value)


def test_missing_metadata_name_is_required() -> None:
    obj = _objects.endpoint()
    del obj["metadata"]["name"]
    assert _causes(obj)["metadata.name"].reason == "FieldValueRequired"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (b"bytes", "not JSON data"),
        ({1, 2}, "not JSON data"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
    ],
)
def test_values_json_cannot_carry_are_refused_at_their_path(value: Any, words: str) -> None:
    obj = _objects.endpoint()
    obj["spec"]["limits"]["budget"]["amount"] = value
    assert words in _causes(obj)["spec.limits.budget.amount"].message


def test_non_string_keys_are_refused() -> None:
    obj = _objects.node()
    obj["metadata"]["labels"] = {7: "seven"}
    assert "quote it" in _causes(obj)["metadata.labels[7]"].message


def test_absurdly_deep_object_is_refused_not_crashed() -> None:
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(5000):
        cursor["x"] = {}
        cursor = cursor["x"]
    obj = _objects.resource_slice()
    obj["spec"]["devices"][0]["extra"] = deep
    with pytest.raises(errors.Invalid, match="not JSON data"):
        api.validate(obj)


def test_an_invalid_error_renders_as_a_kubernetes_status_with_causes() -> None:
    obj = _objects.endpoint()
    obj["spec"]["traffic"][0]["weight"] = 10
    with pytest.raises(errors.Invalid) as caught:
        api.validate(obj)
    status = caught.value.to_status()
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["details"]["kind"] == "Endpoint" and status["details"]["name"] == "chat"
    assert status["details"]["causes"][0]["field"] == "spec.traffic"
    assert 'Endpoint "chat" is invalid' in status["message"]


def test_cause_locations_point_at_the_line_and_column_of_the_field() -> None:
    text = """\
apiVersion: modelplane.dev/v1alpha1
kind: Endpoint
metadata:
  name: chat
spec:
  model: llama
  tarffic: []
  traffic:
  - version: v1
    weight: 90
  - version: v2
    weight: "ten"
"""
    (manifest,) = api.load_manifests(text, "chat.yaml")
    causes = _causes(manifest.obj, manifest=manifest)
    assert causes["spec.traffic[1].weight"].location == "chat.yaml:12:5"
    assert causes["spec.tarffic"].location == "chat.yaml:7:3"


def test_location_of_a_missing_field_is_the_mapping_that_lacks_it() -> None:
    text = """\
---
apiVersion: modelplane.dev/v1alpha1
kind: Model
metadata:
  name: m
spec:
  versions:
  - name: v1
    source: m.gguf
    format: gguf
"""
    (manifest,) = api.load_manifests(text, "m.yaml")
    cause = _causes(manifest.obj, manifest=manifest)["spec.versions[0].digest"]
    assert cause.location == "m.yaml:8:5"  # the version entry that lacks a digest
    assert "(m.yaml:8:5)" in str(errors.Invalid("x", causes=[cause]))


def test_cross_field_problem_is_located_at_its_field() -> None:
    text = """\
apiVersion: modelplane.dev/v1alpha1
kind: Endpoint
metadata: {name: chat}
spec:
  model: llama
  replicas:
    min: 0
"""
    (manifest,) = api.load_manifests(text, "e.yaml")
    cause = _causes(manifest.obj, manifest=manifest)["spec.replicas.scaleToZero"]
    assert cause.location == "e.yaml:6:3"  # scaleToZero is absent: its mapping, `replicas`


def test_unknown_kind_in_a_file_is_located_at_the_kind_line() -> None:
    text = "apiVersion: modelplane.dev/v1alpha1\nkind: Endpiont\nmetadata: {name: x}\n"
    (manifest,) = api.load_manifests(text, "x.yaml")
    assert _causes(manifest.obj, manifest=manifest)["kind"].location == "x.yaml:2:1"


def _agent_with_tool(tool: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "a", "namespace": "default"},
        "spec": {"entrypoint": "agent:handle", "tools": [{"name": "t", **tool}]},
    }


@pytest.mark.parametrize(
    ("tool", "field", "words"),
    [
        (
            {"transport": "wasm", "module": "../echo.wasm", "digest": "sha256:" + "0" * 64},
            "module",
            "relative path inside the Agent's bundle",
        ),
        (
            {"transport": "process", "command": "/usr/bin/curl"},
            "command",
            "relative path inside the Agent's bundle",
        ),
        (
            {
                "transport": "wasm",
                "module": "tools/echo.wasm",
                "digest": "sha256:" + "0" * 64,
                "url": "http://localhost:8000/mcp",
            },
            "url",
            "url is not for wasm tools; a wasm tool has a module",
        ),
        (
            {"transport": "process", "command": "tools/fetch", "module": "tools/echo.wasm"},
            "module",
            "module is not for process tools; a process tool has a command",
        ),
    ],
)
def test_a_bundle_tool_with_a_path_outside_its_bundle_or_another_transports_field_is_refused(
    tool: dict[str, Any], field: str, words: str
) -> None:
    # given an Agent whose wasm or process tool is wrong in one field, then that field is named
    causes = _causes(_agent_with_tool(tool))
    assert words in causes[f"spec.tools[0].{field}"].message
