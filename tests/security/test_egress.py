"""Egress rules for upstreams (hole 3: an upstream version's source could be any address,
link-local and cloud metadata included)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.control._wait import wait_until
from tests.security._platform import (
    Platform,
    chat,
    endpoint,
    running_platform,
    upstream_model,
    url,
)

from modelplane.cli import cli
from modelplane.egress import EgressRefused, EgressRules
from modelplane.gateway import EndpointRoute
from modelplane.store import Store
from modelplane.testing import FakeUpstream


@pytest.fixture
def strict(sqlite_store: Store) -> Iterator[Platform]:
    """The platform with the default rules: no allow-list, loopback refused."""
    with running_platform(sqlite_store, egress=EgressRules()) as p:
        yield p


def _serve(platform: Platform, name: str, source: str) -> None:
    assert platform.admin.post(url("models"), json=upstream_model(name, source)).status_code == 201
    platform.admin.post(url("endpoints"), json=endpoint(name, name))

    def routed() -> bool:
        route = platform.gateway.table.lookup(name)
        return isinstance(route, EndpointRoute) and any(v.replicas for v in route.versions)

    wait_until(routed, what=f"the gateway to route {name}")


# -- the rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "address", "rule"),
    [
        ("169.254.169.254", "169.254.169.254", "metadata"),
        ("attacker.example", "169.254.169.254", "metadata"),
        ("attacker.example", "::ffff:169.254.169.254", "metadata"),
        ("attacker.example", "fd00:ec2::254", "metadata"),
        ("attacker.example", "100.100.100.200", "metadata"),
        ("metadata.google.internal", "10.0.0.1", "metadata"),
        ("attacker.example", "169.254.10.1", "link-local"),
        ("attacker.example", "fe80::1", "link-local"),
        ("attacker.example", "0.0.0.0", "unspecified"),
        ("attacker.example", "::", "unspecified"),
        ("attacker.example", "127.0.0.1", "loopback"),
        ("localhost", "10.0.0.1", "loopback"),
        ("attacker.example", "::1", "loopback"),
    ],
)
def test_the_default_rules_refuse_internal_addresses(host: str, address: str, rule: str) -> None:
    refusal = EgressRules().check(host, address)
    assert refusal is not None
    assert rule in refusal.rule
    assert host in refusal.message()


def test_public_and_private_addresses_are_allowed_without_an_allow_list() -> None:
    rules = EgressRules()
    assert rules.check("api.openai.com", "104.18.7.192") is None
    assert rules.check("vllm.internal", "10.20.0.5") is None


def test_the_loopback_flag_allows_loopback_and_nothing_more() -> None:
    rules = EgressRules(allow_loopback=True)
    assert rules.check("localhost", "127.0.0.1") is None
    assert rules.check("attacker.example", "169.254.169.254") is not None
    assert rules.check("attacker.example", "fe80::1") is not None


def test_an_allow_list_admits_only_its_hosts_wildcards_and_networks() -> None:
    rules = EgressRules.parse(["api.openai.com", "*.azure.example", "10.20.0.0/16"])
    assert rules.check("api.openai.com", "104.18.7.192") is None
    assert rules.check("eu.azure.example", "20.1.2.3") is None
    assert rules.check("vllm", "10.20.3.4") is None
    refused = rules.check("azure.example", "20.1.2.3")  # the wildcard is for subdomains
    assert refused is not None and "allow-list" in refused.rule
    assert rules.check("other.example", "10.21.0.1") is not None


def test_an_allow_list_entry_never_lifts_the_metadata_rule() -> None:
    rules = EgressRules.parse(["*.example.com", "169.254.0.0/16"])
    assert rules.check("rebind.example.com", "169.254.169.254") is not None


def test_a_bad_allow_list_entry_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a host name"):
        EgressRules.parse(["http://api.example.com/"])


def test_the_check_is_on_the_resolved_address_not_the_name() -> None:
    # 2130706433 is 127.0.0.1 written as one number: no name rule matches it, resolving does
    with pytest.raises(EgressRefused) as caught:
        asyncio.run(EgressRules().resolve("2130706433", 80))
    assert caught.value.refusal.address == "127.0.0.1"
    assert "loopback" in caught.value.refusal.rule


# -- the gateway -------------------------------------------------------------------------------


def test_hole_3_an_upstream_on_the_metadata_address_is_refused_without_a_connection(
    strict: Platform,
) -> None:
    # given a tenant's Model whose upstream is the cloud metadata service
    _serve(strict, "meta", "http://169.254.169.254/latest")
    # when a client asks it
    r = chat(strict.tenant, "meta")
    # then the gateway refuses, in OpenAI's shape, naming the host and the rule
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "upstream_not_allowed"
    assert "169.254.169.254" in error["message"] and "metadata" in error["message"]


def test_a_loopback_upstream_is_refused_by_default_and_never_connected(strict: Platform) -> None:
    with FakeUpstream("local", reply="hi") as local:
        _serve(strict, "local", local.url)

        r = chat(strict.tenant, "local")

        assert r.status_code == 403, r.text
        message = r.json()["error"]["message"]
        assert "127.0.0.1" in message and "--allow-loopback-upstreams" in message
        assert sum(local.requests.values()) == 0


def test_replicas_our_node_agents_publish_on_loopback_still_serve(strict: Platform) -> None:
    with FakeUpstream("worker", reply="from the worker") as worker:
        # given a local-artifact version whose replica the node agent published on loopback
        model = {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "local"},
            "spec": {
                "versions": [
                    {
                        "name": "v1",
                        "source": "/models/v1",
                        "format": "safetensors",
                        "digest": "sha256:" + "a" * 64,
                    }
                ]
            },
        }
        assert strict.admin.post(url("models"), json=model).status_code == 201
        created = strict.admin.post(url("endpoints"), json=endpoint("ep", "local")).json()
        created["status"] = {
            "replicas": [{"name": "r0", "version": "v1", "url": worker.url, "ready": True}]
        }
        strict.store.update_status(created)
        wait_until(
            lambda: (
                (route := strict.gateway.table.lookup("ep")) is not None
                and isinstance(route, EndpointRoute)
                and any(v.replicas for v in route.versions)
            ),
            what="the gateway to route ep",
        )

        r = chat(strict.tenant, "ep")

        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "from the worker"


def test_an_allow_listed_host_is_served(sqlite_store: Store) -> None:
    rules = EgressRules.parse(["127.0.0.0/8"], allow_loopback=True)
    with running_platform(sqlite_store, egress=rules) as platform, FakeUpstream("p") as provider:
        _serve(platform, "p", provider.url)
        assert chat(platform.tenant, "p").status_code == 200


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("https://user:sk-secret@api.example.com/v1", "credentials"),
        ("file:///etc/passwd", "http(s) base URL"),
        ("gopher://api.example.com/v1", "http(s) base URL"),
    ],
)
def test_an_upstream_source_with_credentials_or_another_scheme_is_refused(
    strict: Platform, source: str, problem: str
) -> None:
    r = strict.tenant.post(url("models"), json=upstream_model("m", source))

    assert r.status_code == 422
    (cause,) = r.json()["details"]["causes"]
    assert cause["field"] == "spec.versions[0].source"
    assert problem in cause["message"]
    assert "sk-secret" not in r.text


@pytest.mark.parametrize("command", ["up", "gateway"])
def test_a_bad_upstream_allow_entry_stops_the_command_with_a_usage_error(
    command: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        cli, [command, "--home", str(tmp_path), "--upstream-allow", "http://api.example.com/"]
    )
    assert result.exit_code == 2
    assert "--upstream-allow" in result.output and "not a host name" in result.output
    assert not (tmp_path / "modelplane.db").exists()
