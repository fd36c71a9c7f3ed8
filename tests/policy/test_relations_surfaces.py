"""The gateway (`/v1`) and the agent routes (`/agents`) decide membership as the API does, when
they are wired as `modelplane up` wires them: a Relationship that makes a user a member of a
namespace lets her read what its members read there, and its deletion takes that back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.control._wait import wait_until
from tests.security._platform import ADMIN_TOKEN, OUTSIDER_TOKEN, TOKENS, use_key_file
from tests.server.conftest import serving

from modelplane import platform
from modelplane.server import create_app
from modelplane.store import open_store

from .test_relations_admission import CAROL_MEMBER

RELATIONSHIPS = "/apis/modelplane.dev/v1alpha1/namespaces/team-a/relationships"
SAMPLES = "/v1/_modelplane/samples?namespace=team-a&endpoint=chat"
INSTANCES = "/agents/team-a/assistant/instances"


@pytest.fixture
def clients(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    use_key_file(tmp_path, monkeypatch)
    store = open_store(sqlite_url)
    relations = platform.relationships(store)
    routes = platform.routes(store, home=str(tmp_path), relations=relations)
    app = create_app(store, tokens=TOKENS, routes=routes, relations=relations)
    with (
        store,
        serving(app) as base,
        httpx.Client(base_url=base, headers=_bearer(ADMIN_TOKEN), timeout=10) as admin,
        httpx.Client(base_url=base, headers=_bearer(OUTSIDER_TOKEN), timeout=10) as carol,
    ):
        yield admin, carol


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_relationship_opens_the_gateway_and_the_agent_routes_of_its_namespace(
    clients: tuple[httpx.Client, httpx.Client],
) -> None:
    admin, carol = clients
    # given carol, a member of no namespace by her token: team-a's samples and agents are closed
    assert carol.get(SAMPLES).status_code == 404
    assert carol.get(INSTANCES).status_code == 403
    # when an administrator relates her to team-a
    assert admin.post(RELATIONSHIPS, json=CAROL_MEMBER).status_code == 201
    # then the gateway and the agent routes let her read there, as the API does
    wait_until(lambda: carol.get(SAMPLES).status_code == 200, what="the gateway to follow it")
    wait_until(lambda: carol.get(INSTANCES).status_code == 200, what="/agents to follow it")
    # and once the Relationship is deleted, both are closed again
    assert admin.delete(f"{RELATIONSHIPS}/carol-in-team-a").status_code == 200
    wait_until(lambda: carol.get(SAMPLES).status_code == 404, what="the gateway to drop it")
    wait_until(lambda: carol.get(INSTANCES).status_code == 403, what="/agents to drop it")
