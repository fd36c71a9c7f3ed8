"""``modelplane server`` and ``modelplane node``: two processes of the scaled-out shape.

``server`` is ``up`` without the per-process services: the REST API, and the controllers while it
holds the leader lease (run two or more on one PostgreSQL; one leads, the others stand by and take
over when its lease lapses). ``node`` is the node agent of one machine alone: it publishes the
machine's devices and runs the replicas placed on it, with ``/healthz``, ``/readyz`` and
``/metrics`` on its own port. Both stop gracefully on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import click

from modelplane.api import NODE_LEASE_SECONDS
from modelplane.cli._options import (
    AUTH_OPTIONS,
    UpOptions,
    database_url_option,
    encryption_key_option,
    home_option,
    listen_options,
    log_level_option,
    positive_option,
)
from modelplane.cli._up import (
    _STOP_TIMEOUT,
    MODEL_ROOT_OPTION,
    MODEL_SIGNING_KEY_OPTION,
    SERVER,
    _make_home,
    platform_options,
    run_platform,
    use_signing_key,
)


@click.command("server")
@platform_options
@positive_option(
    "--lease-duration",
    15.0,
    "Seconds the controllers' leader lease lasts: a standby server takes over this long after"
    " the leader stopped renewing it (at once when it stops gracefully).",
)
@positive_option(
    "--node-monitor-grace-period",
    NODE_LEASE_SECONDS,
    "Seconds a node agent may go without renewing its lease before its Node is marked"
    " Ready=Unknown and the replicas placed there are placed on other nodes.",
)
def server(**options: Any) -> None:
    """Run the REST API and, while this process leads, the controllers (no node agent, no agents).

    Run several on one PostgreSQL (--database-url) behind a load balancer: all serve the API,
    one at a time runs the controllers (leader election on a lease in the store)."""
    auth_flags = {name: options.pop(name) for name in AUTH_OPTIONS}
    run_platform(UpOptions(**options), auth_flags, SERVER)


class _Node:
    """The node agent's services, started once its probe server listens, stopped in reverse."""

    def __init__(
        self, store: Any, name: str, home: Path, model_roots: list[str], lease_duration: float
    ) -> None:
        from modelplane import platform

        self.name = name
        self.services = platform.node_services(
            store,
            node=name,
            home=str(home),
            model_roots=model_roots,
            lease_duration=lease_duration,
        )
        self._started = threading.Event()

    def on_started(self, url: str) -> None:
        from modelplane.drivers import LocalDevices

        for service in self.services:
            if isinstance(service, LocalDevices):
                service.metrics_url = url  # on the Node, for Prometheus' service discovery
            service.start()
        self._started.set()
        click.echo(f"Modelplane node {self.name} is up; probes at {url} (Ctrl-C to stop).")

    @property
    def started(self) -> bool:
        return self._started.is_set()

    def readiness(self) -> str | None:
        return None if self._started.is_set() else "the node agent is starting"

    def gauges(self) -> dict[str, float]:
        return {f'modelplane_ready{{node="{self.name}"}}': float(self._started.is_set())}

    def stop(self) -> None:
        self._started.clear()
        for service in reversed(self.services):
            service.stop(_STOP_TIMEOUT)


def _probe_server_class() -> type[Any]:
    import uvicorn

    class ProbeServer(uvicorn.Server):
        """uvicorn's server that reports where it listens, and returns on SIGINT or SIGTERM
        (uvicorn would re-raise the signal after its graceful shutdown, ending the process before
        the node agent stops its replicas)."""

        def __init__(self, config: uvicorn.Config, on_started: Callable[[str], None]) -> None:
            super().__init__(config)
            self._on_started = on_started

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                bound = self.servers[0].sockets[0].getsockname()
                self._on_started(f"http://{bound[0]}:{bound[1]}")

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            signals = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return ProbeServer


@click.command("node")
@listen_options(8471)
@home_option("The node's folder: model artifacts, replica files; sets MODELPLANE_HOME.")
@database_url_option
@encryption_key_option
@click.option(
    "--node-name",
    envvar="NODE_NAME",
    metavar="NAME",
    help="This machine's Node name (env NODE_NAME; default: the host name, lower case).",
)
@MODEL_ROOT_OPTION
@MODEL_SIGNING_KEY_OPTION
@positive_option(
    "--node-lease-duration",
    NODE_LEASE_SECONDS,
    "Seconds the node's heartbeat lease lasts (renewed every third of it): once it lapses, the"
    " servers mark the Node Ready=Unknown and place its replicas elsewhere.",
)
@log_level_option("How much the node agent logs (to stderr).")
def node(
    host: str,
    port: int,
    home: str,
    database_url: str | None,
    encryption_key_file: str | None,
    node_name: str | None,
    model_roots: tuple[str, ...],
    model_signing_key: str | None,
    node_lease_duration: float,
    log_level: str,
) -> None:
    """Run the node agent of this machine: publish its devices, run the replicas placed on it."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvicorn
    from starlette.applications import Starlette

    from modelplane.api import check_dns_subdomain
    from modelplane.cli._probes import probe_routes
    from modelplane.drivers import accelerator_registry, local_accelerators, local_node_name
    from modelplane.store import default_url, open_store

    name = node_name or local_node_name()
    try:
        check_dns_subdomain(name, "--node-name")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--node-name") from None
    home_dir = _make_home(home)
    use_signing_key(model_signing_key)
    store = open_store(database_url or default_url(), encryption_key_file=encryption_key_file)
    agent = _Node(
        store,
        name,
        home_dir,
        [str(Path(r).absolute()) for r in model_roots],
        node_lease_duration,
    )
    try:
        accelerators = accelerator_registry(local_accelerators(name))
        app = Starlette(routes=probe_routes(agent.readiness, agent.gauges, [accelerators]))
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        try:
            _probe_server_class()(config, agent.on_started).run()
        except SystemExit:  # uvicorn's answer to a port it cannot bind, after logging why
            raise click.ClickException(f"cannot listen on {host}:{port} (see above)") from None
    finally:
        agent.stop()
        store.close()
    click.echo("Modelplane node stopped.")
