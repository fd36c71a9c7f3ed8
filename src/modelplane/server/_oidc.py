"""OpenID Connect bearer tokens: JWTs verified against a configured issuer's keys, as
kube-apiserver's ``--oidc-*`` flags do.

A JWT is accepted when it is signed by a key of the issuer's JSON Web Key Set (an asymmetric
algorithm: RS*, PS*, ES*, EdDSA; never ``none`` nor a shared secret), its ``iss`` is the
configured issuer URL, its ``aud`` names the configured client id, and it has not expired
(``exp`` is required). The principal is the ``--oidc-username-claim`` (default ``sub``) after
``--oidc-username-prefix``, with the groups of ``--oidc-groups-claim`` (default ``groups``, a
list of strings or one string) and ``system:authenticated``.

The keys come from ``--oidc-jwks-file`` (a JWKS document), else from the issuer: its discovery
document ``<issuer>/.well-known/openid-configuration`` names ``jwks_uri``. Both are chosen by the
operator, not by a client; a URL is still fetched under the operator's egress rules (never a
metadata or link-local address; loopback only where allowed), over HTTPS unless the host is
loopback. The keys are cached; a token signed with a key id the cache lacks makes one refetch
(at most one per :data:`REFETCH_SECONDS`, so tokens with made-up key ids cannot make the
server hammer the issuer), which is how a key rotation is picked up.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from modelplane.api import AUTHENTICATED_GROUP, Principal
from modelplane.api.errors import BadRequest, Unauthorized
from modelplane.egress import EgressRules

#: the signature algorithms accepted: asymmetric ones only
ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
#: the least time between two fetches of the keys for an unknown key id
REFETCH_SECONDS = 10.0
#: clock skew tolerated on ``exp``, ``nbf`` and ``iat``
LEEWAY_SECONDS = 30
_FETCH_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class OIDC:
    """Which issuer's JWTs the server accepts, and how their claims make a principal."""

    issuer_url: str
    client_id: str
    jwks_file: str | None = None
    username_claim: str = "sub"
    groups_claim: str = "groups"
    username_prefix: str = ""

    def check(self) -> None:
        """Raise BadRequest naming the flag when the settings cannot work."""
        parts = urlsplit(self.issuer_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise BadRequest(
                f"--oidc-issuer-url {self.issuer_url!r} is not a URL; give the issuer's URL, as"
                " its tokens carry it in `iss` (https://issuer.example.com)"
            )
        if not self.client_id:
            raise BadRequest("--oidc-client-id is required with --oidc-issuer-url (the `aud`)")


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token has a JWT's shape (three dot-separated parts)."""
    return token.count(".") == 2


class JWTVerifier:
    """Verifies JWTs of one :class:`OIDC` issuer into principals (see the module docstring)."""

    def __init__(
        self,
        settings: OIDC,
        *,
        egress: EgressRules | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        settings.check()
        self.settings = settings
        self._egress = egress or EgressRules()
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        if settings.jwks_file is not None:
            self._keys = _key_set(_read_file(settings.jwks_file), settings.jwks_file)
            self._fetched_at = clock()

    async def principal(self, token: str) -> Principal:
        """The principal of a valid JWT; Unauthorized saying what is wrong with any other."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refused("it is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise _refused(
                f"its algorithm {algorithm!r} is not accepted (only signed tokens, with one of"
                f" {', '.join(ALGORITHMS)})"
            )
        kid = header.get("kid")
        key = await self._key(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.settings.client_id,
                issuer=self.settings.issuer_url,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise _refused("it has expired (`exp` is past); get a new token") from None
        except jwt.InvalidAudienceError:
            raise _refused(
                f"its audience (`aud`) does not name this server's client id"
                f" {self.settings.client_id!r}"
            ) from None
        except jwt.InvalidIssuerError:
            raise _refused(
                f"its issuer (`iss`) is not {self.settings.issuer_url!r}, the issuer this server"
                " trusts"
            ) from None
        except jwt.InvalidSignatureError:
            raise _refused("its signature does not verify with the issuer's key") from None
        except jwt.PyJWTError as exc:
            raise _refused(f"it is not valid ({exc})") from None
        return self._principal_of(claims)

    def _principal_of(self, claims: dict[str, Any]) -> Principal:
        s = self.settings
        name = claims.get(s.username_claim)
        if not isinstance(name, str) or not name:
            raise _refused(f"it has no string claim {s.username_claim!r} to name the user by")
        groups = claims.get(s.groups_claim, [])
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise _refused(f"its claim {s.groups_claim!r} is not a list of group names")
        return Principal(s.username_prefix + name, frozenset({*groups, AUTHENTICATED_GROUP}))

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        key = self._lookup(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._lookup(kid)
            now = self._clock()
            if key is None and (
                self._fetched_at is None or now - self._fetched_at >= REFETCH_SECONDS
            ):
                self._fetched_at = now
                self._keys = await self._fetch()
                key = self._lookup(kid)
        if key is None:
            which = f"the key id {kid!r}" if kid else "no key id, and the issuer has several keys"
            raise _refused(f"it names {which}, which the issuer's key set does not hold")
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _fetch(self) -> dict[str | None, jwt.PyJWK]:
        source = self.settings.jwks_file
        if source is not None:
            return _key_set(_read_file(source), source)
        try:
            issuer = self.settings.issuer_url.rstrip("/")
            discovery = await self._get_json(f"{issuer}/.well-known/openid-configuration")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise BadRequest("the issuer's discovery document has no `jwks_uri`")
            return _key_set(await self._get_json(jwks_uri), jwks_uri)
        except BadRequest as exc:
            # the cause is the issuer's, not the client's: the token cannot be checked now
            raise _refused(f"the issuer's keys cannot be fetched: {exc.message}") from None

    async def _get_json(self, url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        loopback = host in ("localhost", "127.0.0.1", "::1")
        if parts.scheme != "https" and not loopback:
            raise BadRequest(f"{url} is not HTTPS")
        try:
            await self._egress.resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
            async with httpx.AsyncClient(timeout=_FETCH_TIMEOUT, follow_redirects=False) as http:
                response = await http.get(url)
        except Exception as exc:  # refused by the egress rules, or unreachable
            raise BadRequest(f"GET {url}: {exc}") from None
        if response.status_code != 200:
            raise BadRequest(f"GET {url} answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise BadRequest(f"GET {url} did not answer JSON") from None
        if not isinstance(body, dict):
            raise BadRequest(f"GET {url} did not answer a JSON object")
        return body


def _read_file(path: str) -> dict[str, Any]:
    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadRequest(f"--oidc-jwks-file {path}: cannot read a JSON document ({exc})") from None
    if not isinstance(body, dict):
        raise BadRequest(f'--oidc-jwks-file {path}: not a JWKS document ({{"keys": [...]}})')
    return body


def _key_set(document: dict[str, Any], source: str) -> dict[str | None, jwt.PyJWK]:
    """The signing keys of a JWKS document by key id; keys of unusable types are skipped."""
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise BadRequest(f"{source}: not a JWKS document: it has no `keys` list")
    found: dict[str | None, jwt.PyJWK] = {}
    for entry in keys:
        # shared secrets (``oct``) are never keys of an issuer: anyone holding one could sign
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") == "oct":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue  # a key type or curve this server cannot use: tokens signed with it fail
        found[key.key_id] = key
    return found


def _refused(why: str) -> Unauthorized:
    return Unauthorized(f"the bearer token (a JWT) is not accepted: {why}")
