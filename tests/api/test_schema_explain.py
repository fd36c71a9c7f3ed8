"""JSON Schema export for every kind, and explain."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelplane import api
from modelplane.api import errors

from . import _objects


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize("kind", list(_objects.ALL))
def test_every_kind_has_a_self_contained_json_schema(kind: str) -> None:
    info = api.lookup(kind)
    schema = api.json_schema(kind)
    json.dumps(schema)  # plain JSON
    assert _refs(schema) == [] and "$defs" not in schema
    assert schema["properties"]["kind"]["enum"] == [kind]
    assert schema["properties"]["apiVersion"]["enum"][0] == info.api_version
    assert {"apiVersion", "kind", "metadata"} <= set(schema["required"])
    assert schema["x-kubernetes-group-version-kind"][0]["group"] == info.group


def test_json_schema_carries_constraints_descriptions_and_enums() -> None:
    schema = api.json_schema("endpoints")
    spec = schema["properties"]["spec"]
    weight = spec["properties"]["traffic"]["items"]["properties"]["weight"]
    assert (weight["minimum"], weight["maximum"]) == (0, 100)
    assert "Percent" in weight["description"]
    policy = spec["properties"]["routing"]["properties"]["policy"]
    assert "prefix-cache" in policy["enum"] and policy["default"] == "least-request"


def test_json_schema_of_dra_kinds_preserves_unknown_fields_and_quantities() -> None:
    schema = api.json_schema("ResourceSlice")
    assert schema["x-kubernetes-preserve-unknown-fields"] is True
    device = schema["properties"]["spec"]["properties"]["devices"]["anyOf"][0]["items"]
    memory = device["properties"]["capacity"]["anyOf"][0]["additionalProperties"]
    assert memory["properties"]["value"]["x-kubernetes-int-or-string"] is True


def test_json_schema_of_unknown_kind_is_not_found() -> None:
    with pytest.raises(errors.NotFound):
        api.json_schema("Deployment")


def test_explain_a_field_gives_kind_type_description_and_sub_fields() -> None:
    text = api.explain("endpoint.spec.traffic")
    assert "KIND:     Endpoint" in text
    assert "VERSION:  modelplane.dev/v1alpha1" in text
    assert "FIELD:    traffic <[]TrafficTarget>" in text
    assert "weights sum to 100" in text
    assert "  version\t<string> -required-" in text
    assert "  weight\t<integer> -required-" in text


def test_explain_a_kind_by_short_name_lists_its_top_level_fields() -> None:
    text = api.explain("ep")
    for field in ("apiVersion", "kind", "metadata", "spec", "status"):
        assert f"  {field}\t<" in text


def test_explain_shows_enums_and_defaults() -> None:
    text = api.explain("endpoint.spec.routing")
    assert "one of: round-robin, least-request" in text
    assert "default: least-request" in text
    assert "default: 5m" in api.explain("agent.spec")


def test_explain_says_where_unknown_fields_are_kept() -> None:
    assert "kept as they are" in api.explain("resourceslice.spec.devices")
    assert "kept as they are" in api.explain("endpoint.metadata")
    assert "kept as they are" not in api.explain("endpoint.spec.devices.requests")


def test_explain_a_wrong_field_names_the_valid_ones() -> None:
    with pytest.raises(errors.NotFound) as caught:
        api.explain("endpoint.spec.trafic")
    message = caught.value.message
    assert "did you mean 'traffic'?" in message
    assert "model, traffic, rollout, replicas" in message


def test_explain_below_a_scalar_field_says_it_has_no_fields() -> None:
    with pytest.raises(errors.NotFound, match="is a string and has no field"):
        api.explain("model.spec.task.name")


def test_explain_of_an_unknown_kind_is_not_found() -> None:
    with pytest.raises(errors.NotFound, match="known kinds"):
        api.explain("deployment.spec")
