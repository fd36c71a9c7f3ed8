"""Bearer-token authentication against a static token file, as Kubernetes' ``--token-auth-file``.

The token file holds one token per line, in Kubernetes' static-token format::

    token,user,uid,"group1,group2"

where ``token`` is best written as its digest, ``sha256:<64 hex digits>`` (what
``modelplane auth hash-token`` prints), so that the file does not hand out the tokens to whoever
reads it. A plain-text token still works, and the server warns once naming its lines and the fix.
``user``, ``uid`` and the groups are optional (a token without a user is known by where it was
written: ``tokens:3``); blank lines and lines starting with ``#`` are ignored. Members of
``system:masters`` are administrators (:data:`~modelplane.api.ADMIN_GROUP`); every principal is
also in ``system:authenticated``.

When tokens are configured, every request but the probes (``/healthz``, ``/readyz``) must carry
``Authorization: Bearer <token>``; otherwise the answer is 401 with ``WWW-Authenticate: Bearer``.
The authenticated :class:`~modelplane.api.Principal` is put in the ASGI scope (``scope["user"]``,
read back with :func:`~modelplane.api.principal_of`). The middleware keeps only SHA-256 digests
of the tokens in memory, so a dump of the process does not hand out the tokens themselves.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from starlette.authentication import AuthCredentials
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from modelplane.api import AUTHENTICATED_GROUP, Principal
from modelplane.api.errors import BadRequest, Unauthorized
from modelplane.server._errors import status_response
from modelplane.server._middleware import HTTPMiddleware
from modelplane.server._oidc import JWTVerifier, looks_like_jwt
from modelplane.server._service_accounts import ServiceAccountTokens

#: paths answered without a token: probes must work for whoever runs the process
OPEN_PATHS = frozenset({"/healthz", "/readyz"})

# what an HTTP header can carry in a token: visible ASCII, no spaces or commas
_TOKEN = re.compile(r"[!-+\--~]+")
_FORMAT = '`token`, `token,user` or `token,user,uid,"group1,group2"`'
#: a token written as its digest: ``sha256:`` and 64 hex digits
HASHED = re.compile(r"sha256:[0-9a-f]{64}")


def hash_token(token: str) -> str:
    """How a token is written in a token file: ``sha256:<hex digest>``."""
    return "sha256:" + _digest(token).hex()


def load_tokens(
    path: str | Path, *, on_plain_text: Callable[[str], None] | None = None
) -> dict[str, Principal]:
    """Read a token file into ``{token or "sha256:<hex>": principal}``.

    Raises BadRequest naming ``file:line`` for a line without a usable token or a duplicate token,
    and for a file that cannot be read or holds no token (it would lock everyone out).
    ``on_plain_text`` is called once with a warning naming the lines that hold a token in plain
    text (not ``sha256:<hex>``), when there are any.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BadRequest(f"cannot read the token file {path}: {reason}") from None
    tokens: dict[str, Principal] = {}
    plain: list[int] = []
    seen: set[bytes] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            fields = [f.strip() for f in next(csv.reader([stripped]))]
        except csv.Error as exc:
            raise BadRequest(f"{where}: cannot parse the line ({exc}); write {_FORMAT}") from None
        token = fields[0]
        if not _TOKEN.fullmatch(token):
            raise BadRequest(
                f"{where}: the token must be visible ASCII characters without spaces or commas;"
                f" write {_FORMAT}"
            )
        if not HASHED.fullmatch(token):
            plain.append(number)
        if _key_digest(token) in seen:
            raise BadRequest(
                f"{where}: this token is already listed on an earlier line; remove one"
            )
        if len(fields) > 4:
            raise BadRequest(
                f"{where}: {len(fields)} fields; write {_FORMAT} (quote the groups when there"
                " are several)"
            )
        user = fields[1] if len(fields) > 1 else ""
        groups = (
            {g.strip() for g in fields[3].split(",") if g.strip()} if len(fields) > 3 else set()
        )
        seen.add(_key_digest(token))
        tokens[token] = Principal(
            user or f"{path.name}:{number}", frozenset(groups | {AUTHENTICATED_GROUP})
        )
    if not tokens:
        raise BadRequest(
            f"the token file {path} holds no token; write one token per line ({_FORMAT}), or"
            " start the server without a token file"
        )
    if plain and on_plain_text is not None:
        lines = ", ".join(f"{path}:{n}" for n in plain)
        on_plain_text(
            f"the token file holds tokens in plain text ({lines}): anyone who reads the file can"
            " use them; replace each with its digest, the output of `modelplane auth hash-token`"
            " (which reads the token on stdin), e.g. `sha256:<64 hex digits>,alice`"
        )
    return tokens


def _digest(token: str) -> bytes:
    """The SHA-256 digest of a token a client presents (always hashed: presenting a digest
    from the file is not presenting the token)."""
    return hashlib.sha256(token.encode()).digest()


def _key_digest(key: str) -> bytes:
    """The digest a token file key stands for: ``sha256:<hex>`` is one already."""
    return bytes.fromhex(key[7:]) if HASHED.fullmatch(key) else _digest(key)


def _principal(user: str | Principal) -> Principal:
    if isinstance(user, Principal):
        return user
    return Principal(user, frozenset({AUTHENTICATED_GROUP}))


class BearerAuth(HTTPMiddleware):
    """ASGI middleware: only requests with a known bearer token get through: one of ``tokens``
    (the token file), a service-account token of ``service_accounts`` (the platform's own
    components acting as an Agent), or a JWT that ``oidc`` verifies."""

    def __init__(
        self,
        app: ASGIApp,
        tokens: Mapping[str, str | Principal] | None = None,
        oidc: JWTVerifier | None = None,
        service_accounts: ServiceAccountTokens | None = None,
    ) -> None:
        super().__init__(app)
        # digests only: a lookup by digest needs no token in memory and no timing-safe compare
        self._principals = {_key_digest(t): _principal(u) for t, u in (tokens or {}).items()}
        self._oidc = oidc
        self._service_accounts = service_accounts

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            user = await self._authenticate(Headers(scope=scope).get("authorization", ""))
        except Unauthorized as exc:
            await status_response(exc)(scope, receive, send)
            return
        scope["user"] = user
        scope["auth"] = AuthCredentials(["authenticated"])
        await self.app(scope, receive, send)

    async def _authenticate(self, header: str) -> Principal:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            user = self._principals.get(_digest(token))
            if user is not None:
                return user
            if looks_like_jwt(token):
                if self._service_accounts is not None and ServiceAccountTokens.issued(token):
                    return self._service_accounts.principal(token)
                if self._oidc is not None:
                    return await self._oidc.principal(token)
        if scheme:
            raise Unauthorized("the bearer token is not valid; check the token the client sends")
        raise Unauthorized(
            "this server requires a bearer token: send `Authorization: Bearer <token>`"
            " (modelplane takes --token, MODELPLANE_TOKEN or --token-file)"
        )
