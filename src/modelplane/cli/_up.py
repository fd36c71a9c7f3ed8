"""``modelplane up``: the whole platform in one process (embedded mode).

Opens the store (SQLite under ``--home`` unless ``--database-url`` names another), serves the REST
API, and once it listens starts the controller manager and applies the ``-f`` manifests through
the same code as ``modelplane apply``. Ctrl-C or SIGTERM stops the server (open watches are ended,
running requests finish), then the controllers, then closes the store, and exits 0.

With ``--tls-cert-file`` and ``--tls-private-key-file`` it serves HTTPS only (kubectl sends a
bearer token only over HTTPS). Its own clients reach it at the address it listens on, so the
certificate must name that address (``127.0.0.1`` by default). The ``-f`` apply trusts the served
certificate itself. The other clients in the process (the rollout controller, agents calling
models) trust it through ``SSL_CERT_FILE`` (the usual CAs plus that certificate), which suffices
when it is self-signed or issued by a CA they trust already.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from modelplane.api import ADMIN_GROUP, AUTHENTICATED_GROUP, Principal
from modelplane.api.errors import ModelplaneError
from modelplane.cli._agents import parse_packages
from modelplane.cli._apply import run_apply
from modelplane.cli._context import Settings
from modelplane.cli._options import (
    AUTH_OPTIONS,
    F,
    UpOptions,
    authentication,
    authentication_options,
    count_option,
    egress_rules,
    existing_option,
    server_options,
    service_account_tokens,
    tls_options,
)
from modelplane.cli._output import echo_error
from modelplane.store import Store, redact_url

if TYPE_CHECKING:
    from modelplane.policy import AuditLog
    from modelplane.server import TLS

#: who up's own clients are: the operator who started it (an administrator)
UP_PRINCIPAL = Principal("system:modelplane:up", frozenset({ADMIN_GROUP, AUTHENTICATED_GROUP}))
_DEFAULT_PORT = 8470
_STOP_TIMEOUT = 15.0


def _banner(
    api_url: str, store_url: str, home: Path, auth_flags: dict[str, Any], title: str
) -> str:
    ways = [
        *([f"bearer tokens from {auth_flags['token_file']}"] if auth_flags["token_file"] else []),
        *([f"JWTs of {auth_flags['oidc_issuer_url']}"] if auth_flags["oidc_issuer_url"] else []),
    ]
    auth = ", ".join(ways) or "none (anyone who can reach it)"
    return "\n".join(
        [
            title,
            f"  API:      {api_url}",
            f"  OpenAPI:  {api_url}/openapi.json",
            f"  Store:    {redact_url(store_url)}",
            f"  Home:     {home}",
            f"  Auth:     {auth}",
            "Press Ctrl-C to stop.",
        ]
    )


def _trust_own_certificate(home: Path, cert_file: str) -> str:
    """A CA bundle of the usual CAs and the served certificate, which up's own HTTP clients
    (created after this, in this process) trust through ``SSL_CERT_FILE``; its path.

    Written under ``home``: the clients read it whenever they are created, for as long as up
    runs. The usual CAs stay, for the model providers agents and the gateway call out to.
    """
    import certifi

    usual = os.environ.get("SSL_CERT_FILE") or certifi.where()
    bundle = home / "tls" / "trusted-cas.pem"
    bundle.parent.mkdir(parents=True, exist_ok=True)
    text = Path(usual).read_text() + "\n" + Path(cert_file).read_text()
    bundle.write_text(text)
    os.environ["SSL_CERT_FILE"] = str(bundle)
    return str(bundle)


def _apply_initial(
    api_url: str, token: str | None, paths: tuple[str, ...], ca_file: str | None
) -> None:
    """Apply the ``-f`` manifests to the server that just started (a background thread)."""
    try:
        s = Settings(server=api_url, token=token, ca_file=ca_file)
        with s.client() as client:
            ok = run_apply(client, paths, s)
    except Exception as exc:  # a thread has no caller to report to: say it here
        echo_error(f"applying {', '.join(paths)} failed: {exc}")
        return
    if not ok:
        echo_error("some manifests were not applied (see above); Modelplane keeps running")


def _publish_inventory(store: Store, paths: tuple[str, ...]) -> None:
    from modelplane.api.errors import ModelplaneError
    from modelplane.drivers import file_publication, load_inventory, publish

    try:
        publish(store, file_publication(load_inventory(paths), "inventory"))
    except ModelplaneError as exc:
        store.close()
        causes = "".join(f"\n  {c.location or c.field}: {c.message}" for c in exc.causes)
        raise click.ClickException(f"--inventory: {exc}{causes}") from None


def _make_home(home: str) -> Path:
    home_dir = Path(home).expanduser().absolute()
    try:
        home_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(
            f"cannot create the home folder {home_dir} ({exc.strerror or exc}); pass --home with"
            " a writable folder"
        ) from None
    os.environ["MODELPLANE_HOME"] = str(home_dir)
    return home_dir


def _tls(cert_file: str | None, private_key_file: str | None) -> TLS | None:
    """The certificate and key to serve HTTPS with, checked to be usable; None: plain HTTP."""
    from modelplane.server import TLS

    if not cert_file or not private_key_file:
        return None
    tls = TLS(cert_file, private_key_file)
    try:
        tls.check()
    except ModelplaneError as exc:
        raise click.ClickException(str(exc)) from None
    return tls


def use_signing_key(path: str | None) -> None:
    """Verify signed Model versions with the public key at ``path`` in this process: read by the
    Model controller and the node agent (``serving._signed``)."""
    if path is not None:
        from modelplane.serving import MODEL_SIGNING_KEY_ENV

        os.environ[MODEL_SIGNING_KEY_ENV] = str(Path(path).absolute())


class _Settings:
    """What ``up`` serves with, read and checked from its options before anything starts: a
    usage error names the bad option, in the order a person fixes them."""

    def __init__(self, o: UpOptions, auth_flags: dict[str, Any]) -> None:
        self.home = _make_home(o.home)
        if (o.tls_cert_file is None) != (o.tls_private_key_file is None):
            raise click.UsageError(
                "--tls-cert-file and --tls-private-key-file go together: pass both to serve"
                " HTTPS, or neither"
            )
        self.agent_packages = parse_packages(o.agent_packages)
        self.model_roots = [str(Path(r).absolute()) for r in o.model_roots]
        use_signing_key(o.model_signing_key)
        if o.index_snapshot is not None:
            # read by the agent runtime of this process: installs are checked against it
            from modelplane.agents import INDEX_SNAPSHOT_ENV

            os.environ[INDEX_SNAPSHOT_ENV] = str(Path(o.index_snapshot).absolute())
        self.egress = egress_rules(o.upstream_allow, o.allow_loopback_upstreams)
        #: the authentication options as given, for the banner
        self.auth_flags = dict(auth_flags)
        #: ``{token: principal}`` from --token-file, with up's own token added (also when only
        #: JWTs authenticate: up's own clients need their token); None: no authentication
        flags = dict(auth_flags)
        key_file = flags.pop("service_account_key_file", None)
        self.tokens, self.oidc = authentication(flags, self.egress)
        if self.tokens is None and self.oidc is not None:
            self.tokens = {}
        # up's own clients (the -f apply, the rollout controller's samples, agents calling
        # models) authenticate with a token that exists only in this process's memory
        self.internal_token = secrets.token_urlsafe(32) if self.tokens is not None else None
        if self.tokens is not None and self.internal_token is not None:
            self.tokens[self.internal_token] = UP_PRINCIPAL
        # an Agent's model calls send its service account's token, signed with the key of
        # --service-account-key-file, else one that exists only in this process's memory
        self.service_accounts = service_account_tokens(key_file, auth=self.tokens is not None)
        self.tls = _tls(o.tls_cert_file, o.tls_private_key_file)
        #: the CA bundle up's own clients trust when it serves HTTPS
        self.own_ca = (
            _trust_own_certificate(self.home, self.tls.cert_file) if self.tls is not None else None
        )


class _Embedded:
    """The controllers and services ``up`` runs beside the API server: started once the server
    listens (a second ``up`` on a busy port fails before touching them), stopped in reverse."""

    def __init__(
        self, store: Store, settings: _Settings, o: UpOptions, audit: AuditLog, role: Role
    ) -> None:
        from modelplane import platform
        from modelplane.control import Manager

        self.store = store
        self.audit = audit
        self.settings = settings
        self.paths = o.paths
        self.role = role
        self.manager = Manager(
            store,
            identity=f"{socket.gethostname()}-{os.getpid()}",
            controllers=platform.controllers(
                store,
                model_roots=settings.model_roots,
                api_token=settings.internal_token,
                egress=settings.egress,
                audit=audit,
                node_grace=o.node_monitor_grace_period,
            ),
            # the timings of LeaderElector's defaults (15, 10, 2), scaled to the lease
            lease_duration=o.lease_duration,
            renew_deadline=o.lease_duration * 2 / 3,
            retry_period=o.lease_duration * 2 / 15,
        )
        self.services: list[platform.Service] = []
        self._started = threading.Event()

    def readiness(self) -> str | None:
        return None if self._started.is_set() else "the controllers are starting"

    def gauges(self) -> dict[str, float]:
        """``/metrics``: whether this process leads the controllers, and is started."""
        who = f'{{identity="{self.manager.identity}"}}'
        return {
            f"modelplane_controller_leader{who}": float(self.manager.is_leader),
            f"modelplane_ready{who}": float(self._started.is_set()),
        }

    def on_started(self, api_url: str) -> None:
        from modelplane import platform

        s = self.settings
        # the gateway answers on this same address: the rollout controller reads samples there
        os.environ.setdefault("MODELPLANE_GATEWAY_URL", api_url)
        self.manager.start()
        if self.role.services:
            self.services.extend(
                platform.services(
                    self.store,
                    api_url=api_url,
                    home=str(s.home),
                    model_roots=s.model_roots,
                    agent_packages=s.agent_packages,
                    api_token=s.internal_token,
                    model_token=s.service_accounts.token if s.service_accounts else None,
                    egress=s.egress,
                    audit=self.audit,
                )
            )
        for service in self.services:
            service.start()
        self._started.set()
        click.echo(_banner(api_url, self.store.url, s.home, s.auth_flags, self.role.title))
        if self.paths:
            # as the operator who started up: -f may hold operator-owned kinds and agent code
            threading.Thread(
                target=_apply_initial,
                args=(api_url, s.internal_token, self.paths, s.own_ca),
                name="apply",
                daemon=True,
            ).start()

    def stop(self) -> None:
        """Stop the services, then the controllers, then the audit log, then close the store."""
        self._started.clear()
        for service in reversed(self.services):
            service.stop(_STOP_TIMEOUT)
        self.manager.stop(_STOP_TIMEOUT)
        self.audit.close(_STOP_TIMEOUT)
        self.store.close()


@dataclass(frozen=True)
class Role:
    """What a process of the platform runs beside the REST API and the controllers."""

    title: str  # the banner's first line
    services: bool  # the per-process services too (node agent, agents): up does, server not


UP = Role("Modelplane is up.", services=True)
SERVER = Role("Modelplane server is up (REST API; controllers while it leads).", services=False)

#: the options `up` and `server` share, declared once
MODEL_SIGNING_KEY_OPTION = existing_option(
    "--model-signing-key",
    "model_signing_key",
    dir_okay=False,
    metavar="PUB",
    help="The public key (PEM) signed Model versions are verified with before any load (see"
    " `modelplane models sign`); without it a version naming a signature is refused.",
)
MODEL_ROOT_OPTION = existing_option(
    "--model-root",
    "model_roots",
    multiple=True,
    file_okay=False,
    metavar="DIR",
    help="A folder whose files a Model version's local `source` may name; repeatable (default:"
    " none, only artifacts imported with `modelplane models import`).",
)


def platform_options(f: F) -> F:
    """The options of the commands that serve the REST API (``up``, ``server``)."""
    for option in (
        click.option(
            "--max-body-bytes",
            type=click.IntRange(min=1),
            help="Largest request body accepted (default 3 MiB).",
        ),
        click.option(
            "--audit-retention",
            metavar="DURATION",
            help="Keep audit records this long (30d, 36h); older ones are pruned (default: for"
            " ever).",
        ),
        MODEL_ROOT_OPTION,
        MODEL_SIGNING_KEY_OPTION,
        existing_option(
            "--inventory",
            "inventories",
            multiple=True,
            dir_okay=False,
            metavar="FILE",
            help="Publish this device inventory (`modelplane sim cluster` output) at start;"
            " repeatable.",
        ),
        existing_option(
            "-f",
            "--filename",
            "paths",
            multiple=True,
            allow_dash=True,
            metavar="PATH",
            help="Apply these manifests once the server listens; repeatable.",
        ),
        tls_options,
        authentication_options,
        server_options(
            _DEFAULT_PORT,
            home_help="Folder for Modelplane's files (the SQLite store...); sets MODELPLANE_HOME.",
            log_help="How much the server and controllers log (to stderr).",
        ),
    ):
        f = option(f)
    return f


@click.command()
@platform_options
@existing_option(
    "--index-snapshot",
    "index_snapshot",
    dir_okay=False,
    metavar="PATH",
    help="The index snapshot (`modelplane audit snapshot`) agents' package installs are checked"
    " against (default: $MODELPLANE_INDEX_SNAPSHOT); without one, tools that install packages"
    " are denied.",
)
@click.option(
    "--agent-packages",
    metavar="MOD,...",
    default="",
    help="Installed Python packages an Agent without a bundle may name in its entrypoint"
    " (default: none; `apply -f` of an Agent's folder uploads its code as a bundle).",
)
@click.option(
    "--scale-out",
    is_flag=True,
    help="Run each component as its own process instead (servers, gateways, agent workers, a"
    " node) on --database-url, a PostgreSQL; ports from --port up. See docs/scaleout.md.",
)
@count_option("--servers", 2, "With --scale-out: how many `modelplane server` processes.")
@count_option("--gateways", 2, "With --scale-out: how many `modelplane gateway` processes.")
@count_option("--agent-workers", 1, "With --scale-out: how many `modelplane agent-worker`s.")
def up(**options: Any) -> None:
    """Run Modelplane on this machine: store, controllers and API server in one process."""
    auth_flags = {name: options.pop(name) for name in AUTH_OPTIONS}
    o = UpOptions(**options)
    ctx = click.get_current_context()
    given = [
        f"--{n.replace('_', '-')}"
        for n in ("servers", "gateways", "agent_workers")
        if ctx.get_parameter_source(n) is click.core.ParameterSource.COMMANDLINE
    ]
    if given and not o.scale_out:
        raise click.UsageError(f"{', '.join(given)} go with --scale-out")
    if o.scale_out:
        from modelplane.cli._launch import launch

        raise SystemExit(launch(o, auth_flags))
    run_platform(o, auth_flags, UP)


def run_platform(o: UpOptions, auth_flags: dict[str, Any], role: Role) -> None:
    """Serve the REST API with the controllers (and, for ``up``, the services) until stopped."""
    logging.basicConfig(
        level=o.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = _Settings(o, auth_flags)
    # imported here: the other commands need none of this, and start faster without it
    from modelplane import platform
    from modelplane.cli._probes import metrics_openapi, metrics_route
    from modelplane.server import DEFAULT_MAX_BODY_BYTES, serve
    from modelplane.store import default_url, open_store

    store = open_store(o.database_url or default_url(), encryption_key_file=o.encryption_key_file)
    try:
        audit = platform.audit_log(store, retention=o.audit_retention)
    except ModelplaneError as exc:
        store.close()
        raise click.ClickException(str(exc)) from None
    if o.inventories:
        _publish_inventory(store, o.inventories)
    embedded = _Embedded(store, settings, o, audit, role)
    from modelplane.drivers import accelerator_registry, local_accelerators, local_node_name

    accelerators = accelerator_registry(local_accelerators(local_node_name(), store=store))
    relations = platform.relationships(store)  # one membership for the API, /v1 and /agents
    try:
        serve(
            store,
            host=o.host,
            port=o.port,
            tokens=settings.tokens,
            oidc=settings.oidc,
            service_accounts=settings.service_accounts,
            max_body_bytes=o.max_body_bytes or DEFAULT_MAX_BODY_BYTES,
            readiness=embedded.readiness,
            on_started=embedded.on_started,
            install_signal_handlers=True,
            routes=[
                metrics_route(embedded.gauges, [accelerators]),
                *platform.routes(
                    store,
                    home=str(settings.home),
                    egress=settings.egress,
                    audit=audit,
                    relations=relations,
                ),
            ],
            openapi=[*platform.openapi(), metrics_openapi()],
            tls=settings.tls,
            audit=audit,
            relations=relations,
        )
        click.echo("Stopping...")
    finally:
        embedded.stop()
    click.echo("Modelplane stopped.")
