"""HTTPRoute backends and rule choice, without a server: what each backendRef resolves to, why
one does not (the Gateway API's ResolvedRefs reasons), and which rule a request gets."""

from __future__ import annotations

import random
from typing import Any

import pytest

from modelplane.gateway._errors import GatewayError
from modelplane.gateway._httproutes import Ref, _entry, choose, pool_route, resolve_ref
from modelplane.gateway._matches import RequestFacts
from modelplane.gateway._table import EndpointRoute, Replica, VersionRoute

VERSIONS = {"chat": ["v1", "v2"], "chat-v": ["x"]}


def _resolve(ref: dict[str, Any], namespace: str = "team-a") -> Ref | tuple[str, str]:
    return resolve_ref(ref, namespace, VERSIONS.get, lambda name: name == "pool")


def test_backend_refs_resolve_to_endpoints_pools_and_versions_of_services() -> None:
    assert _resolve({"group": "modelplane.dev", "kind": "Endpoint", "name": "chat"}) == Ref(
        "Endpoint", "chat"
    )
    assert _resolve(
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "pool"}
    ) == Ref("InferencePool", "pool")
    assert _resolve({"name": "chat", "port": 8000}) == Ref("Endpoint", "chat")
    assert _resolve({"name": "chat-v2", "port": 8000}) == Ref("Endpoint", "chat", "v2")
    # the longest Endpoint name that leaves a version wins over a shorter one
    assert _resolve({"name": "chat-v-x", "port": 8000}) == Ref("Endpoint", "chat-v", "x")


@pytest.mark.parametrize(
    ("ref", "reason", "words"),
    [
        (
            {"group": "modelplane.dev", "kind": "Endpoint", "name": "nope"},
            "BackendNotFound",
            "nope",
        ),
        ({"name": "chat-v3", "port": 8000}, "BackendNotFound", "E-V"),
        ({"group": "example.com", "kind": "Bucket", "name": "b"}, "InvalidKind", "a backend is"),
        (
            {"group": "modelplane.dev", "kind": "Endpoint", "name": "chat", "namespace": "other"},
            "RefNotPermitted",
            "ReferenceGrants",
        ),
    ],
)
def test_unresolvable_backend_refs_say_why_with_gateway_api_reasons(
    ref: dict[str, Any], reason: str, words: str
) -> None:
    got = _resolve(ref)
    assert isinstance(got, tuple) and got[0] == reason and words in got[1]


def _routes() -> dict[str, Any]:
    def version(name: str) -> VersionRoute:
        return VersionRoute(name, 50, (Replica(f"chat-{name}-0", f"http://h/{name}/v1", name),))

    chat = EndpointRoute(
        "default", "chat", "m", "chat", (version("v1"), version("v2")), labels=(("app", "a"),)
    )
    return {chat.key: chat}


def _route(name: str, rules: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {"rules": rules, **spec}}


def test_the_most_specific_match_wins_and_narrows_to_a_service_version() -> None:
    obj = _route(
        "llm",
        [
            {"backendRefs": [{"name": "chat-v1", "port": 8000}]},
            {
                "matches": [{"headers": [{"name": "OpenAI-Organization", "value": "org-1"}]}],
                "backendRefs": [{"name": "chat-v2", "port": 8000}],
            },
        ],
    )
    entry = _entry(obj, _routes(), {})
    facts = RequestFacts(path="/v1/chat/completions", headers={"openai-organization": "org-1"})
    picked = choose([entry], "llm", facts, random.Random(1))
    assert [v.name for v in picked.versions] == ["v2"]
    plain = choose([entry], "llm", RequestFacts(path="/v1/chat/completions"), random.Random(1))
    assert [v.name for v in plain.versions] == ["v1"]


def test_a_route_serves_the_model_names_its_rules_match_in_x_gateway_model_name() -> None:
    obj = _route(
        "front",
        [
            {
                "matches": [{"headers": [{"name": "X-Gateway-Model-Name", "value": "gpt-4o"}]}],
                "backendRefs": [{"group": "modelplane.dev", "kind": "Endpoint", "name": "chat"}],
            }
        ],
    )
    entry = _entry(obj, _routes(), {})
    assert entry.model_names == {"gpt-4o"}
    assert choose([entry], "gpt-4o", RequestFacts(path="/v1"), random.Random()).name == "chat"
    with pytest.raises(GatewayError) as caught:
        choose([entry], "front", RequestFacts(path="/v1"), random.Random())
    assert caught.value.status == 404


def test_hostnames_and_unresolved_backends_are_answered_as_the_gateway_api_says() -> None:
    obj = _route(
        "llm",
        [{"backendRefs": [{"group": "modelplane.dev", "kind": "Endpoint", "name": "gone"}]}],
        hostnames=["*.example.com"],
    )
    entry = _entry(obj, _routes(), {})
    with pytest.raises(GatewayError) as elsewhere:
        choose([entry], "llm", RequestFacts(path="/v1", host="example.org"), random.Random())
    assert elsewhere.value.status == 404
    with pytest.raises(GatewayError) as unresolved:
        choose([entry], "llm", RequestFacts(path="/v1", host="a.example.com"), random.Random())
    assert unresolved.value.status == 500 and "gone" in unresolved.value.message


def test_a_pool_gathers_the_ready_replicas_whose_labels_match_its_selector() -> None:
    pool = {"spec": {"selector": {"matchLabels": {"app": "a", "modelplane.dev/version": "v2"}}}}
    route = pool_route("default", "p", pool, _routes())
    (version,) = route.versions
    assert [r.name for r in version.replicas] == ["chat-v2-0"]
    nobody = {"spec": {"selector": {"matchLabels": {"app": "b"}}}}
    assert pool_route("default", "p", nobody, _routes()).versions[0].replicas == ()
