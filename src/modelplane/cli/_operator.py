"""``modelplane operator``: reconcile our custom resources in a Kubernetes cluster.

Runs in the cluster (its service account) or beside it (``--kubeconfig``): watches ``Endpoint``
and ``Model`` custom resources and keeps each Endpoint's Deployments, Services and
ResourceClaimTemplate as ``render kubernetes`` renders them, with the Endpoint's status written
back; serves the validating admission webhook at ``/validate`` and ``/healthz``, ``/readyz``
(ready once every watch has listed) and ``/metrics``. ``docs/kubernetes.md`` says how to run it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import click
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelplane import __version__
from modelplane.api import errors, json_object
from modelplane.cli._options import listen_options, log_level_option

#: an AdmissionReview carries one object; kube-apiserver's own request limit is 3 MiB
_REVIEW_LIMIT = 3 * 1024 * 1024


def _validate_route() -> Route:
    from modelplane.kube import review

    async def validate(request: Request) -> Response:
        try:
            body = json_object(await request.body(), limit=_REVIEW_LIMIT)
        except errors.ModelplaneError as exc:
            return JSONResponse(exc.to_status(), status_code=exc.code)
        return JSONResponse(await run_in_threadpool(review, body))

    return Route("/validate", validate, methods=["POST"])


@click.command("operator")
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="KUBECONFIG",
    help="A kubeconfig file (env KUBECONFIG); default: the pod's service account.",
)
@click.option("--context", "context", metavar="NAME", help="The kubeconfig context to use.")
@click.option(
    "--namespace",
    default="",
    metavar="NS",
    help="Reconcile only this namespace's Endpoints (default: every namespace).",
)
@click.option(
    "--image",
    default=f"modelplane:{__version__}",
    show_default=True,
    help="Container image of the model workers it creates.",
)
@listen_options(8490)
@click.option(
    "--tls-cert-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Serve HTTPS with this certificate (kube-apiserver calls webhooks only over HTTPS).",
)
@click.option("--tls-key-file", type=click.Path(exists=True, dir_okay=False))
@log_level_option("How much the operator logs (to stderr).")
def operator(
    kubeconfig: Path | None,
    context: str | None,
    namespace: str,
    image: str,
    host: str,
    port: int,
    tls_cert_file: str | None,
    tls_key_file: str | None,
    log_level: str,
) -> None:
    """Reconcile Endpoint custom resources in a cluster into Deployments, Services and claims."""
    import uvicorn

    from modelplane.cli._probes import probe_routes
    from modelplane.cli._server import _probe_server_class
    from modelplane.kube import KubeClient, KubeConfig, Operator

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if bool(tls_cert_file) != bool(tls_key_file):
        raise click.UsageError("--tls-cert-file and --tls-key-file go together")
    try:
        config = (
            KubeConfig.from_kubeconfig(kubeconfig, context)
            if kubeconfig
            else KubeConfig.in_cluster()
        )
    except (ValueError, KeyError, OSError) as exc:
        raise click.ClickException(f"cannot reach a cluster: {exc}") from None
    client = KubeClient(config)
    reconciler = Operator(client, image, namespace=namespace)
    stop = threading.Event()
    worker = threading.Thread(target=reconciler.run, args=(stop,), name="operator", daemon=True)
    worker.start()

    def readiness() -> str | None:
        return None if reconciler.synced.is_set() else "the watches have not listed yet"

    def gauges() -> dict[str, float]:
        return {"modelplane_operator_synced": float(reconciler.synced.is_set())}

    app = Starlette(routes=[*probe_routes(readiness, gauges), _validate_route()])
    uv = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        ssl_certfile=tls_cert_file,
        ssl_keyfile=tls_key_file,
    )

    def started(url: str) -> None:
        click.echo(f"Modelplane operator on {config.server}, serving {url}", err=True)

    try:
        _probe_server_class()(uv, started).run()
    except SystemExit:
        raise click.ClickException(f"cannot listen on {host}:{port} (see above)") from None
    finally:
        stop.set()
        worker.join(timeout=10)
        client.close()
    click.echo("Modelplane operator stopped.")
