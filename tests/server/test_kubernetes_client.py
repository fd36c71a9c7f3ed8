"""The official ``kubernetes`` Python client against the API, unchanged: create, get, list,
merge patch, server-side apply, watch and delete of our objects (real HTTP over loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import RunningServer

kubernetes = pytest.importorskip("kubernetes", reason="the kubernetes client is in the dev extra")
from kubernetes import client, dynamic, watch  # noqa: E402

GROUP, VERSION, PLURAL, NS = "modelplane.dev", "v1alpha1", "endpoints", "team-a"


def endpoint(name: str, max_replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Endpoint",
        "metadata": {"name": name},
        "spec": {"model": "smollm2", "replicas": {"min": 1, "max": max_replicas}},
    }


@pytest.fixture
def api_client(server: RunningServer) -> Iterator[client.ApiClient]:
    configuration = client.Configuration(host=server.url)
    with client.ApiClient(configuration) as api:
        yield api


def test_custom_objects_api_creates_gets_lists_patches_and_deletes(
    api_client: client.ApiClient,
) -> None:
    api = client.CustomObjectsApi(api_client)

    created = api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, endpoint("web"))
    fetched = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "web")
    listed = api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    patched = api.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "web", {"spec": {"replicas": {"max": 3}}}
    )
    api.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "web")

    assert created["metadata"]["uid"] == fetched["metadata"]["uid"]
    assert [o["metadata"]["name"] for o in listed["items"]] == ["web"]
    assert patched["spec"]["replicas"]["max"] == 3
    with pytest.raises(client.ApiException) as missing:
        api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "web")
    assert missing.value.status == 404


def test_dynamic_client_applies_server_side_and_records_the_manager(
    api_client: client.ApiClient,
) -> None:
    endpoints = dynamic.DynamicClient(api_client).resources.get(
        api_version=f"{GROUP}/{VERSION}", kind="Endpoint"
    )

    first = endpoints.server_side_apply(
        body=endpoint("api"), name="api", namespace=NS, field_manager="deployer"
    )
    again = endpoints.server_side_apply(
        body=endpoint("api", max_replicas=2), name="api", namespace=NS, field_manager="deployer"
    )

    assert first.metadata.managedFields[0].manager == "deployer"
    assert first.metadata.managedFields[0].operation == "Apply"
    assert again.spec.replicas.max == 2
    with pytest.raises(client.ApiException) as conflict:
        endpoints.server_side_apply(
            body=endpoint("api", max_replicas=5), name="api", namespace=NS, field_manager="other"
        )
    assert conflict.value.status == 409
    assert "FieldManagerConflict" in str(conflict.value.body)


def test_watch_streams_the_objects_as_they_come(api_client: client.ApiClient) -> None:
    api = client.CustomObjectsApi(api_client)
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, endpoint("web"))

    events = watch.Watch().stream(
        api.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, timeout_seconds=5
    )
    first = next(events)

    assert first["type"] == "ADDED"
    assert first["object"]["metadata"]["name"] == "web"
