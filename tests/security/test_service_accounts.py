"""Service-account tokens: an Agent's model calls authenticate as the Agent's service account,
with a token the platform signs (over a real server on loopback); nothing else can pass as one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.server.conftest import serving

from modelplane.api.errors import BadRequest
from modelplane.server import ServiceAccountTokens, create_app, hash_token
from modelplane.server._service_accounts import AUDIENCE, ISSUER
from modelplane.store import Store

WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def server(sqlite_store: Store, key: Ed25519PrivateKey) -> Iterator[str]:
    tokens = {hash_token("ops-token"): "ops"}
    app = create_app(sqlite_store, tokens=tokens, service_accounts=ServiceAccountTokens(key))
    with serving(app, wait=False) as base:
        yield base


def _whoami(base: str, token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.post(base + WHOAMI, json={}, headers=headers, timeout=10)


def _signed(key: Ed25519PrivateKey, **claims: object) -> str:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "system:serviceaccount:team-a:assistant"}
    return jwt.encode({**base, "iat": now, "exp": now + 60, **claims}, key, algorithm="EdDSA")


def test_an_agents_token_authenticates_as_its_service_account_with_kubernetes_groups(
    server: str, key: Ed25519PrivateKey
) -> None:
    # given the token the platform makes for Agent team-a/assistant
    token = ServiceAccountTokens(key).token("team-a", "assistant")
    # when it calls the API
    who = _whoami(server, token)
    # then it is that service account, in its namespace's service-account groups
    assert who.status_code == 201, who.text
    user = who.json()["status"]["userInfo"]
    assert user["username"] == "system:serviceaccount:team-a:assistant"
    assert {"system:serviceaccounts", "system:serviceaccounts:team-a"} <= set(user["groups"])
    assert "system:masters" not in user["groups"]


def test_a_token_is_reused_until_half_its_life_then_renewed() -> None:
    now = [1000.0]
    tokens = ServiceAccountTokens(lifetime=100, clock=lambda: now[0])
    first = tokens.token("team-a", "assistant")
    now[0] += 49
    assert tokens.token("team-a", "assistant") == first
    assert tokens.token("team-b", "assistant") != first
    now[0] += 2
    assert tokens.token("team-a", "assistant") != first


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"exp": int(time.time()) - 600}, "expired"),
        ({"aud": "another-app"}, "does not verify"),
        ({"sub": "ops"}, "is not a service account"),
        ({"sub": "system:serviceaccount:team-a"}, "is not a service account"),
    ],
)
def test_a_token_of_our_issuer_that_is_expired_misaddressed_or_not_an_account_is_refused(
    server: str, key: Ed25519PrivateKey, claims: dict[str, object], why: str
) -> None:
    answer = _whoami(server, _signed(key, **claims))
    assert answer.status_code == 401, answer.text
    assert why in answer.json()["message"]


def test_a_token_signed_by_another_key_cannot_pass_as_an_agent(server: str) -> None:
    answer = _whoami(server, _signed(Ed25519PrivateKey.generate()))
    assert answer.status_code == 401, answer.text
    assert "does not verify with this platform's key" in answer.json()["message"]


def test_without_service_accounts_such_a_token_is_refused(
    sqlite_store: Store, key: Ed25519PrivateKey
) -> None:
    app = create_app(sqlite_store, tokens={hash_token("ops-token"): "ops"})
    with serving(app, wait=False) as base:
        answer = _whoami(base, ServiceAccountTokens(key).token("team-a", "assistant"))
    assert answer.status_code == 401, answer.text


def test_the_key_file_is_read_and_a_wrong_one_is_named(tmp_path: Path) -> None:
    made = ServiceAccountTokens()
    path = tmp_path / "sa.pem"
    path.write_bytes(made.private_pem())
    loaded = ServiceAccountTokens.from_file(path)
    assert loaded.principal(made.token("team-a", "a")).name == "system:serviceaccount:team-a:a"
    path.write_text("not a key")
    with pytest.raises(BadRequest, match=r"sa\.pem.*openssl genpkey -algorithm ed25519"):
        ServiceAccountTokens.from_file(path)
