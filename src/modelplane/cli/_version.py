"""``modelplane version``: this CLI's version, and the server's when it answers."""

from __future__ import annotations

import click

from modelplane import __version__
from modelplane.api.errors import ModelplaneError, Unavailable
from modelplane.cli._context import connection_options, settings
from modelplane.cli._output import to_json


@click.command()
@click.option("-o", "--output", type=click.Choice(["json"]), help="Print one JSON object.")
@connection_options()
def version(output: str | None) -> None:
    """Print the client version, and the server version if the server can be reached.

    An unreachable server is reported but is not an error (exit code 0).
    """
    s = settings()
    server: dict[str, object] | None = None
    problem: str | None = None
    try:
        with s.client() as client:
            server = client.version()
    except Unavailable:
        problem = f"unreachable at {s.server}"
    except ModelplaneError as exc:
        problem = f"{s.server} answered: {exc}"
    if output == "json":
        document: dict[str, object] = {"client": {"version": __version__}, "server": server}
        if problem:
            document["serverError"] = problem
        click.echo(to_json(document))
        return
    click.echo(f"Client Version: {__version__}")
    if server is not None:
        click.echo(f"Server Version: {server.get('version')} (store: {server.get('store')})")
        click.echo(f"Server:         {s.server}")
    else:
        click.echo(f"Server:         {problem}")
