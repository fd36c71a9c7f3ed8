"""Server-side apply, managedFields, Table responses and the Kubernetes OpenAPI documents, over
HTTP against a real server (both store backends)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from modelplane.api import ADMIN_GROUP, AUTHENTICATED_GROUP, Principal

from .conftest import RunningServer

BASE = "/apis/modelplane.dev/v1alpha1/namespaces/team-a/endpoints"
APPLY = {"Content-Type": "application/apply-patch+yaml"}
PREVIOUS = "Modelplane-Previous-Resource-Version"


def endpoint(max_replicas: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Endpoint",
        "metadata": {"name": "web"},
        "spec": {"model": "smollm2", "replicas": {"min": 1, "max": max_replicas}, **spec},
    }


def apply(server: RunningServer, body: dict[str, Any], manager: str, **query: str) -> Any:
    return server.http.patch(
        f"{BASE}/web",
        params={"fieldManager": manager, **query},
        content=yaml.safe_dump(body).encode(),
        headers=APPLY,
    )


def test_apply_creates_the_object_and_records_the_manager(server: RunningServer) -> None:
    response = apply(server, endpoint(), "deployer")

    assert response.status_code == 201, response.text
    (entry,) = response.json()["metadata"]["managedFields"]
    assert entry["manager"] == "deployer" and entry["operation"] == "Apply"
    assert entry["fieldsV1"]["f:spec"]["f:replicas"] == {"f:min": {}, "f:max": {}}


def test_applying_the_same_configuration_again_writes_nothing(server: RunningServer) -> None:
    first = apply(server, endpoint(), "deployer").json()

    again = apply(server, endpoint(), "deployer")

    assert again.status_code == 200
    assert again.json()["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_each_write_names_the_version_it_was_made_over(server: RunningServer) -> None:
    # given nothing, then an apply that creates, one that changes nothing, and one that changes
    created = apply(server, endpoint(), "deployer")
    same = apply(server, endpoint(), "deployer")
    changed = apply(server, endpoint(max_replicas=3), "deployer")

    # then each answer says the resourceVersion before it: a client needs no read to tell
    version = created.json()["metadata"]["resourceVersion"]
    assert created.headers[PREVIOUS] == ""
    assert same.headers[PREVIOUS] == version == same.json()["metadata"]["resourceVersion"]
    assert changed.headers[PREVIOUS] == version != changed.json()["metadata"]["resourceVersion"]


def test_a_dry_run_apply_answers_the_result_and_stores_nothing(server: RunningServer) -> None:
    # given no object, when it is applied as a dry run, then it would be created, and is not
    dry_create = apply(server, endpoint(), "deployer", dryRun="All")
    assert dry_create.status_code == 201, dry_create.text
    assert dry_create.json()["spec"]["replicas"]["max"] == 1
    assert server.http.get(f"{BASE}/web").status_code == 404

    # given the object, when a change is applied as a dry run, then nothing changes
    stored = apply(server, endpoint(), "deployer").json()
    dry_change = apply(server, endpoint(max_replicas=5), "deployer", dryRun="All")
    assert dry_change.status_code == 200
    assert dry_change.json()["spec"]["replicas"]["max"] == 5
    assert server.http.get(f"{BASE}/web").json() == stored

    # and a conflict or an invalid field is reported as the write would report it
    conflict = apply(server, endpoint(max_replicas=5), "autoscaler", dryRun="All")
    assert conflict.status_code == 409
    invalid = apply(server, endpoint(max_replicas=-1), "deployer", dryRun="All")
    assert invalid.status_code == 422
    assert invalid.json()["details"]["causes"][0]["field"] == "spec.replicas.max"


def test_a_dry_run_create_and_delete_change_nothing(server: RunningServer) -> None:
    # a create, a merge patch and a delete as dry runs: each answers, none writes
    body = endpoint()
    body["metadata"]["namespace"] = "team-a"
    created = server.http.post(BASE, params={"dryRun": "All"}, json=body)
    assert created.status_code == 201, created.text
    assert server.http.get(f"{BASE}/web").status_code == 404

    stored = server.http.post(BASE, json=body).json()
    patched = server.http.patch(
        f"{BASE}/web",
        params={"dryRun": "All"},
        json={"spec": {"replicas": {"max": 7}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    deleted = server.http.delete(f"{BASE}/web", params={"dryRun": "All"})
    assert patched.json()["spec"]["replicas"]["max"] == 7
    assert deleted.status_code == 200
    assert server.http.get(f"{BASE}/web").json() == stored


def test_a_dry_run_value_other_than_all_is_refused_not_ignored(server: RunningServer) -> None:
    response = apply(server, endpoint(), "deployer", dryRun="Everything")

    assert response.status_code == 400
    assert "dryRun=All" in response.json()["message"]
    assert server.http.get(f"{BASE}/web").status_code == 404


def test_a_json_body_is_read_as_json_where_yaml_would_read_it_otherwise(
    server: RunningServer,
) -> None:
    # given a configuration sent as ASCII-escaped JSON, as the Kubernetes Python client sends it:
    # a character outside the BMP is a surrogate pair, which YAML 1.1 reads as two broken halves
    body = endpoint()
    body["metadata"]["annotations"] = {"note": "rocket \U0001f680"}
    content = json.dumps(body).encode()
    assert b"\\ud83d\\ude80" in content

    # when it is applied
    response = server.http.patch(
        f"{BASE}/web", params={"fieldManager": "deployer"}, content=content, headers=APPLY
    )

    # then the character arrived whole
    assert response.status_code == 201, response.text
    assert response.json()["metadata"]["annotations"]["note"] == "rocket \U0001f680"


def test_apply_without_a_field_manager_is_refused(server: RunningServer) -> None:
    response = server.http.patch(f"{BASE}/web", content=b"{}", headers=APPLY)

    assert response.status_code == 400
    assert "fieldManager" in response.json()["message"]


def test_a_field_no_longer_applied_is_removed(server: RunningServer) -> None:
    apply(server, endpoint(fallbacks=["backup"]), "deployer")

    response = apply(server, endpoint(), "deployer")

    assert response.json()["spec"].get("fallbacks") in (None, [])


def test_another_managers_field_with_another_value_is_a_conflict_naming_it(
    server: RunningServer,
) -> None:
    apply(server, endpoint(), "deployer")

    refused = apply(server, endpoint(max_replicas=4), "autoscaler")
    forced = apply(server, endpoint(max_replicas=4), "autoscaler", force="true")

    assert refused.status_code == 409
    (cause,) = refused.json()["details"]["causes"]
    assert cause == {
        "reason": "FieldManagerConflict",
        "message": 'conflict with "deployer"',
        "field": ".spec.replicas.max",
    }
    assert forced.status_code == 200
    assert forced.json()["spec"]["replicas"]["max"] == 4
    owners = {e["manager"]: e["fieldsV1"] for e in forced.json()["metadata"]["managedFields"]}
    assert "f:max" not in owners["deployer"]["f:spec"]["f:replicas"]


def test_a_merge_patch_makes_its_writer_an_update_manager(server: RunningServer) -> None:
    apply(server, endpoint(), "deployer")

    patched = server.http.patch(
        f"{BASE}/web",
        params={"fieldManager": "kubectl-edit"},
        json={"spec": {"replicas": {"max": 2}}},
        headers={"Content-Type": "application/merge-patch+json"},
    ).json()

    entries = {(e["manager"], e["operation"]) for e in patched["metadata"]["managedFields"]}
    assert entries == {("deployer", "Apply"), ("kubectl-edit", "Update")}
    assert apply(server, endpoint(), "deployer").status_code == 409


def test_apply_of_an_admin_only_kind_needs_an_administrator(start_server: Any) -> None:
    server = start_server(
        tokens={
            "user": Principal("alice", frozenset({AUTHENTICATED_GROUP})),
            "admin": Principal("ops", frozenset({ADMIN_GROUP, AUTHENTICATED_GROUP})),
        }
    )
    body = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "ToolServer",
        "metadata": {"name": "search"},
        "spec": {"command": "search-mcp"},
    }
    url = "/apis/modelplane.dev/v1alpha1/toolservers/search"

    def as_(token: str) -> Any:
        return server.http.patch(
            url,
            params={"fieldManager": "t"},
            content=yaml.safe_dump(body).encode(),
            headers={**APPLY, "Authorization": f"Bearer {token}"},
        )

    assert as_("user").status_code == 403
    assert as_("admin").status_code == 201


def test_a_table_has_the_columns_of_modelplane_get(server: RunningServer) -> None:
    apply(server, endpoint(), "deployer")

    table = server.http.get(
        BASE, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    ).json()

    assert table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[0] == "Name" and names[-1] == "Age" and "MODEL" in names
    (row,) = table["rows"]
    assert row["cells"][0] == "web"
    assert row["object"]["kind"] == "PartialObjectMetadata"


def test_openapi_v3_lists_group_versions_whose_documents_map_kinds(server: RunningServer) -> None:
    root = server.http.get("/openapi/v3").json()
    url = root["paths"]["apis/modelplane.dev/v1alpha1"]["serverRelativeURL"]

    document = server.http.get(url).json()

    schema = document["components"]["schemas"]["dev.modelplane.v1alpha1.Endpoint"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "modelplane.dev", "version": "v1alpha1", "kind": "Endpoint"}
    ]
    patch = document["paths"][
        "/apis/modelplane.dev/v1alpha1/namespaces/{namespace}/endpoints/{name}"
    ]["patch"]
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert "application/apply-patch+yaml" in patch["requestBody"]["content"]


def test_openapi_v3_and_v2_write_exclusive_bounds_as_openapi_3_0_and_swagger_do(
    server: RunningServer,
) -> None:
    # kubectl's OpenAPI parser takes exclusiveMinimum/Maximum as booleans (OpenAPI 3.0, Swagger
    # 2.0); JSON Schema's numbers made it drop the v3 document and fail every apply
    root = server.http.get("/openapi/v3").json()
    v3 = server.http.get(root["paths"]["apis/modelplane.dev/v1alpha1"]["serverRelativeURL"])
    v2 = server.http.get("/openapi/v2", headers={"Accept": "application/json"})
    documents = (v3.json()["components"]["schemas"], v2.json()["definitions"])

    bounds = [_bounds(d["dev.modelplane.v1alpha1.Endpoint"]) for d in documents]

    for found in bounds:
        assert found, "the Endpoint's SLO availability has exclusive bounds"
        assert all(isinstance(flag, bool) for flag in found)
    availability = documents[0]["dev.modelplane.v1alpha1.Endpoint"]["properties"]["spec"][
        "properties"
    ]["slo"]["properties"]["availability"]
    assert (availability["minimum"], availability["exclusiveMinimum"]) == (0, True)
    assert (availability["maximum"], availability["exclusiveMaximum"]) == (1, True)


def _bounds(node: Any) -> list[Any]:
    """Every exclusiveMinimum/exclusiveMaximum value under ``node``."""
    if isinstance(node, list):
        return [b for item in node for b in _bounds(item)]
    if not isinstance(node, dict):
        return []
    found = [v for k, v in node.items() if k in ("exclusiveMinimum", "exclusiveMaximum")]
    return found + [b for v in node.values() for b in _bounds(v)]


def test_openapi_v2_is_json_and_refuses_protobuf_only_clients(server: RunningServer) -> None:
    protobuf = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"

    refused = server.http.get("/openapi/v2", headers={"Accept": protobuf})
    served = server.http.get("/openapi/v2", headers={"Accept": "application/json"})

    assert refused.status_code == 406
    assert served.json()["swagger"] == "2.0"
