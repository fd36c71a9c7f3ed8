"""HTTPRoute and InferencePool: accepted as the Gateway API defines them; each broken rule is
reported at its field path with the fix, as the Gateway API's own CRD validation would refuse it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from modelplane import api
from modelplane.api import errors

from . import _objects

Mutation = Callable[[dict[str, Any]], None]


def _rule(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda o: o["spec"]["rules"][i]


def _header(o: dict[str, Any]) -> dict[str, Any]:
    header: dict[str, Any] = o["spec"]["rules"][0]["matches"][0]["headers"][0]
    return header


BAD: list[tuple[str, Mutation, str, str]] = [
    # kind, mutation, field path, words the message must contain
    (
        "HTTPRoute",
        lambda o: _header(o).update(type="RegularExpression", value="proj_(["),
        "spec.rules[0].matches[0].headers[0].value",
        "invalid regular expression",
    ),
    (
        "HTTPRoute",
        lambda o: _header(o).update(name="OpenAI Project"),
        "spec.rules[0].matches[0].headers[0].name",
        "not an HTTP header name",
    ),
    (
        "HTTPRoute",
        lambda o: _header(o).update(type="Prefix"),
        "spec.rules[0].matches[0].headers[0].type",
        "'Exact' or 'RegularExpression'",
    ),
    (
        "HTTPRoute",
        lambda o: _rule(0)(o)["matches"][0].update(path={"type": "PathPrefix", "value": "v1"}),
        "spec.rules[0].matches[0].path.value",
        "must start with '/'",
    ),
    (
        "HTTPRoute",
        lambda o: _rule(1)(o)["backendRefs"][1].update(weight=-5),
        "spec.rules[1].backendRefs[1].weight",
        "at least 0",
    ),
    (
        "HTTPRoute",
        lambda o: _rule(1)(o)["backendRefs"][0].pop("port"),
        "spec.rules[1].backendRefs[0].port",
        "must set port",
    ),
    (
        "HTTPRoute",
        lambda o: o["spec"].update(hostnames=["LLM.example.com:443"]),
        "spec.hostnames[0]",
        "not a hostname",
    ),
    (
        "HTTPRoute",
        lambda o: _rule(0)(o)["matches"][0].update(method="FETCH"),
        "spec.rules[0].matches[0].method",
        "'POST'",
    ),
    (
        "InferencePool",
        lambda o: o["spec"].update(targetPorts=[]),
        "spec.targetPorts",
        "at least 1",
    ),
    (
        "InferencePool",
        lambda o: o["spec"]["selector"].update(matchLabels={}),
        "spec.selector.matchLabels",
        "at least 1",
    ),
    (
        "InferencePool",
        lambda o: o["spec"]["targetPorts"][0].update(number=70000),
        "spec.targetPorts[0].number",
        "65535",
    ),
]


@pytest.mark.parametrize(
    ("kind", "mutate", "field", "words"), BAD, ids=[f"{b[0]}-{b[2]}" for b in BAD]
)
def test_broken_route_or_pool_is_refused_at_its_field(
    kind: str, mutate: Mutation, field: str, words: str
) -> None:
    obj = _objects.ALL[kind]()
    mutate(obj)
    with pytest.raises(errors.Invalid) as caught:
        api.validate(obj)
    fields = {c.field: c.message for c in caught.value.causes}
    assert field in fields, f"causes: {fields}"
    assert words in fields[field]


def test_route_and_pool_keep_fields_we_do_not_model() -> None:
    route = _objects.http_route()
    route["spec"]["rules"][1]["sessionPersistence"] = {"type": "Cookie"}
    pool = _objects.inference_pool()
    pool["spec"]["appProtocol"] = "http"
    assert api.validate(route)["spec"]["rules"][1]["sessionPersistence"] == {"type": "Cookie"}
    assert api.validate(pool)["spec"]["appProtocol"] == "http"


def test_kinds_are_found_by_plural_and_by_kubectl_group_suffix() -> None:
    assert api.lookup("httproutes").api_version == "gateway.networking.k8s.io/v1"
    assert api.lookup("httproutes.gateway.networking.k8s.io").kind == "HTTPRoute"
    assert api.lookup("inferencepools.inference.networking.k8s.io").kind == "InferencePool"


def test_explain_describes_backend_ref_weight() -> None:
    text = api.explain("httproute.spec.rules.backendRefs.weight")
    assert "weight" in text and "relative" in text


def _endpoint_with_header_routes(routes: list[dict[str, Any]]) -> dict[str, Any]:
    obj = _objects.endpoint()
    obj["spec"].setdefault("routing", {})["headerRoutes"] = routes
    return obj


def test_endpoint_header_routes_are_accepted_with_the_gateway_api_header_match() -> None:
    routes = [
        {"headers": [{"name": "OpenAI-Project", "value": "proj_canary"}], "version": "v2"},
        {
            "headers": [{"type": "RegularExpression", "name": "X-Tenant", "value": "acme|globex"}],
            "version": "v2",
        },
    ]
    out = api.validate(_endpoint_with_header_routes(routes))
    assert out["spec"]["routing"]["headerRoutes"][1]["headers"][0]["name"] == "X-Tenant"


@pytest.mark.parametrize(
    ("route", "field", "words"),
    [
        (
            {
                "headers": [{"type": "RegularExpression", "name": "X-Tenant", "value": "(["}],
                "version": "v2",
            },
            "spec.routing.headerRoutes[0].headers[0].value",
            "invalid regular expression",
        ),
        ({"headers": [], "version": "v2"}, "spec.routing.headerRoutes[0].headers", "at least 1"),
        (
            {"header": [{"name": "X-Tenant", "value": "a"}], "version": "v2"},
            "spec.routing.headerRoutes[0].header",
            "",
        ),
        (
            {"headers": [{"name": "X-Tenant", "value": "a"}], "version": "V2!"},
            "spec.routing.headerRoutes[0].version",
            "RFC 1123",
        ),
    ],
)
def test_a_bad_endpoint_header_route_is_refused_at_its_field(
    route: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(errors.Invalid) as caught:
        api.validate(_endpoint_with_header_routes([route]))
    fields = {c.field: c.message for c in caught.value.causes}
    assert field in fields, f"causes: {fields}"
    assert words in fields[field]
