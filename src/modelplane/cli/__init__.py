"""``modelplane``: the command line, kubectl-shaped.

Owns: parsing of command lines, the REST client the commands use (``_client``), how objects are
printed (``_output``), one module per command family (``_apply``, ``_create``, ``_get``, ``_describe``,
``_delete``, ``_explain``, ``_version``, ``_up``, ``_bench``), and ``modelplane up``, which runs the
embedded platform (store, controllers, API server) in one process.
Must not touch: the store or controllers directly, except ``up`` which starts them; every other
command goes through the REST API, so it works the same against a remote server.

Errors are printed as ``error: <message>`` on stderr (with one line per offending field), the exit
code is 1 (2 for a mistake on the command line); a traceback never reaches the user (set
``MODELPLANE_DEBUG=1`` to see one for an unexpected failure).
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from modelplane import __version__
from modelplane.api.errors import ModelplaneError
from modelplane.cli._agents import agent_worker, agents
from modelplane.cli._apply import apply
from modelplane.cli._approvals import approvals
from modelplane.cli._audit import audit
from modelplane.cli._auth import auth
from modelplane.cli._bench import bench
from modelplane.cli._context import Settings, connection_options
from modelplane.cli._cost import cost
from modelplane.cli._create import create
from modelplane.cli._delete import delete
from modelplane.cli._describe import describe
from modelplane.cli._diagnose import diagnose
from modelplane.cli._explain import explain
from modelplane.cli._gateway import chat, gateway
from modelplane.cli._get import get
from modelplane.cli._models import models
from modelplane.cli._operator import operator
from modelplane.cli._output import echo_error
from modelplane.cli._render import render_group
from modelplane.cli._rollout import rollout
from modelplane.cli._sandbox import sandbox
from modelplane.cli._server import node, server
from modelplane.cli._sim import sim
from modelplane.cli._slo import slo
from modelplane.cli._up import up
from modelplane.cli._version import version

__all__ = ["cli", "main"]


class _Modelplane(click.Group):
    """The top-level group: turns every failure into ``error: ...`` and an exit code."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        sys.exit(self._run(args, prog_name, complete_var, **extra))

    def _run(
        self,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        **extra: Any,
    ) -> int:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            # Ctrl-C outside the commands that expect it: stop quietly, as a shell does
            return 130
        except click.UsageError as exc:
            echo_error(exc.format_message())
            if exc.ctx is not None:
                help_option = exc.ctx.help_option_names[0] if exc.ctx.help_option_names else None
                if help_option:
                    click.echo(f"Try '{exc.ctx.command_path} {help_option}' for help.", err=True)
            return exc.exit_code
        except click.ClickException as exc:
            echo_error(exc.format_message())
            return exc.exit_code
        except ModelplaneError as exc:
            echo_error(str(exc))
            return 1
        except BrokenPipeError:
            # the reader went away (`modelplane get models | head -1`): nothing left to say
            _silence_stdout()
            return 1
        except Exception as exc:
            if os.environ.get("MODELPLANE_DEBUG"):
                traceback.print_exc()
            echo_error(
                f"unexpected {type(exc).__name__}: {exc} (this is a bug in Modelplane; set"
                " MODELPLANE_DEBUG=1 to see where)"
            )
            return 1
        # `ctx.exit(code)` inside a command comes back as its code
        return rv if isinstance(rv, int) else 0


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@click.group(
    "modelplane",
    cls=_Modelplane,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@connection_options(top_level=True)
@click.version_option(__version__, "--version", prog_name="modelplane")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Modelplane: models, endpoints, graphs, agents and policies as declarative objects.

    Start the platform with `modelplane up`, then `modelplane apply -f manifests/` and
    `modelplane get models`.
    """
    ctx.ensure_object(Settings)


for _command in (
    apply,
    auth,
    audit,
    create,
    get,
    describe,
    delete,
    explain,
    version,
    up,
    bench,
    sim,
    gateway,
    chat,
    models,
    render_group,
    agents,
    approvals,
    agent_worker,
    rollout,
    slo,
    sandbox,
    diagnose,
    cost,
    server,
    node,
    operator,
):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``modelplane`` console script."""
    _ctrl_c_stops()
    cli.main(args=argv, prog_name="modelplane")


def _ctrl_c_stops() -> None:
    """Let SIGINT stop a command even when it was started with SIGINT ignored.

    A shell without job control starts background commands (``cmd &`` in a script, CI runners)
    with SIGINT ignored, and Python then installs no KeyboardInterrupt handler: ``get -w`` and
    ``up`` would run on after ``kill -INT``. Go programs such as kubectl take SIGINT back when
    they ask for it; so does this, the one way every command ends on Ctrl-C.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
