"""Discovery (``/apis``...) and the OpenAPI 3.1 document."""

from __future__ import annotations

import re
from typing import Any

from tests.server._objects import DRA, GROUP, assert_status
from tests.server.conftest import RunningServer

from modelplane.api import kinds

_METHODS = ("get", "put", "post", "patch", "delete")
GATEWAY = "gateway.networking.k8s.io/v1"
INFERENCE = "inference.networking.k8s.io/v1"
OBJECTIVES = "inference.networking.x-k8s.io/v1alpha2"


def test_apis_lists_every_group(server: RunningServer) -> None:
    body = server.http.get("/apis").json()

    assert body["kind"] == "APIGroupList"
    versions = {g["name"]: [v["groupVersion"] for v in g["versions"]] for g in body["groups"]}
    assert versions == {
        "modelplane.dev": [GROUP],
        "resource.k8s.io": [DRA],
        "gateway.networking.k8s.io": [GATEWAY],
        "inference.networking.k8s.io": [INFERENCE],
        "inference.networking.x-k8s.io": [OBJECTIVES],
    }


def test_a_group_lists_its_versions(server: RunningServer) -> None:
    body = server.http.get("/apis/resource.k8s.io").json()

    assert body["kind"] == "APIGroup"
    assert body["preferredVersion"]["groupVersion"] == DRA


def test_a_group_version_lists_every_kind_with_plural_scope_verbs_and_short_names(
    server: RunningServer,
) -> None:
    served = {}
    for group_version in (GROUP, DRA, GATEWAY, INFERENCE, OBJECTIVES):
        body = server.http.get(f"/apis/{group_version}").json()
        assert body["kind"] == "APIResourceList"
        assert body["groupVersion"] == group_version
        served.update({r["name"]: r for r in body["resources"]})

    for info in kinds():
        resource = served[info.plural]
        assert resource["kind"] == info.kind
        assert resource["singularName"] == info.singular
        assert resource["namespaced"] == info.namespaced
        assert resource["shortNames"] == list(info.short_names)
        assert set(resource["verbs"]) == {
            "create",
            "delete",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        }
        assert set(served[f"{info.plural}/status"]["verbs"]) == {"get", "patch", "update"}


def test_an_unknown_group_version_is_404(server: RunningServer) -> None:
    assert_status(server.http.get("/apis/modelplane.dev/v2"), 404, "NotFound")


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_openapi_is_a_consistent_3_1_document_covering_every_route(
    server: RunningServer,
) -> None:
    response = server.http.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"] and document["info"]["version"]
    paths = document["paths"]
    for info in kinds():
        base = f"/apis/{info.group}/{info.version}"
        collection = (
            f"{base}/namespaces/{{namespace}}/{info.plural}"
            if info.namespaced
            else f"{base}/{info.plural}"
        )
        assert {"get", "post"} <= set(paths[collection])
        assert {"get", "put", "patch", "delete"} <= set(paths[f"{collection}/{{name}}"])
        assert {"get", "put", "patch"} <= set(paths[f"{collection}/{{name}}/status"])
        if info.namespaced:
            assert "get" in paths[f"{base}/{info.plural}"]
        schema = document["components"]["schemas"][info.kind]
        assert schema["properties"]["kind"]["enum"] == [info.kind]
        assert f"{info.kind}List" in document["components"]["schemas"]
    # every reference resolves, every path template variable is declared, ids are unique
    for ref in _refs(document):
        assert _resolve(document, ref) is not None
    operation_ids = []
    for template, item in paths.items():
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        assert set(re.findall(r"{(\w+)}", template)) == declared, template
        for method in _METHODS:
            if method in item:
                operation_ids.append(item[method]["operationId"])
                assert item[method]["responses"]
    assert len(operation_ids) == len(set(operation_ids))


def test_openapi_declares_bearer_auth_when_tokens_are_required(start_server: Any) -> None:
    server = start_server(tokens={"t": "alice"})

    document = server.http.get("/openapi.json", headers={"Authorization": "Bearer t"}).json()

    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []
