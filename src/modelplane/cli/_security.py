"""Options the server-side commands (``up``, ``gateway``) share: the encryption key of Secrets and
the egress rules for model upstreams."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from modelplane.egress import EgressRules

F = TypeVar("F", bound=Callable[..., object])


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
