"""Options several commands share, declared once: where a server listens, the platform's home and
store, the manifests to read, the log level, the encryption key of Secrets, the egress rules for model upstreams, and a
number that must be above zero, and a count.

Also the values they arrive as where several modules read them: :class:`UpOptions` (``up``,
``server`` and the scale-out launch) and the names of the authentication options
(:data:`AUTH_OPTIONS`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from modelplane.api import NODE_LEASE_SECONDS
from modelplane.egress import EgressRules

if TYPE_CHECKING:
    from modelplane.api import Principal
    from modelplane.server import JWTVerifier, ServiceAccountTokens

F = TypeVar("F", bound=Callable[..., object])

#: what --home means where a command says no more
_HOME_HELP = "Folder of the default SQLite store and encryption key; sets MODELPLANE_HOME."


def listen_options(default_port: int) -> Callable[[F], F]:
    """``--host`` and ``--port``: the address a server listens on."""

    def decorate(f: F) -> F:
        f = click.option(
            "--port",
            type=click.IntRange(0, 65535),
            default=default_port,
            show_default=True,
            help="Port to listen on (0: any free port).",
        )(f)
        return click.option(
            "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
        )(f)

    return decorate


def home_option(help: str = _HOME_HELP) -> Callable[[F], F]:
    """``--home``: the platform's folder (env MODELPLANE_HOME, default ``.modelplane``)."""
    return click.option(
        "--home",
        type=click.Path(file_okay=False),
        envvar="MODELPLANE_HOME",
        default=".modelplane",
        show_default=True,
        help=help,
    )


def database_url_option(f: F) -> F:
    """``--database-url``: the store to open (env MODELPLANE_DATABASE_URL)."""
    return click.option(
        "--database-url",
        envvar="MODELPLANE_DATABASE_URL",
        metavar="URL",
        help="Store URL: sqlite:///path.db or postgresql://user@host/db (default: SQLite under home).",
    )(f)


def log_level_option(help: str | None = None) -> Callable[[F], F]:
    """``--log-level``: how much a long-running command logs (to stderr)."""
    return click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        default="warning",
        show_default=True,
        help=help,
    )


def positive_option(flag: str, default: float, help: str) -> Callable[[F], F]:
    """A number above zero: a duration in seconds, a rate."""
    return click.option(
        flag,
        type=click.FloatRange(min=0, min_open=True),
        default=default,
        show_default=True,
        help=help,
    )


def count_option(flag: str, default: int, help: str) -> Callable[[F], F]:
    """A whole number of zero or more: how many of something."""
    return click.option(
        flag,
        type=click.IntRange(min=0),
        default=default,
        show_default=True,
        help=help,
    )


def existing_option(
    *decls: str,
    metavar: str,
    help: str,
    multiple: bool = False,
    file_okay: bool = True,
    dir_okay: bool = True,
    allow_dash: bool = False,
) -> Callable[[F], F]:
    """An option naming files or folders that must exist (click checks them before up runs)."""
    return click.option(
        *decls,
        multiple=multiple,
        type=click.Path(exists=True, file_okay=file_okay, dir_okay=dir_okay, allow_dash=allow_dash),
        metavar=metavar,
        help=help,
    )


def manifests_option(help: str, *, required: bool = False) -> Callable[[F], F]:
    """``-f/--filename PATH``, repeatable, into ``paths``: manifest files, folders or ``-``."""
    return click.option(
        "-f",
        "--filename",
        "paths",
        multiple=True,
        required=required,
        metavar="PATH",
        help=help,
    )


def encryption_key_option(f: F) -> F:
    """``--encryption-key-file``: the key Secrets are encrypted with at rest."""
    return click.option(
        "--encryption-key-file",
        type=click.Path(dir_okay=False),
        envvar="MODELPLANE_ENCRYPTION_KEY_FILE",
        help=(
            "Key file Secrets are encrypted with in the database (created, mode 0600, when"
            " missing). Default: encryption.key under home. Every process sharing a database"
            " needs the same one."
        ),
    )(f)


def egress_options(f: F) -> F:
    """``--upstream-allow`` and ``--allow-loopback-upstreams``: hosts upstream Models may name."""
    f = click.option(
        "--allow-loopback-upstreams",
        is_flag=True,
        help=(
            "Let upstream Model versions (and, in up, agents' HTTP tools) call loopback"
            " addresses (a provider on this machine: embedded mode, tests). Link-local and"
            " metadata addresses stay refused."
        ),
    )(f)
    return click.option(
        "--upstream-allow",
        multiple=True,
        metavar="HOST|CIDR",
        help=(
            "Hosts upstream Model versions (and, in up, agents' HTTP tools) may call:"
            " api.example.com, *.example.com or 10.0.0.0/8; repeatable. Without any, every host"
            " but loopback, link-local and metadata addresses is allowed."
        ),
    )(f)


def egress_rules(allow: tuple[str, ...], allow_loopback: bool) -> EgressRules:
    """The rules the options describe; a usage error names a bad entry."""
    try:
        return EgressRules.parse(allow, allow_loopback=allow_loopback)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--upstream-allow") from None


def server_options(
    default_port: int, *, home_help: str = _HOME_HELP, log_help: str | None = None
) -> Callable[[F], F]:
    """The options of every command that serves from the store (``up``, ``gateway``): listen
    address, home, store, Secrets key, egress rules and log level."""

    def decorate(f: F) -> F:
        for option in (
            log_level_option(log_help),
            egress_options,
            encryption_key_option,
            database_url_option,
            home_option(home_help),
            listen_options(default_port),
        ):
            f = option(f)
        return f

    return decorate


def tls_options(f: F) -> F:
    """``--tls-cert-file`` and ``--tls-private-key-file``: serve HTTPS (``up``, ``gateway``)."""
    f = existing_option(
        "--tls-private-key-file",
        dir_okay=False,
        metavar="FILE",
        help="The private key (PEM) of --tls-cert-file.",
    )(f)
    return existing_option(
        "--tls-cert-file",
        dir_okay=False,
        metavar="FILE",
        help="Serve HTTPS with this certificate (PEM, intermediates after it); needs"
        " --tls-private-key-file. It must name the address the server listens on.",
    )(f)


def authentication_options(f: F) -> F:
    """``--token-file`` and the ``--oidc-*`` flags: who may call a server (``up``, ``gateway``),
    as kube-apiserver's ``--token-auth-file`` and ``--oidc-*``."""
    oidc = [
        ("--oidc-username-prefix", "", "Prefix of every OIDC user name (e.g. `oidc:`)."),
        ("--oidc-groups-claim", "groups", "The JWT claim holding the user's groups."),
        ("--oidc-username-claim", "sub", "The JWT claim naming the user."),
    ]
    for flag, default, text in oidc:
        f = click.option(flag, default=default, show_default=True, help=text)(f)
    f = existing_option(
        "--oidc-jwks-file",
        dir_okay=False,
        metavar="FILE",
        help="The issuer's signing keys (a JWKS document); default: fetched from the issuer's"
        " discovery document (its jwks_uri), under the egress rules.",
    )(f)
    f = click.option(
        "--oidc-client-id",
        metavar="ID",
        help="The client id JWTs must name in `aud`; needed with --oidc-issuer-url.",
    )(f)
    f = existing_option(
        "--service-account-key-file",
        dir_okay=False,
        metavar="FILE",
        help="The Ed25519 private key (PEM) that signs and verifies the tokens agents' model"
        " calls send as their service accounts; the same file for every process of a scale-out"
        " (`openssl genpkey -algorithm ed25519`). Default: a key made in memory at start.",
    )(f)
    f = click.option(
        "--oidc-issuer-url",
        metavar="URL",
        help="Accept JWTs of this OpenID Connect issuer (its `iss`) as bearer tokens.",
    )(f)
    return click.option(
        "--token-file",
        type=click.Path(dir_okay=False),
        help="Require a bearer token listed in this file (one per line, `sha256:<hex>,user,uid,"
        '"group1,group2"`, the digest from `modelplane auth hash-token`; members of'
        " system:masters are administrators, of modelplane:namespace:N members of N).",
    )(f)


#: the options :func:`authentication_options` declares, as click names them
AUTH_OPTIONS = (
    "token_file",
    "oidc_issuer_url",
    "oidc_client_id",
    "oidc_jwks_file",
    "oidc_username_claim",
    "oidc_groups_claim",
    "oidc_username_prefix",
    "service_account_key_file",
)


def authentication(
    options: dict[str, Any], egress: EgressRules
) -> tuple[dict[str, Principal] | None, JWTVerifier | None]:
    """``(tokens, verifier)`` from the options :func:`authentication_options` declared (popped
    from ``options``): the token file's ``{token: principal}`` (None without a file) and the JWT
    verifier (None without ``--oidc-issuer-url``). A plain-text token is warned about on stderr."""
    from modelplane.api.errors import ModelplaneError
    from modelplane.server import OIDC, JWTVerifier, load_tokens

    token_file = options.pop("token_file")
    issuer = options.pop("oidc_issuer_url")
    settings = OIDC(
        issuer_url=str(issuer or ""),
        client_id=str(options.pop("oidc_client_id") or ""),
        jwks_file=_text_or_none(options.pop("oidc_jwks_file")),
        username_claim=str(options.pop("oidc_username_claim")),
        groups_claim=str(options.pop("oidc_groups_claim")),
        username_prefix=str(options.pop("oidc_username_prefix")),
    )
    warn = functools.partial(click.echo, err=True)
    try:
        tokens = (
            load_tokens(str(token_file), on_plain_text=lambda m: warn(f"warning: {m}"))
            if token_file
            else None
        )
        verifier = JWTVerifier(settings, egress=egress) if issuer else None
    except ModelplaneError as exc:
        raise click.ClickException(exc.message) from None
    return tokens, verifier


def service_account_tokens(path: str | None, *, auth: bool) -> ServiceAccountTokens | None:
    """The service-account token maker of ``--service-account-key-file`` (popped by the caller):
    its key, else one made in memory when ``auth`` is on; None when authentication is off."""
    from modelplane.api.errors import ModelplaneError
    from modelplane.server import ServiceAccountTokens

    if path is None:
        return ServiceAccountTokens() if auth else None
    try:
        return ServiceAccountTokens.from_file(path)
    except ModelplaneError as exc:
        raise click.ClickException(exc.message) from None


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class UpOptions:
    """``up``'s command-line options (and ``server``'s), as click passes them, but for the
    authentication options (:data:`AUTH_OPTIONS`), which are handed on apart."""

    host: str
    port: int
    home: str
    database_url: str | None
    tls_cert_file: str | None
    tls_private_key_file: str | None
    encryption_key_file: str | None
    upstream_allow: tuple[str, ...]
    allow_loopback_upstreams: bool
    paths: tuple[str, ...]
    inventories: tuple[str, ...]
    model_roots: tuple[str, ...]
    model_signing_key: str | None
    max_body_bytes: int | None
    audit_retention: str | None
    log_level: str
    agent_packages: str = ""
    index_snapshot: str | None = None
    #: up --scale-out: start these as child processes instead (``_launch``)
    scale_out: bool = False
    servers: int = 2
    gateways: int = 2
    agent_workers: int = 1
    #: server: seconds the controllers' leader lease lasts
    lease_duration: float = 15.0
    #: server: seconds a node agent's lapsed lease is given before its claims move
    node_monitor_grace_period: float = NODE_LEASE_SECONDS
