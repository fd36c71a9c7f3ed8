"""Request matching as the Gateway API defines it: paths by element, headers case-insensitive,
regular expressions on the whole value, hostnames with wildcards, and rule precedence."""

from __future__ import annotations

from modelplane.gateway._matches import RequestFacts, host_fits, route_match


def _facts(path: str = "/v1/chat/completions", **headers: str) -> RequestFacts:
    return RequestFacts(
        path=path, headers={k.lower().replace("_", "-"): v for k, v in headers.items()}
    )


def test_path_prefix_matches_whole_path_elements_only() -> None:
    match = route_match({"path": {"type": "PathPrefix", "value": "/v1"}})
    assert match.fits(_facts("/v1/chat/completions"))
    assert match.fits(_facts("/v1"))
    assert not match.fits(_facts("/v1x/chat/completions"))


def test_header_names_fold_case_and_regular_expressions_match_the_whole_value() -> None:
    match = route_match(
        {"headers": [{"type": "RegularExpression", "name": "X-Tenant", "value": "gold|silver"}]}
    )
    assert match.fits(_facts(x_tenant="gold"))
    assert not match.fits(_facts(x_tenant="golden"))
    assert not match.fits(_facts())


def test_method_and_query_parameters_must_all_hold() -> None:
    match = route_match({"method": "POST", "queryParams": [{"name": "tier", "value": "batch"}]})
    assert match.fits(RequestFacts(path="/v1", method="post", query={"tier": "batch"}))
    assert not match.fits(RequestFacts(path="/v1", method="GET", query={"tier": "batch"}))
    assert not match.fits(RequestFacts(path="/v1", method="POST", query={"Tier": "batch"}))


def test_more_specific_matches_take_precedence_in_gateway_api_order() -> None:
    exact = route_match({"path": {"type": "Exact", "value": "/v1/chat/completions"}})
    longer = route_match({"path": {"value": "/v1/chat"}})
    with_header = route_match({"path": {"value": "/v1"}, "headers": [{"name": "a", "value": "1"}]})
    bare = route_match({})
    ordered = sorted([bare, with_header, longer, exact], key=lambda m: m.precedence())
    assert ordered == [exact, longer, with_header, bare]


def test_wildcard_hostname_matches_names_below_it_not_itself() -> None:
    hosts = ("*.example.com",)
    assert host_fits(hosts, "llm.example.com")
    assert host_fits(hosts, "a.b.example.com")
    assert not host_fits(hosts, "example.com")
    assert host_fits((), "anything")
