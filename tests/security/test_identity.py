"""Who a request is: token files with hashed tokens, and OIDC JWTs verified against the issuer's
keys (made in the test, RSA and EC), over a real server on loopback."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from tests.server.conftest import serving

from modelplane.api import AUTHENTICATED_GROUP, Principal
from modelplane.api.errors import BadRequest
from modelplane.cli import cli
from modelplane.egress import EgressRules
from modelplane.gateway import Gateway, serve_gateway
from modelplane.policy import MemoryAudit
from modelplane.server import OIDC, BearerAuth, JWTVerifier, create_app, hash_token, load_tokens
from modelplane.server._oidc import REFETCH_SECONDS
from modelplane.store import Store
from modelplane.testing.upstream import FakeUpstream

ISSUER = "https://issuer.example.com"
CLIENT = "modelplane"
WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
MODELS = "/apis/modelplane.dev/v1alpha1/namespaces/team-a/models"


# -- token files ---------------------------------------------------------------------------------


def test_hash_token_prints_the_digest_a_token_file_takes() -> None:
    result = CliRunner().invoke(cli, ["auth", "hash-token"], input="s3cret\n")

    assert result.exit_code == 0, result.output
    assert result.output.strip() == hash_token("s3cret")
    assert result.output.startswith("sha256:") and len(result.output.strip()) == 7 + 64


def test_hash_token_refuses_an_empty_stdin() -> None:
    result = CliRunner().invoke(cli, ["auth", "hash-token"], input="")

    assert result.exit_code != 0
    assert "no token on stdin" in result.output


def test_a_hashed_token_line_authenticates_the_token_not_its_digest(
    tmp_path: Path, sqlite_store: Store
) -> None:
    # given a token file holding only the digest of the token
    path = tmp_path / "tokens.csv"
    path.write_text(f'{hash_token("s3cret")},alice,uid-1,"modelplane:namespace:team-a"\n')
    warnings: list[str] = []
    tokens = load_tokens(path, on_plain_text=warnings.append)
    assert warnings == []

    with serving(create_app(sqlite_store, tokens=tokens), wait=False) as base:
        # when the token is presented, then it is alice
        who = httpx.post(base + WHOAMI, json={}, headers=_bearer("s3cret"), timeout=10)
        # and the digest itself, presented as a token, is not a token
        digest = httpx.get(base + MODELS, headers=_bearer(hash_token("s3cret")), timeout=10)

    assert who.status_code == 201, who.text
    assert who.json()["status"]["userInfo"]["username"] == "alice"
    assert digest.status_code == 401


def test_plain_text_tokens_load_with_one_warning_naming_the_lines(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text(f"plain-1,alice\n{hash_token('h')},bob\nplain-2,carol\n")
    warnings: list[str] = []

    tokens = load_tokens(path, on_plain_text=warnings.append)

    assert tokens["plain-1"].name == "alice"
    assert len(warnings) == 1
    assert f"{path}:1" in warnings[0] and f"{path}:3" in warnings[0]
    assert f"{path}:2" not in warnings[0]
    assert "modelplane auth hash-token" in warnings[0]


def test_a_token_listed_plain_and_hashed_is_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text(f"s3cret,alice\n{hash_token('s3cret')},bob\n")

    with pytest.raises(BadRequest, match=r"tokens.csv:2: this token is already listed"):
        load_tokens(path)


# -- OIDC ----------------------------------------------------------------------------------------


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ec() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(alg)
    public = json.loads(algorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "alg": alg, "use": "sig"}


def _token(key: Any, kid: str | None, alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "alice@example.com",
        "groups": ["modelplane:namespace:team-a", "sre"],
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    headers = {"kid": kid} if kid else {}
    return jwt.encode(body, key, algorithm=alg, headers=headers)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return _rsa()


@pytest.fixture
def ec_key() -> ec.EllipticCurvePrivateKey:
    return _ec()


@pytest.fixture
def jwks_file(tmp_path: Path, rsa_key: Any, ec_key: Any) -> Path:
    path = tmp_path / "jwks.json"
    keys = [_jwk(rsa_key, "rsa-1", "RS256"), _jwk(ec_key, "ec-1", "ES256")]
    path.write_text(json.dumps({"keys": keys}))
    return path


@pytest.fixture
def oidc_server(sqlite_store: Store, jwks_file: Path) -> Iterator[str]:
    settings = OIDC(ISSUER, CLIENT, jwks_file=str(jwks_file), username_prefix="oidc:")
    app = create_app(sqlite_store, oidc=JWTVerifier(settings))
    with serving(app, wait=False) as base:
        yield base


@pytest.mark.parametrize(
    ("kid", "alg", "key"), [("rsa-1", "RS256", "rsa"), ("ec-1", "ES256", "ec")]
)
def test_a_valid_jwt_gives_the_principal_with_its_groups(
    oidc_server: str, rsa_key: Any, ec_key: Any, kid: str, alg: str, key: str
) -> None:
    token = _token(rsa_key if key == "rsa" else ec_key, kid, alg)

    who = httpx.post(oidc_server + WHOAMI, json={}, headers=_bearer(token), timeout=10)

    assert who.status_code == 201, who.text
    user = who.json()["status"]["userInfo"]
    assert user["username"] == "oidc:alice@example.com"
    assert set(user["groups"]) == {"modelplane:namespace:team-a", "sre", AUTHENTICATED_GROUP}


def _refusal(base: str, token: str) -> str:
    answer = httpx.get(base + MODELS, headers=_bearer(token), timeout=10)
    assert answer.status_code == 401, answer.text
    body = answer.json()
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized"
    assert answer.headers.get("www-authenticate", "").startswith("Bearer")
    return str(body["message"])


def test_a_jwt_signed_by_another_key_is_refused(oidc_server: str) -> None:
    message = _refusal(oidc_server, _token(_rsa(), "rsa-1"))
    assert "signature does not verify" in message


def test_a_jwt_for_another_audience_is_refused(oidc_server: str, rsa_key: Any) -> None:
    message = _refusal(oidc_server, _token(rsa_key, "rsa-1", aud="another-app"))
    assert "audience" in message and CLIENT in message


def test_a_jwt_of_another_issuer_is_refused(oidc_server: str, rsa_key: Any) -> None:
    message = _refusal(oidc_server, _token(rsa_key, "rsa-1", iss="https://evil.example.com"))
    assert "issuer" in message and ISSUER in message


def test_an_expired_jwt_is_refused(oidc_server: str, rsa_key: Any) -> None:
    past = int(time.time()) - 3600
    message = _refusal(oidc_server, _token(rsa_key, "rsa-1", iat=past - 60, exp=past))
    assert "expired" in message


def test_an_unsigned_jwt_is_refused(oidc_server: str) -> None:
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": CLIENT, "sub": "mallory", "exp": int(time.time()) + 60},
        None,
        algorithm="none",
    )
    message = _refusal(oidc_server, unsigned)
    assert "'none'" in message and "not accepted" in message


def test_a_jwt_with_an_unknown_key_id_is_refused(oidc_server: str) -> None:
    message = _refusal(oidc_server, _token(_rsa(), "rsa-unknown"))
    assert "rsa-unknown" in message and "key set does not hold" in message


def test_a_jwt_signed_with_a_shared_secret_is_refused(oidc_server: str) -> None:
    message = _refusal(oidc_server, _token("a" * 32, "rsa-1", alg="HS256"))
    assert "'HS256'" in message


class _Issuer:
    """An OpenID issuer on loopback: its discovery document and a key set that can rotate."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.url = ""

    def app(self, store: Store) -> Starlette:
        async def discovery(request: Request) -> Response:
            return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/keys"})

        async def keys(request: Request) -> Response:
            self.fetches += 1
            return JSONResponse({"keys": self.keys})

        # served by the test server (the routes beside an API without authentication)
        return create_app(
            store,
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/keys", keys),
            ],
        )


def test_the_issuers_keys_are_fetched_cached_and_refetched_on_an_unknown_kid(
    sqlite_store: Store,
) -> None:
    asyncio.run(_keys_are_fetched_cached_and_refetched(sqlite_store))


async def _keys_are_fetched_cached_and_refetched(store: Store) -> None:
    issuer = _Issuer()
    first, second = _rsa(), _ec()
    issuer.keys = [_jwk(first, "k1", "RS256")]
    clock = [1000.0]
    with serving(issuer.app(store), wait=False) as base:
        issuer.url = base
        verifier = JWTVerifier(
            OIDC(base, CLIENT),
            egress=EgressRules(allow_loopback=True),
            clock=lambda: clock[0],
        )
        # a first token fetches the keys; a second one uses the cache
        assert (await verifier.principal(_token(first, "k1", iss=base))).name == "alice@example.com"
        await verifier.principal(_token(first, "k1", iss=base))
        assert issuer.fetches == 1
        # the issuer rotates: a token with the new kid makes one refetch (once the least
        # interval between fetches has passed)
        issuer.keys.append(_jwk(second, "k2", "ES256"))
        clock[0] += REFETCH_SECONDS
        principal = await verifier.principal(_token(second, "k2", "ES256", iss=base))
        assert principal == Principal(
            "alice@example.com",
            frozenset({"modelplane:namespace:team-a", "sre", AUTHENTICATED_GROUP}),
        )
        assert issuer.fetches == 2
        # made-up kids do not make the server fetch again within the interval
        for i in range(3):
            with pytest.raises(Exception, match="key set does not hold"):
                await verifier.principal(_token(_rsa(), f"made-up-{i}", iss=base))
        assert issuer.fetches == 2
        clock[0] += REFETCH_SECONDS
        with pytest.raises(Exception, match="key set does not hold"):
            await verifier.principal(_token(_rsa(), "made-up-late", iss=base))
        assert issuer.fetches == 3


def test_the_issuers_keys_are_not_fetched_from_a_refused_address(sqlite_store: Store) -> None:
    asyncio.run(_keys_are_not_fetched_from_a_refused_address(sqlite_store))


async def _keys_are_not_fetched_from_a_refused_address(store: Store) -> None:
    issuer = _Issuer()
    with serving(issuer.app(store), wait=False) as base:
        issuer.url = base
        # the egress rules refuse loopback (the default)
        verifier = JWTVerifier(OIDC(base, CLIENT))
        with pytest.raises(Exception, match="cannot be fetched") as caught:
            await verifier.principal(_token(_rsa(), "k1", iss=base))
    assert issuer.fetches == 0
    assert "loopback" in str(caught.value)


def test_the_oidc_settings_are_checked_naming_the_flag() -> None:
    with pytest.raises(BadRequest, match="--oidc-issuer-url"):
        JWTVerifier(OIDC("not a url", CLIENT))
    with pytest.raises(BadRequest, match="--oidc-client-id"):
        JWTVerifier(OIDC(ISSUER, ""))


# -- the gateway: the caller from authentication -------------------------------------------------

ALICE = Principal("alice", frozenset({"modelplane:namespace:team-a", AUTHENTICATED_GROUP}))
BOB = Principal("bob", frozenset({"modelplane:namespace:team-b", AUTHENTICATED_GROUP}))
GATEWAY_TOKENS = {"alice-token": ALICE, "bob-token": BOB}


def _served_model(store: Store, namespace: str, source: str) -> None:
    meta = {"name": "chat", "namespace": namespace}
    store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Model",
            "metadata": meta,
            "spec": {"versions": [{"name": "v1", "format": "upstream", "source": source}]},
        }
    )
    store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Endpoint",
            "metadata": meta,
            "spec": {"model": "chat"},
        }
    )


def _chat(base: str, token: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "user": "bob"}
    return httpx.post(f"{base}/v1/chat/completions", json=body, headers=_bearer(token), timeout=10)


def test_the_gateway_alone_authenticates_and_serves_each_tenant_only_its_models(
    sqlite_store: Store,
) -> None:
    with FakeUpstream("provider") as upstream:
        _served_model(sqlite_store, "team-a", upstream.url)
        stop, urls = threading.Event(), queue.Queue[str]()
        thread = threading.Thread(
            target=serve_gateway,
            args=(sqlite_store,),
            kwargs={
                "port": 0,
                "egress": EgressRules(allow_loopback=True),
                "on_started": urls.put,
                "stop": stop,
                "middleware": [Middleware(BearerAuth, tokens=GATEWAY_TOKENS)],
            },
            daemon=True,
        )
        thread.start()
        try:
            base = urls.get(timeout=30)
            # no token: 401 (the probes stay open)
            assert httpx.get(f"{base}/v1/models", timeout=10).status_code == 401
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
            # each tenant's /v1/models lists only its own
            listed = {
                token: [
                    m["id"]
                    for m in httpx.get(
                        f"{base}/v1/models", headers=_bearer(token), timeout=10
                    ).json()["data"]
                ]
                for token in GATEWAY_TOKENS
            }
            assert listed == {"alice-token": ["team-a/chat"], "bob-token": []}
            # bob cannot call team-a's model: the same 404 as a model that does not exist
            refused = _chat(base, "bob-token", "team-a/chat")
            assert (
                refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
            )
            assert _chat(base, "alice-token", "team-a/chat").status_code == 200
            # samples: of its own namespaces' endpoints only
            samples = base + "/v1/_modelplane/samples?endpoint=chat&namespace="
            assert httpx.get(samples + "team-a", headers=_bearer("alice-token")).status_code == 200
            assert httpx.get(samples + "team-a", headers=_bearer("bob-token")).status_code == 404
            # the metrics cover every tenant: not for a tenant, on either path
            for path in ("/metrics", "/v1/_modelplane/metrics"):
                r = httpx.get(base + path, headers=_bearer("alice-token"), timeout=10)
                assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
            assert upstream.requests["/v1/chat/completions"] == 1
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive()


def test_every_model_call_decision_is_audited_with_the_callers_identity(
    sqlite_store: Store,
) -> None:
    audit = MemoryAudit()
    gateway = Gateway(sqlite_store, egress=EgressRules(allow_loopback=True), audit=audit)
    app = create_app(sqlite_store, tokens=GATEWAY_TOKENS, routes=[Mount("/v1", app=gateway.app)])
    with FakeUpstream("provider") as upstream:
        _served_model(sqlite_store, "team-a", upstream.url)
        try:
            with serving(app, wait=False) as base:
                assert _chat(base, "alice-token", "team-a/chat").status_code == 200
                assert _chat(base, "bob-token", "team-a/chat").status_code == 404
        finally:
            gateway.stop()

    decisions = [
        (e.category, e.principal, e.action, e.resource, e.decision, e.namespace)
        for e in audit.events
    ]
    assert decisions == [
        ("model", "alice", "model.call", "Endpoint/team-a/chat", "allow", "team-a"),
        ("model", "bob", "model.call", "Endpoint/team-a/chat", "deny", "team-a"),
    ]
    assert audit.events[0].policies  # the rule that allowed it is named


# -- who may: can-i by the same rules --------------------------------------------------------------


def _can_i(base: str, token: str, **attributes: str) -> tuple[bool, str]:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    r = httpx.post(
        base + "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        json=body,
        headers=_bearer(token),
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return bool(r.json()["status"]["allowed"]), str(r.json()["status"]["reason"])


def test_can_i_answers_reads_and_writes_by_the_tenancy_rules(sqlite_store: Store) -> None:
    with serving(create_app(sqlite_store, tokens=GATEWAY_TOKENS), wait=False) as base:
        answers = {
            (verb, namespace): _can_i(
                base, "alice-token", verb=verb, resource="models", namespace=namespace
            )
            for verb in ("get", "list", "watch", "create", "delete")
            for namespace in ("team-a", "team-b")
        }
        nodes = _can_i(base, "alice-token", verb="list", resource="nodes")
        node_write = _can_i(base, "alice-token", verb="create", resource="nodes")

    assert all(answers[(v, "team-a")][0] for v in ("get", "list", "watch", "create", "delete"))
    for verb in ("get", "list", "watch", "create", "delete"):
        allowed, reason = answers[(verb, "team-b")]
        assert not allowed and "modelplane:namespace:team-b" in reason
    assert nodes[0] and not node_write[0]


def test_up_refuses_oidc_flags_that_cannot_work_naming_the_flag(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    bad_url = ["up", "--home", home, "--oidc-issuer-url", "nope", "--oidc-client-id", "x"]
    no_client = ["up", "--home", home, "--oidc-issuer-url", ISSUER]

    results = [CliRunner().invoke(cli, args) for args in (bad_url, no_client)]

    assert [r.exit_code for r in results] == [1, 1]
    assert "--oidc-issuer-url" in results[0].output
    assert "--oidc-client-id" in results[1].output
    assert not (tmp_path / "home" / "modelplane.db").exists()  # refused before anything opened
