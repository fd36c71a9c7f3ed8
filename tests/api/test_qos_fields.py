"""``Endpoint.spec.qos`` (request classes, tenants' weights, the flow-control queue) and the
Inference Extension's ``InferenceObjective``: accepted, defaulted, refused with their paths."""

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


def _qos_endpoint(**qos: Any) -> dict[str, Any]:
    ep = _objects.endpoint()
    ep["spec"]["qos"] = {
        "classes": [{"name": "interactive", "priority": 10}, {"name": "batch", "priority": -5}],
        **qos,
    }
    return ep


def test_qos_is_accepted_in_camel_case_with_its_defaults() -> None:
    ep = _qos_endpoint(
        defaultClass="batch",
        tenants=[{"tenant": "team-a", "class": "interactive", "weight": 3}],
        queue={"maxSize": 8},
    )
    qos = api.validate(ep)["spec"]["qos"]
    assert qos["defaultClass"] == "batch"
    assert qos["tenants"] == [{"tenant": "team-a", "class": "interactive", "weight": 3.0}]
    assert qos["queue"] == {"maxSize": 8, "ttl": "30s"}
    assert qos["saturation"]["queueDepth"] == 4.0


def test_an_unknown_class_in_a_manifest_is_refused_at_its_path_naming_the_known() -> None:
    ep = _qos_endpoint(defaultClass="gold", tenants=[{"tenant": "team-a", "class": "silver"}])
    causes = _causes(ep)
    assert "known: interactive, batch" in causes["spec.qos.defaultClass"]
    assert "'silver'" in causes["spec.qos.tenants[0].class"]


def test_repeated_classes_and_tenants_and_bad_weights_are_refused() -> None:
    ep = _qos_endpoint(tenants=[{"tenant": "a"}, {"tenant": "a"}])
    ep["spec"]["qos"]["classes"].append({"name": "batch", "priority": 1})
    causes = _causes(ep)
    assert "appears twice" in causes["spec.qos.classes[2].name"]
    assert "appears twice" in causes["spec.qos.tenants[1].tenant"]
    ep = _qos_endpoint(tenants=[{"tenant": "a", "weight": 0}])
    ep["spec"]["qos"]["classes"][0]["priority"] = 5000
    causes = _causes(ep)
    assert "spec.qos.tenants[0].weight" in causes
    assert "spec.qos.classes[0].priority" in causes


def test_explain_describes_the_qos_fields() -> None:
    text = api.explain("endpoint.spec.qos.tenants")
    assert "weight" in text and "class" in text


def _objective(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
        "kind": "InferenceObjective",
        "metadata": {"name": "critical", "namespace": "default"},
        "spec": {"priority": 20, "poolRef": {"name": "chat"}, **spec},
    }


def test_an_inference_objective_is_accepted_unchanged() -> None:
    obj = _objective()
    obj["spec"]["poolRef"]["group"] = "inference.networking.k8s.io"
    obj["spec"]["someFutureField"] = True  # a field of a later release is kept, as DRA's are
    out = api.validate(obj)
    assert out["apiVersion"] == "inference.networking.x-k8s.io/v1alpha2"
    assert out["spec"]["poolRef"] == {"group": "inference.networking.k8s.io", "name": "chat"}
    assert out["spec"]["someFutureField"] is True
    assert api.lookup("inferenceobjectives").kind == "InferenceObjective"


def test_an_inference_objective_without_pool_or_with_a_bad_priority_is_refused() -> None:
    obj = _objective(priority="high")
    del obj["spec"]["poolRef"]
    causes = _causes(obj)
    assert "spec.priority" in causes
    assert "spec.poolRef" in causes


def test_kv_cache_reserves_at_or_above_the_saturation_bound_are_refused() -> None:
    ep = _qos_endpoint(saturation={"kvCacheUsage": 0.8})
    ep["spec"]["qos"]["classes"][0]["kvCacheReserve"] = 0.5
    ep["spec"]["qos"]["classes"][1]["kvCacheReserve"] = 0.3
    causes = _causes(ep)
    assert "reserve 0.8 of the KV cache" in causes["spec.qos.classes"]
    ep["spec"]["qos"]["classes"][1]["kvCacheReserve"] = 0.2
    assert api.validate(ep)["spec"]["qos"]["classes"][0]["kvCacheReserve"] == 0.5
