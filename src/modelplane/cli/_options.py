"""Options several commands share, declared once: where a server listens, the platform's home and
store, the log level, the encryption key of Secrets, the egress rules for model upstreams, and a
number that must be above zero, and a count."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from modelplane.egress import EgressRules

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
