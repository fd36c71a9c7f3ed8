"""Bearer-token authentication against a static token file, as Kubernetes' ``--token-auth-file``.

The token file holds one token per line; blank lines and lines starting with ``#`` are ignored. A
line may be ``token,user`` (further comma-separated fields, as in Kubernetes' uid and groups, are
allowed and ignored). A token without a user is known by where it was written (``tokens:3``).

When tokens are configured, every request but the probes (``/healthz``, ``/readyz``) must carry
``Authorization: Bearer <token>``; otherwise the answer is 401 with ``WWW-Authenticate: Bearer``.
The authenticated user's name is in ``request.user.display_name``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from pathlib import Path

from starlette.authentication import AuthCredentials, SimpleUser
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from modelplane.api.errors import BadRequest, Unauthorized
from modelplane.server._errors import status_response

#: paths answered without a token: probes must work for whoever runs the process
OPEN_PATHS = frozenset({"/healthz", "/readyz"})

# what an HTTP header can carry in a token: visible ASCII, no spaces or commas
_TOKEN = re.compile(r"[!-+\--~]+")


def load_tokens(path: str | Path) -> dict[str, str]:
    """Read a token file into ``{token: user}``.

    Raises BadRequest naming ``file:line`` for a line without a usable token or a duplicate token,
    and for a file that cannot be read or holds no token (it would lock everyone out).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BadRequest(f"cannot read the token file {path}: {reason}") from None
    tokens: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            fields = [f.strip() for f in next(csv.reader([stripped]))]
        except csv.Error as exc:
            raise BadRequest(
                f"{where}: cannot parse the line ({exc}); write `token` or `token,user`"
            ) from None
        token = fields[0]
        if not _TOKEN.fullmatch(token):
            raise BadRequest(
                f"{where}: the token must be visible ASCII characters without spaces or commas;"
                " write `token` or `token,user`"
            )
        if token in tokens:
            raise BadRequest(
                f"{where}: this token is already listed on an earlier line; remove one"
            )
        user = fields[1] if len(fields) > 1 else ""
        tokens[token] = user or f"{path.name}:{number}"
    if not tokens:
        raise BadRequest(
            f"the token file {path} holds no token; write one token per line (`token` or"
            " `token,user`), or start the server without a token file"
        )
    return tokens


class BearerAuth:
    """ASGI middleware: only requests with a known bearer token get through."""

    def __init__(self, app: ASGIApp, tokens: Mapping[str, str]) -> None:
        self.app = app
        self.tokens = dict(tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        user = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            if scheme:
                message = "the bearer token is not valid; check the token the client sends"
            else:
                message = (
                    "this server requires a bearer token: send `Authorization: Bearer <token>`"
                    " (modelplane takes --token, MODELPLANE_TOKEN or --token-file)"
                )
            await status_response(Unauthorized(message))(scope, receive, send)
            return
        scope["user"] = SimpleUser(user)
        scope["auth"] = AuthCredentials(["authenticated"])
        await self.app(scope, receive, send)
