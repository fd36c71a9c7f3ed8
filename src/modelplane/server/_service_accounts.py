"""Service-account tokens: how the platform's own components act as an Agent's service account.

Every Agent's instances act as the service account ``system:serviceaccount:<ns>:<agent>``
(:func:`~modelplane.api.service_account`), so a model call an agent makes is limited, charged,
authorized and audited as that agent's, never as the process that runs it. The runtime sends a
token that names the account, signed by the platform, as kube-apiserver's
``--service-account-signing-key-file`` does:

* a JWT signed with an Ed25519 key (``EdDSA``), ``iss`` :data:`ISSUER`, ``aud`` :data:`AUDIENCE`,
  ``sub`` the account's user name, ``exp`` :data:`LIFETIME_SECONDS` after it was made;
* the key is the operator's (``--service-account-key-file``, a PEM private key, so that several
  processes of a scale-out share it), else one made in memory when the process starts (``up``:
  every component is in the one process; a restart makes a new key and new tokens);
* only tokens of this issuer that name a service account are accepted: a stolen key can mint
  agents' identities, never an administrator's.

:meth:`ServiceAccountTokens.token` reuses a token until half its life has passed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelplane.api import SERVICE_ACCOUNT_PREFIX, Principal, service_account
from modelplane.api.errors import BadRequest, Unauthorized

#: the ``iss`` of the platform's own service-account tokens
ISSUER = "modelplane:serviceaccounts"
#: the ``aud`` they name: the platform's APIs
AUDIENCE = "modelplane"
#: how long a token is valid
LIFETIME_SECONDS = 3600.0


class ServiceAccountTokens:
    """Makes and verifies service-account tokens with one Ed25519 key (see the module docstring).

    ``clock``: wall-clock seconds (tokens carry ``iat`` and ``exp`` in them).
    """

    def __init__(
        self,
        key: Ed25519PrivateKey | None = None,
        *,
        lifetime: float = LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key or Ed25519PrivateKey.generate()
        self._public = self._key.public_key()
        self._lifetime = lifetime
        self._clock = clock
        self._made: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path) -> ServiceAccountTokens:
        """The key of a PEM file (``openssl genpkey -algorithm ed25519``); BadRequest naming the
        file and the fix when it cannot be read or holds another kind of key."""
        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise BadRequest(
                f"{path}: cannot read a service-account signing key ({exc}); write one with"
                " `openssl genpkey -algorithm ed25519 -out FILE` (no passphrase)"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise BadRequest(
                f"{path}: the service-account signing key must be an Ed25519 key, not"
                f" {type(key).__name__}; write one with `openssl genpkey -algorithm ed25519`"
            )
        return cls(key)

    def private_pem(self) -> bytes:
        """The key as PEM (PKCS#8), for the file other processes of a scale-out read."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def token(self, namespace: str, name: str) -> str:
        """A bearer token of the service account ``name`` of ``namespace``."""
        now = self._clock()
        with self._lock:
            made = self._made.get((namespace, name))
            if made is not None and now < made[1]:
                return made[0]
            subject = service_account(namespace, name).name
            claims = {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": subject,
                "iat": int(now),
                "exp": int(now + self._lifetime),
            }
            token = jwt.encode(claims, self._key, algorithm="EdDSA")
            self._made[(namespace, name)] = (token, now + self._lifetime / 2)
            return token

    @staticmethod
    def issued(token: str) -> bool:
        """Does ``token`` say it is one of ours (its unverified ``iss``)? Only then is it
        verified here; any other JWT goes to the OIDC issuer, if one is configured."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        return isinstance(claims, dict) and claims.get("iss") == ISSUER

    def principal(self, token: str) -> Principal:
        """The service account a valid token names; Unauthorized saying what is wrong otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=["EdDSA"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _refused(
                "it has expired; the component that sent it must get a new one"
            ) from None
        except jwt.PyJWTError as exc:
            raise _refused(f"it does not verify with this platform's key ({exc})") from None
        subject = str(claims["sub"])
        namespace, _, name = subject.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
        if not subject.startswith(SERVICE_ACCOUNT_PREFIX) or not namespace or not name:
            raise _refused(f"its subject {subject!r} is not a service account")
        return service_account(namespace, name)


def _refused(why: str) -> Unauthorized:
    return Unauthorized(f"the service-account token is not valid: {why}")
