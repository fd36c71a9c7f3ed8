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
from pathlib import Path
from typing import Any

import click

from modelplane.api import ADMIN_GROUP, AUTHENTICATED_GROUP, Principal
from modelplane.api.errors import ModelplaneError
from modelplane.cli._agents import parse_packages
from modelplane.cli._apply import run_apply
from modelplane.cli._context import Settings
from modelplane.cli._options import (
    authentication,
    authentication_options,
    egress_rules,
    server_options,
    tls_options,
)
from modelplane.cli._output import echo_error
from modelplane.store import Store, redact_url

#: who up's own clients are: the operator who started it (an administrator)
UP_PRINCIPAL = Principal("system:modelplane:up", frozenset({ADMIN_GROUP, AUTHENTICATED_GROUP}))
_DEFAULT_PORT = 8470
_STOP_TIMEOUT = 15.0


def _banner(api_url: str, store_url: str, home: Path, auth_flags: dict[str, Any]) -> str:
    ways = [
        *([f"bearer tokens from {auth_flags['token_file']}"] if auth_flags["token_file"] else []),
        *([f"JWTs of {auth_flags['oidc_issuer_url']}"] if auth_flags["oidc_issuer_url"] else []),
    ]
    auth = ", ".join(ways) or "none (anyone who can reach it)"
    return "\n".join(
        [
            "Modelplane is up.",
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


@click.command()
@server_options(
    _DEFAULT_PORT,
    home_help="Folder for Modelplane's files (the SQLite store...); sets MODELPLANE_HOME.",
    log_help="How much the server and controllers log (to stderr).",
)
@authentication_options
@tls_options
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    type=click.Path(exists=True, allow_dash=True),
    metavar="PATH",
    help="Apply these manifests once the server listens; repeatable.",
)
@click.option(
    "--inventory",
    "inventories",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE",
    help="Publish this device inventory (`modelplane sim cluster` output) at start; repeatable.",
)
@click.option(
    "--model-root",
    "model_roots",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    metavar="DIR",
    help="A folder whose files a Model version's local `source` may name; repeatable (default:"
    " none, only artifacts imported with `modelplane models import`).",
)
@click.option(
    "--agent-packages",
    metavar="MOD,...",
    default="",
    help="Installed Python packages an Agent without a bundle may name in its entrypoint"
    " (default: none; `apply -f` of an Agent's folder uploads its code as a bundle).",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    help="Largest request body accepted (default 3 MiB).",
)
def up(
    host: str,
    port: int,
    home: str,
    database_url: str | None,
    tls_cert_file: str | None,
    tls_private_key_file: str | None,
    encryption_key_file: str | None,
    upstream_allow: tuple[str, ...],
    allow_loopback_upstreams: bool,
    paths: tuple[str, ...],
    inventories: tuple[str, ...],
    model_roots: tuple[str, ...],
    agent_packages: str,
    max_body_bytes: int | None,
    log_level: str,
    **auth_flags: Any,
) -> None:
    """Run Modelplane on this machine: store, controllers and API server in one process."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    home_dir = Path(home).expanduser().absolute()
    try:
        home_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(
            f"cannot create the home folder {home_dir} ({exc.strerror or exc}); pass --home with"
            " a writable folder"
        ) from None
    os.environ["MODELPLANE_HOME"] = str(home_dir)
    if (tls_cert_file is None) != (tls_private_key_file is None):
        raise click.UsageError(
            "--tls-cert-file and --tls-private-key-file go together: pass both to serve HTTPS,"
            " or neither"
        )

    # imported here: the other commands need none of this, and start faster without it
    from modelplane import platform
    from modelplane.control import Manager
    from modelplane.server import DEFAULT_MAX_BODY_BYTES, TLS, serve
    from modelplane.store import default_url, open_store

    packages = parse_packages(agent_packages)
    roots = [str(Path(r).absolute()) for r in model_roots]
    egress = egress_rules(upstream_allow, allow_loopback_upstreams)
    shown_auth = dict(auth_flags)
    tokens, oidc = authentication(auth_flags, egress)
    if tokens is None and oidc is not None:
        tokens = {}  # up's own clients still need their token
    # up's own clients (the -f apply, the rollout controller's samples, agents calling models)
    # authenticate with a token that exists only in this process's memory
    internal_token = secrets.token_urlsafe(32) if tokens is not None else None
    if tokens is not None and internal_token is not None:
        tokens[internal_token] = UP_PRINCIPAL
    tls = (
        TLS(tls_cert_file, tls_private_key_file) if tls_cert_file and tls_private_key_file else None
    )
    if tls is not None:
        try:
            tls.check()
        except ModelplaneError as exc:
            raise click.ClickException(str(exc)) from None
    own_ca = _trust_own_certificate(home_dir, tls.cert_file) if tls is not None else None
    store = open_store(database_url or default_url(), encryption_key_file=encryption_key_file)
    if inventories:
        _publish_inventory(store, inventories)
    manager = Manager(
        store,
        identity=f"{socket.gethostname()}-{os.getpid()}",
        controllers=platform.controllers(store, model_roots=roots, api_token=internal_token),
    )
    services: list[platform.Service] = []
    controllers_started = threading.Event()

    def readiness() -> str | None:
        return None if controllers_started.is_set() else "the controllers are starting"

    def on_started(api_url: str) -> None:
        # the port is ours now: a second `up` on a busy port fails before touching controllers
        # the gateway answers on this same address: the rollout controller reads samples there
        os.environ.setdefault("MODELPLANE_GATEWAY_URL", api_url)
        manager.start()
        services.extend(
            platform.services(
                store,
                api_url=api_url,
                home=str(home_dir),
                model_roots=roots,
                agent_packages=packages,
                api_token=internal_token,
                egress=egress,
            )
        )
        for service in services:
            service.start()
        controllers_started.set()
        click.echo(_banner(api_url, store.url, home_dir, shown_auth))
        if paths:
            # as the operator who started up: -f may hold operator-owned kinds and agent code
            threading.Thread(
                target=_apply_initial,
                args=(api_url, internal_token, paths, own_ca),
                name="apply",
                daemon=True,
            ).start()

    try:
        serve(
            store,
            host=host,
            port=port,
            tokens=tokens,
            oidc=oidc,
            max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
            readiness=readiness,
            on_started=on_started,
            install_signal_handlers=True,
            routes=platform.routes(store, home=str(home_dir), egress=egress),
            openapi=platform.openapi(),
            tls=tls,
        )
        click.echo("Stopping...")
    finally:
        controllers_started.clear()
        for service in reversed(services):
            service.stop(_STOP_TIMEOUT)
        manager.stop(_STOP_TIMEOUT)
        store.close()
    click.echo("Modelplane stopped.")
