"""``modelplane auth whoami`` and ``modelplane auth can-i VERB KIND [NAME]``, as kubectl has them,
and ``modelplane auth hash-token`` (a token's digest, for a token file).

Both ask the server (Kubernetes' ``SelfSubjectReview`` and ``SelfSubjectAccessReview``), so the
answer is the server's: the identity its authentication gave the token, and the rules a write
passes there (operator-owned kinds, ``/status``, admission Policies).
"""

from __future__ import annotations

import sys

import click

from modelplane.cli._context import connection_options, settings
from modelplane.cli._kinds import kind
from modelplane.cli._output import document_output_option, print_document


@click.group()
def auth() -> None:
    """Who the server takes you for, and what it lets you do."""


@auth.command()
@document_output_option
@connection_options()
def whoami(output: str | None) -> None:
    """Print the user and groups the server's authentication gives your token."""
    from modelplane.server import WHOAMI_PATH

    with settings().client() as client:
        review = client.request(
            "POST",
            WHOAMI_PATH,
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
    if output is not None:
        print_document(review, output)
        return
    user = (review.get("status") or {}).get("userInfo") or {}
    click.echo(f"{'ATTRIBUTE':<10} VALUE")
    click.echo(f"{'Username':<10} {user.get('username', '')}")
    click.echo(f"{'Groups':<10} [{' '.join(user.get('groups') or [])}]")


@auth.command("can-i")
@click.argument("verb")
@click.argument("kind_name", metavar="KIND")
@click.argument("name", required=False)
@click.option("--subresource", type=click.Choice(["status"]), help="Ask about `/status`.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; the exit code answers.")
@connection_options()
def can_i(
    verb: str, kind_name: str, name: str | None, subresource: str | None, quiet: bool
) -> None:
    """Whether you may VERB objects of KIND (NAME): prints yes or no; exit 0 for yes, 1 for no.

    VERB is create, update, patch, delete, get, list or watch; KIND any name `get` takes.
    """
    from modelplane.server import CAN_I_PATH

    s = settings()
    info = kind(kind_name)
    attributes: dict[str, str] = {
        "verb": verb,
        "group": info.group,
        "resource": info.plural,
    }
    if info.namespaced:
        attributes["namespace"] = s.namespace
    if name:
        attributes["name"] = name
    if subresource:
        attributes["subresource"] = subresource
    with s.client() as client:
        review = client.request(
            "POST",
            CAN_I_PATH,
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            },
        )
    status = review.get("status") or {}
    allowed = bool(status.get("allowed"))
    if not quiet:
        reason = str(status.get("reason") or "")
        click.echo("yes" if allowed else "no" + (f" - {reason}" if reason else ""))
    sys.exit(0 if allowed else 1)


@auth.command("hash-token")
def hash_token() -> None:
    """Read a token on stdin and print its digest, `sha256:<hex>`, for a token file.

    Write the digest in place of the token: `sha256:<hex>,alice,uid-1,"modelplane:namespace:team-a"`.
    The token itself stays with its owner; the file holds nothing a reader could use.
    """
    from modelplane.server import hash_token as digest

    token = sys.stdin.readline().strip()
    if not token:
        raise click.UsageError("no token on stdin: `echo -n TOKEN | modelplane auth hash-token`")
    if any(c.isspace() or c == "," for c in token):
        raise click.UsageError("a token has no spaces or commas; pass the token alone on stdin")
    click.echo(digest(token))
