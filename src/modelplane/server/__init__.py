"""The REST API server: Kubernetes-shaped routes over the store, watch streams, OpenAPI.

Owns: HTTP routing of ``/apis/{group}/{version}/...`` for every kind, discovery, bearer-token
authentication (token file, OIDC JWTs, the platform's service-account tokens), request limits, the rendering of every error as a Kubernetes ``Status``, and
running the server (uvicorn). It reads and writes objects only through the store contract
(:mod:`modelplane.store`) and validates them with :mod:`modelplane.api` before a write.
Must not touch: controllers, subsystems' internals, the store's backends.

The contract with clients (the CLI, the SDK) is the REST API itself: see ``GET /openapi.json``.
"""

from modelplane.server._app import DEFAULT_MAX_BODY_BYTES, create_app
from modelplane.server._auth import BearerAuth, hash_token, load_tokens
from modelplane.server._oidc import OIDC, JWTVerifier
from modelplane.server._reviews import CAN_I_PATH, WHOAMI_PATH
from modelplane.server._serve import TLS, serve
from modelplane.server._service_accounts import ServiceAccountTokens

__all__ = [
    "CAN_I_PATH",
    "DEFAULT_MAX_BODY_BYTES",
    "OIDC",
    "TLS",
    "WHOAMI_PATH",
    "BearerAuth",
    "JWTVerifier",
    "ServiceAccountTokens",
    "create_app",
    "hash_token",
    "load_tokens",
    "serve",
]
