"""``modelplane render kubernetes``: the platform and the given Endpoints as Kubernetes objects.

Runs locally (no server): reads and validates manifests, writes CRDs, the components' workloads
and RBAC, each Endpoint's Deployments, Services and ResourceClaimTemplate, and with ``--helm`` a
Helm chart of the same objects. ``docs/kubernetes.md`` says what is rendered and what is not yet.
"""

from __future__ import annotations

from pathlib import Path

import click

from modelplane import __version__
from modelplane.api import load_paths
from modelplane.cli._options import manifests_option
from modelplane.deploy import (
    DEFAULT_NAMESPACE,
    IMAGE_MARK,
    NAMESPACE_MARK,
    chart,
    render,
    to_yaml,
    write,
    write_chart,
)


@click.group("render")
def render_group() -> None:
    """Render the platform for another system to run (no server needed)."""


@render_group.command("kubernetes")
@manifests_option("Manifests (file, folder or -) whose Endpoints get replicas; repeatable.")
@click.option(
    "--namespace",
    default=DEFAULT_NAMESPACE,
    show_default=True,
    help="Namespace of the platform's components (Endpoints keep their own).",
)
@click.option(
    "--image",
    default=f"modelplane:{__version__}",
    show_default=True,
    help="Container image with Modelplane installed, for every container.",
)
@click.option(
    "-o",
    "--output",
    default="-",
    metavar="DIR|-",
    show_default=True,
    help="A folder to write 00-crds.yaml, 10-platform.yaml, 20-endpoints.yaml into, or - for"
    " standard output.",
)
@click.option(
    "--helm",
    "helm_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Also write a Helm chart of the same objects into this folder.",
)
def kubernetes(
    paths: tuple[str, ...], namespace: str, image: str, output: str, helm_dir: Path | None
) -> None:
    """CRDs, Deployments, Services, RBAC and ResourceClaimTemplates for Kubernetes.

    CRDs are generated from the kinds' schemas; the server, gateway, agent workers and node agent
    become Deployments (a DaemonSet for the node agent) in --namespace; each Endpoint in the
    manifests gets a Deployment and a Service per served version, and a resource.k8s.io/v1
    ResourceClaimTemplate for its devices. Apply the output with `kubectl apply -f DIR`.

    Not runnable yet: the server and node agent pods run `modelplane server` and `modelplane
    node`, which come with the scale-out step (docs/kubernetes.md says what else is not built).
    """
    manifests = load_paths(paths)
    rendered = render(manifests, namespace=namespace, image=image)
    written: list[Path] = []
    try:
        if output == "-":
            click.echo(to_yaml(rendered.all()), nl=False)
        else:
            written += write(rendered, Path(output))
        if helm_dir is not None:
            marked = render(manifests, namespace=NAMESPACE_MARK, image=IMAGE_MARK)
            written += write_chart(chart(marked, image), helm_dir)
    except OSError as exc:
        where = exc.filename or output
        raise click.ClickException(f"cannot write {where}: {exc.strerror or exc}") from None
    for path in written:
        click.echo(f"wrote {path}", err=True)
