"""Create, read, list, replace, merge-patch, delete and the status subresource, over HTTP."""

from __future__ import annotations

import json
from typing import Any

import orjson
import yaml
from tests.server._objects import (
    DRA,
    GROUP,
    assert_status,
    model,
    models_url,
    node,
    nodes_url,
)
from tests.server.conftest import RunningServer

MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def _create(
    server: RunningServer, obj: dict[str, Any], namespace: str = "default"
) -> dict[str, Any]:
    response = server.http.post(models_url(namespace), json=obj)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# -- create and get ---------------------------------------------------------------------------


def test_create_answers_201_with_the_stored_object_and_get_returns_it(
    server: RunningServer,
) -> None:
    response = server.http.post(models_url(), json=model("llama", labels={"team": "a"}))

    assert response.status_code == 201
    created = response.json()
    meta = created["metadata"]
    assert meta["namespace"] == "default"
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    fetched = server.http.get(models_url(name="llama"))
    assert fetched.status_code == 200
    assert fetched.json() == created


def test_create_takes_apiversion_kind_and_namespace_from_the_url(server: RunningServer) -> None:
    body = model("bare")
    del body["apiVersion"], body["kind"]

    created = _create(server, body, namespace="team-b")

    assert created["apiVersion"] == GROUP and created["kind"] == "Model"
    assert created["metadata"]["namespace"] == "team-b"


def test_create_accepts_a_yaml_body(server: RunningServer) -> None:
    text = yaml.safe_dump(model("from-yaml"))

    response = server.http.post(
        models_url(), content=text, headers={"Content-Type": "application/yaml"}
    )

    assert response.status_code == 201, response.text
    assert response.json()["metadata"]["name"] == "from-yaml"


def test_create_with_a_namespace_other_than_the_urls_is_a_bad_request(
    server: RunningServer,
) -> None:
    response = server.http.post(models_url("team-a"), json=model("m", namespace="team-b"))

    status = assert_status(response, 400, "BadRequest")
    assert "team-b" in status["message"] and "team-a" in status["message"]
    assert server.http.get(models_url("team-b", "m")).status_code == 404


def test_create_of_another_kind_at_this_url_is_a_bad_request(server: RunningServer) -> None:
    response = server.http.post(models_url(), json=node("n1"))

    status = assert_status(response, 400, "BadRequest")
    assert "Node" in status["message"] and "Model" in status["message"]


def test_create_of_an_existing_object_is_409_already_exists(server: RunningServer) -> None:
    _create(server, model("twice"))

    response = server.http.post(models_url(), json=model("twice"))

    assert_status(response, 409, "AlreadyExists")


def test_create_of_an_invalid_object_is_422_naming_each_field(server: RunningServer) -> None:
    bad = model("broken")
    bad["spec"]["versions"][0]["format"] = "zip"
    bad["spec"]["colour"] = "blue"

    response = server.http.post(models_url(), json=bad)

    status = assert_status(response, 422, "Invalid")
    fields = {c["field"] for c in status["details"]["causes"]}
    assert "spec.versions[0].format" in fields
    assert "spec.colour" in fields
    assert server.http.get(models_url(name="broken")).status_code == 404


def test_get_of_a_missing_object_is_404(server: RunningServer) -> None:
    status = assert_status(server.http.get(models_url(name="ghost")), 404, "NotFound")

    assert "ghost" in status["message"]


def test_an_invalid_name_in_the_url_is_a_bad_request(server: RunningServer) -> None:
    status = assert_status(server.http.get(models_url(name="Not_A_Name")), 400, "BadRequest")

    assert "Not_A_Name" in status["message"]


# -- list --------------------------------------------------------------------------------------


def test_list_returns_the_objects_of_a_namespace_or_of_all_namespaces(
    server: RunningServer,
) -> None:
    for namespace, name in (("a", "m1"), ("a", "m2"), ("b", "m3")):
        _create(server, model(name), namespace)

    in_a = server.http.get(models_url("a")).json()
    everywhere = server.http.get(models_url(None)).json()

    assert in_a["apiVersion"] == GROUP and in_a["kind"] == "ModelList"
    assert [o["metadata"]["name"] for o in in_a["items"]] == ["m1", "m2"]
    assert [o["metadata"]["name"] for o in everywhere["items"]] == ["m1", "m2", "m3"]
    assert int(everywhere["metadata"]["resourceVersion"]) >= 3


def test_list_passes_label_and_field_selectors_to_the_store(server: RunningServer) -> None:
    _create(server, model("gpu-a", labels={"tier": "gpu"}))
    _create(server, model("gpu-b", labels={"tier": "gpu"}))
    _create(server, model("cpu-a", labels={"tier": "cpu"}))

    by_label = server.http.get(models_url(), params={"labelSelector": "tier=gpu"}).json()
    by_both = server.http.get(
        models_url(),
        params={"labelSelector": "tier in (gpu)", "fieldSelector": "metadata.name!=gpu-a"},
    ).json()

    assert [o["metadata"]["name"] for o in by_label["items"]] == ["gpu-a", "gpu-b"]
    assert [o["metadata"]["name"] for o in by_both["items"]] == ["gpu-b"]


def test_list_pages_with_limit_and_continue(server: RunningServer) -> None:
    for i in range(5):
        _create(server, model(f"m{i}"))

    names: list[str] = []
    params: dict[str, str] = {"limit": "2"}
    pages = 0
    while True:
        page = server.http.get(models_url(), params=params).json()
        pages += 1
        names += [o["metadata"]["name"] for o in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        params = {"limit": "2", "continue": token}

    assert names == [f"m{i}" for i in range(5)]
    assert pages == 3


def test_a_malformed_selector_or_limit_is_a_bad_request(server: RunningServer) -> None:
    for params in (
        {"labelSelector": "tier in gpu"},
        {"fieldSelector": "spec.task=chat"},
        {"limit": "-1"},
        {"limit": "ten"},
        {"watch": "maybe"},
    ):
        assert_status(server.http.get(models_url(), params=params), 400, "BadRequest")


def test_a_list_of_thousands_of_objects_comes_back_whole(server: RunningServer) -> None:
    count = 2000
    for i in range(count):
        server.store.create(model(f"m{i:05d}", "bulk"))

    response = server.http.get(models_url("bulk"))

    assert response.status_code == 200
    items = orjson.loads(response.content)["items"]
    assert len(items) == count
    assert items[0]["metadata"]["name"] == "m00000"
    assert items[-1]["metadata"]["name"] == f"m{count - 1:05d}"


# -- replace -----------------------------------------------------------------------------------


def test_replace_with_the_current_version_succeeds_and_a_stale_one_is_a_conflict(
    server: RunningServer,
) -> None:
    created = _create(server, model("llama"))
    first = created["metadata"]["resourceVersion"]
    changed = model("llama", versions=("v1", "v2"))
    changed["metadata"]["resourceVersion"] = first

    replaced = server.http.put(models_url(name="llama"), json=changed)
    stale = server.http.put(models_url(name="llama"), json=changed)

    assert replaced.status_code == 200, replaced.text
    assert [v["name"] for v in replaced.json()["spec"]["versions"]] == ["v1", "v2"]
    assert replaced.json()["metadata"]["generation"] == 2
    status = assert_status(stale, 409, "Conflict")
    assert first in status["message"]
    assert replaced.json()["metadata"]["resourceVersion"] in status["message"]


def test_replace_cannot_rename_or_move_an_object(server: RunningServer) -> None:
    _create(server, model("llama"))

    renamed = server.http.put(models_url(name="llama"), json=model("alpaca"))
    moved = server.http.put(models_url(name="llama"), json=model("llama", "elsewhere"))

    assert_status(renamed, 400, "BadRequest")
    assert_status(moved, 400, "BadRequest")


def test_replace_of_a_missing_object_is_404(server: RunningServer) -> None:
    assert_status(server.http.put(models_url(name="ghost"), json=model("ghost")), 404, "NotFound")


def test_replace_of_the_object_ignores_status(server: RunningServer) -> None:
    _create(server, model("llama"))
    body = model("llama")
    body["status"] = {"observedGeneration": 7}

    replaced = server.http.put(models_url(name="llama"), json=body).json()

    assert (replaced.get("status") or {}).get("observedGeneration") != 7


# -- merge patch -------------------------------------------------------------------------------


def test_merge_patch_changes_what_it_names_and_keeps_the_rest(server: RunningServer) -> None:
    _create(server, model("llama", labels={"a": "1", "b": "2"}))
    patch = {"metadata": {"labels": {"a": None, "c": "3"}}}

    response = server.http.patch(
        models_url(name="llama"), content=orjson.dumps(patch), headers=MERGE_PATCH
    )

    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert [v["name"] for v in patched["spec"]["versions"]] == ["v1"]
    assert server.http.get(models_url(name="llama")).json() == patched


def test_merge_patch_is_accepted_as_plain_json_too(server: RunningServer) -> None:
    _create(server, model("llama"))

    response = server.http.patch(models_url(name="llama"), json={"spec": {"task": "completion"}})

    assert response.status_code == 200, response.text
    assert response.json()["spec"]["task"] == "completion"


def test_merge_patch_result_is_validated_and_an_invalid_one_changes_nothing(
    server: RunningServer,
) -> None:
    created = _create(server, model("llama"))

    response = server.http.patch(
        models_url(name="llama"), content=b'{"spec": {"task": "dance"}}', headers=MERGE_PATCH
    )

    status = assert_status(response, 422, "Invalid")
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.task"]
    assert server.http.get(models_url(name="llama")).json() == created


def test_merge_patch_naming_a_stale_version_is_a_conflict(server: RunningServer) -> None:
    created = _create(server, model("llama"))
    stale = created["metadata"]["resourceVersion"]
    server.http.patch(models_url(name="llama"), json={"metadata": {"labels": {"x": "1"}}})

    response = server.http.patch(
        models_url(name="llama"),
        json={"metadata": {"resourceVersion": stale, "labels": {"x": "2"}}},
    )

    assert_status(response, 409, "Conflict")


def test_merge_patch_cannot_rename_the_object(server: RunningServer) -> None:
    _create(server, model("llama"))

    response = server.http.patch(models_url(name="llama"), json={"metadata": {"name": "other"}})

    assert_status(response, 400, "BadRequest")


def test_strategic_merge_patch_is_an_unsupported_media_type(server: RunningServer) -> None:
    # as kube-apiserver answers for custom resources; kubectl then sends a merge patch
    _create(server, model("llama"))

    response = server.http.patch(
        models_url(name="llama"),
        content=b"{}",
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )

    status = assert_status(response, 415, "UnsupportedMediaType")
    assert "application/merge-patch+json" in status["message"]


def test_a_json_patch_changes_the_fields_it_names(server: RunningServer) -> None:
    _create(server, model("llama"))
    operations = [
        {"op": "test", "path": "/spec/task", "value": "chat"},
        {"op": "add", "path": "/metadata/labels", "value": {"team": "a"}},
    ]

    response = server.http.patch(
        models_url(name="llama"),
        content=json.dumps(operations).encode(),
        headers={"Content-Type": "application/json-patch+json"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["labels"] == {"team": "a"}
    failed = server.http.patch(
        models_url(name="llama"),
        content=b'[{"op": "test", "path": "/spec/task", "value": "embedding"}]',
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert_status(failed, 409, "Conflict")


# -- status subresource ------------------------------------------------------------------------


def test_put_status_changes_only_the_status(server: RunningServer) -> None:
    created = _create(server, model("llama"))
    body = model("llama", versions=("v9",))
    body["status"] = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}

    response = server.http.put(models_url(name="llama", sub="status"), json=body)

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["status"]["conditions"][0]["type"] == "Ready"
    assert updated["spec"] == created["spec"]
    fetched = server.http.get(models_url(name="llama", sub="status")).json()
    assert fetched["status"]["observedGeneration"] == 1


def test_patch_status_changes_only_the_status(server: RunningServer) -> None:
    created = _create(server, model("llama"))
    patch = {"spec": {"task": "embedding"}, "status": {"observedGeneration": 1}}

    response = server.http.patch(
        models_url(name="llama", sub="status"), content=orjson.dumps(patch), headers=MERGE_PATCH
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"]["observedGeneration"] == 1
    assert response.json()["spec"] == created["spec"]


def test_an_invalid_status_is_refused_with_its_field(server: RunningServer) -> None:
    _create(server, model("llama"))

    response = server.http.patch(
        models_url(name="llama", sub="status"), json={"status": {"conditions": "all good"}}
    )

    status = assert_status(response, 422, "Invalid")
    assert any(c["field"].startswith("status.conditions") for c in status["details"]["causes"])


def test_put_status_with_a_stale_version_is_a_conflict(server: RunningServer) -> None:
    created = _create(server, model("llama"))
    server.http.patch(models_url(name="llama"), json={"metadata": {"labels": {"x": "1"}}})
    body = dict(created, status={"observedGeneration": 1})

    response = server.http.put(models_url(name="llama", sub="status"), json=body)

    assert_status(response, 409, "Conflict")


# -- delete ------------------------------------------------------------------------------------


def test_delete_answers_the_object_and_it_is_gone(server: RunningServer) -> None:
    created = _create(server, model("llama"))

    response = server.http.delete(models_url(name="llama"))

    assert response.status_code == 200
    assert response.json()["metadata"]["uid"] == created["metadata"]["uid"]
    assert_status(server.http.get(models_url(name="llama")), 404, "NotFound")
    assert_status(server.http.delete(models_url(name="llama")), 404, "NotFound")


def test_delete_with_a_stale_version_precondition_is_a_conflict(server: RunningServer) -> None:
    created = _create(server, model("llama"))
    stale = created["metadata"]["resourceVersion"]
    server.http.patch(models_url(name="llama"), json={"metadata": {"labels": {"x": "1"}}})

    by_query = server.http.delete(models_url(name="llama"), params={"resourceVersion": stale})
    by_body = server.http.request(
        "DELETE",
        models_url(name="llama"),
        json={"kind": "DeleteOptions", "preconditions": {"resourceVersion": stale}},
    )

    assert_status(by_query, 409, "Conflict")
    assert_status(by_body, 409, "Conflict")
    assert server.http.get(models_url(name="llama")).status_code == 200


def test_delete_of_an_object_with_finalizers_only_marks_it(server: RunningServer) -> None:
    _create(server, model("llama", finalizers=["modelplane.dev/cleanup"]))

    response = server.http.delete(models_url(name="llama"))

    assert response.status_code == 200
    fetched = server.http.get(models_url(name="llama"))
    assert fetched.status_code == 200
    assert fetched.json()["metadata"]["deletionTimestamp"]


# -- scopes and groups -------------------------------------------------------------------------


def test_cluster_scoped_kinds_live_outside_namespaces(server: RunningServer) -> None:
    created = server.http.post(nodes_url(), json=node("gpu-1", rack="r1"))
    assert created.status_code == 201, created.text

    fetched = server.http.get(nodes_url("gpu-1"))
    listed = server.http.get(nodes_url(), params={"labelSelector": "rack=r1"}).json()
    status = server.http.patch(nodes_url("gpu-1", "status"), json={"status": {"conditions": []}})
    in_namespace = server.http.get(f"/apis/{GROUP}/namespaces/default/nodes/gpu-1")
    deleted = server.http.delete(nodes_url("gpu-1"))

    assert fetched.status_code == 200
    assert "namespace" not in fetched.json()["metadata"]
    assert [o["metadata"]["name"] for o in listed["items"]] == ["gpu-1"]
    assert status.status_code == 200, status.text
    assert_status(in_namespace, 404, "NotFound")
    assert deleted.status_code == 200


def test_a_cluster_scoped_body_may_not_name_a_namespace(server: RunningServer) -> None:
    body = node("gpu-2")
    body["metadata"]["namespace"] = "default"

    assert_status(server.http.post(nodes_url(), json=body), 400, "BadRequest")


def test_a_namespaced_object_is_not_reachable_without_its_namespace(
    server: RunningServer,
) -> None:
    _create(server, model("llama"))

    status = assert_status(server.http.get(f"/apis/{GROUP}/models/llama"), 404, "NotFound")
    created_outside = server.http.post(f"/apis/{GROUP}/models", json=model("x"))

    assert "namespaces/{namespace}" in status["message"]
    assert_status(created_outside, 405, "MethodNotAllowed")


def test_dra_kinds_are_served_under_resource_k8s_io(server: RunningServer) -> None:
    device_class = {
        "apiVersion": DRA,
        "kind": "DeviceClass",
        "metadata": {"name": "gpu.example.com"},
        "spec": {"selectors": [{"cel": {"expression": "device.driver == 'gpu.example.com'"}}]},
    }

    created = server.http.post(f"/apis/{DRA}/deviceclasses", json=device_class)
    fetched = server.http.get(f"/apis/{DRA}/deviceclasses/gpu.example.com")
    wrong_group = server.http.get(f"/apis/{GROUP}/deviceclasses")

    assert created.status_code == 201, created.text
    assert fetched.json()["spec"] == device_class["spec"]
    status = assert_status(wrong_group, 404, "NotFound")
    assert "models" in status["message"]
