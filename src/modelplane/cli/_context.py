"""Global options shared by every command that talks to the server.

They may be given before the command (``modelplane -n prod get models``) or after it
(``modelplane get models -n prod``), as with kubectl; a value given after the command wins. The
environment (``MODELPLANE_SERVER``, ``MODELPLANE_TOKEN``, ``MODELPLANE_TOKEN_FILE``,
``MODELPLANE_CA_FILE``) fills in what the command line leaves out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from modelplane.cli._client import DEFAULT_SERVER, Client, read_token_file
from modelplane.cli._output import echo_warning

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Settings:
    """Where the server is and who we are to it; one per invocation (``ctx.obj``)."""

    server: str = DEFAULT_SERVER
    token: str | None = None
    token_file: str | None = None
    namespace: str = "default"
    #: PEM file of the CAs an ``https://`` server's certificate is checked against
    ca_file: str | None = None
    #: True when ``-n`` was given on the command line (not just the default)
    namespace_given: bool = False
    #: the settings given on the command line rather than by the environment
    explicit: set[str] = field(default_factory=set)

    def resolved_token(self) -> str | None:
        """``--token`` if given, else the token in ``--token-file``, else None."""
        if self.token:
            return self.token
        if self.token_file:
            return read_token_file(self.token_file)
        return None

    def client(self) -> Client:
        return Client(
            self.server,
            token=self.resolved_token(),
            on_warning=echo_warning,
            ca_file=self.ca_file,
        )


def settings() -> Settings:
    """The :class:`Settings` of the running invocation."""
    return click.get_current_context().ensure_object(Settings)


def _store(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None:
            return
        s = ctx.ensure_object(Settings)
        # a token named on the command line beats one of the other form from the environment
        other = {"token": "token_file", "token_file": "token"}.get(attr)
        if ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE:
            s.explicit.add(attr)
            if other and other not in s.explicit:
                setattr(s, other, None)
        elif other in s.explicit:
            return
        setattr(s, attr, value)
        if attr == "namespace":
            s.namespace_given = True

    return callback


def connection_options(*, top_level: bool = False) -> Callable[[F], F]:
    """``--server``, ``--token``, ``--token-file``, ``--certificate-authority`` and ``-n``, stored
    into :class:`Settings`.

    Only the top-level copy reads the environment, so a value set there is not reset by the copy
    each command carries.
    """

    def setting(
        *flags: str, attr: str, metavar: str, envvar: str | None, help: str
    ) -> Callable[[F], F]:
        return click.option(
            *flags,
            metavar=metavar,
            envvar=envvar if top_level else None,
            expose_value=False,
            is_eager=True,
            callback=_store(attr),
            help=help,
        )

    def decorate(f: F) -> F:
        options = [
            setting(
                "--server",
                attr="server",
                metavar="URL",
                envvar="MODELPLANE_SERVER",
                help=f"Base URL of the Modelplane API (env MODELPLANE_SERVER; default {DEFAULT_SERVER}).",
            ),
            setting(
                "--token",
                attr="token",
                metavar="TOKEN",
                envvar="MODELPLANE_TOKEN",
                help="Bearer token for the API (env MODELPLANE_TOKEN).",
            ),
            setting(
                "--token-file",
                attr="token_file",
                metavar="PATH",
                envvar="MODELPLANE_TOKEN_FILE",
                help="File whose first line is the bearer token (env MODELPLANE_TOKEN_FILE).",
            ),
            setting(
                "--certificate-authority",
                attr="ca_file",
                metavar="FILE",
                envvar="MODELPLANE_CA_FILE",
                help="PEM file of the CA that issued an https:// server's certificate (env"
                " MODELPLANE_CA_FILE; default: the system's CAs).",
            ),
            setting(
                "-n",
                "--namespace",
                attr="namespace",
                metavar="NS",
                envvar=None,
                help="Namespace to work in (default: default).",
            ),
        ]
        for option in reversed(options):
            f = option(f)
        return f

    return decorate
