"""The gateway's spec fields: fallbacks, routing.sticky, limits.usdPerMillionTokens,
upstreamModel and an Ensemble's merge; accepted, defaulted, and refused with their paths."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane import api
from modelplane.api import errors

from . import _objects


def _causes(obj: Any) -> dict[str, str]:
    with pytest.raises(errors.Invalid) as caught:
        api.validate(obj)
    return {c.field: c.message for c in caught.value.causes}


def test_the_fields_are_optional_so_existing_manifests_stay_valid() -> None:
    out = api.validate(_objects.endpoint())
    assert out["spec"]["fallbacks"] == []
    assert out["spec"]["routing"].get("sticky") is None  # unset: not sticky
    assert out["spec"]["limits"].get("usdPerMillionTokens") is None


def test_the_fields_are_accepted_in_camel_case() -> None:
    ep = _objects.endpoint()
    ep["spec"]["fallbacks"] = ["small", "shared/backup"]
    ep["spec"]["routing"] = {"policy": "round-robin", "sticky": True}
    ep["spec"]["limits"]["usdPerMillionTokens"] = 2.5
    out = api.validate(ep)["spec"]
    assert out["fallbacks"] == ["small", "shared/backup"]
    assert out["routing"]["sticky"] is True
    assert out["limits"]["usdPerMillionTokens"] == 2.5


def test_a_fallback_naming_the_endpoint_itself_is_refused() -> None:
    ep = _objects.endpoint()
    ep["spec"]["fallbacks"] = ["small", "chat", "default/chat"]
    causes = _causes(ep)
    assert "is this endpoint itself" in causes["spec.fallbacks[1]"]
    assert "is this endpoint itself" in causes["spec.fallbacks[2]"]


def test_malformed_and_repeated_fallbacks_are_refused_at_their_index() -> None:
    ep = _objects.endpoint()
    ep["spec"]["fallbacks"] = ["Not A Name", "a/b/c", "small", "small"]
    causes = _causes(ep)
    assert "namespace/name" in causes["spec.fallbacks[0]"]
    assert "namespace/name" in causes["spec.fallbacks[1]"]
    assert "appears twice" in causes["spec.fallbacks[3]"]


def test_a_negative_price_is_refused() -> None:
    ep = _objects.endpoint()
    ep["spec"]["limits"]["usdPerMillionTokens"] = -1
    assert "spec.limits.usdPerMillionTokens" in _causes(ep)


def test_upstream_model_is_accepted_on_an_upstream_version_only() -> None:
    model = _objects.model()
    model["spec"]["versions"].append(
        {
            "name": "hosted",
            "source": "https://api.example.com/v1",
            "format": "upstream",
            "upstreamModel": "gpt-4o-mini",
        }
    )
    assert api.validate(model)["spec"]["versions"][2]["upstreamModel"] == "gpt-4o-mini"
    model["spec"]["versions"][0]["upstreamModel"] = "x"
    assert "only used by format upstream" in _causes(model)["spec.versions[0].upstreamModel"]


def test_ensemble_merge_is_one_of_the_rules_the_gateway_implements() -> None:
    graph = _objects.graph()
    graph["spec"]["nodes"]["both"] = {
        "type": "Ensemble",
        "merge": "longest",
        "steps": [{"endpoint": "small"}, {"endpoint": "large"}],
    }
    assert api.validate(graph)["spec"]["nodes"]["both"]["merge"] == "longest"
    graph["spec"]["nodes"]["both"]["merge"] = "average"
    assert "must be one of" in _causes(graph)["spec.nodes[both].merge"]


def test_merge_on_a_node_that_is_not_an_ensemble_is_refused() -> None:
    graph = _objects.graph()
    graph["spec"]["nodes"]["root"]["merge"] = "first"
    causes = _causes(graph)
    assert "only used by Ensemble nodes" in causes["spec.nodes[root].merge"]
