"""``modelplane agents create|send|input|state|list|cancel|journal|audit`` and ``agent-worker``.

The ``agents`` commands go through the REST API (``/agents/{namespace}/{agent}/instances``);
``agent-worker`` runs agent instances from the runtime's database (a scale-out process).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import click
import orjson

from modelplane.cli._context import settings
from modelplane.cli._options import (
    F,
    existing_option,
    home_option,
    positive_option,
    service_account_tokens,
)
from modelplane.cli._output import document_output_option, print_document


def _path(agent: str, name: str | None = None, action: str | None = None) -> str:
    base = f"/agents/{settings().namespace}/{agent}/instances"
    if name:
        base += f"/{name}"
    if action:
        base += f"/{action}"
    return base


def _value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text  # plain text is a string payload


def _instance(f: F) -> F:
    """The ``AGENT NAME`` arguments of a command about one instance."""
    return click.argument("agent")(click.argument("name")(f))


def _call(method: str, path: str, **kwargs: Any) -> Any:
    with settings().client() as client:
        return client.request(method, path, **kwargs)


@click.group()
def agents() -> None:
    """Agent instances: create, message, answer, inspect, cancel."""


@agents.command()
@click.argument("agent")
@click.argument("name", required=False)
@click.option("--id", "id_", metavar="NAME", help="Instance id, as NAME (default: generated).")
@click.option("--input", "input_", help="Input as JSON (or plain text).")
@document_output_option
def create(
    agent: str, name: str | None, id_: str | None, input_: str | None, output: str | None
) -> None:
    """Create an instance of AGENT named NAME (`agents create assistant chat --input '{...}'`)."""
    if name and id_ and name != id_:
        raise click.UsageError(f"the instance is named twice ({name!r} and --id {id_!r}); give one")
    name = name or id_
    body: dict[str, Any] = {"input": _value(input_)}
    if name:
        body["id"] = name
    info = _call("POST", _path(agent), body=body)
    if output:
        print_document(info, output)
    else:
        click.echo(f"{agent}/{info['id']} created")


@agents.command()
@_instance
@click.argument("payload")
def send(agent: str, name: str, payload: str) -> None:
    """Send PAYLOAD (JSON or text) to instance NAME of AGENT."""
    _call("POST", _path(agent, name, "messages"), body={"payload": _value(payload)})
    click.echo(f"{agent}/{name} message queued")


@agents.command("input")
@_instance
@click.argument("value")
def input_cmd(agent: str, name: str, value: str) -> None:
    """Answer the prompt instance NAME of AGENT waits on."""
    _call("POST", _path(agent, name, "input"), body={"value": _value(value)})
    click.echo(f"{agent}/{name} input given")


@agents.command()
@_instance
@document_output_option
def state(agent: str, name: str, output: str | None) -> None:
    """Status, state, result or error of instance NAME of AGENT."""
    print_document(_call("GET", _path(agent, name)), output)


@agents.command("list")
@click.argument("agent")
@click.option("--status", help="Only instances with this status.")
@click.option("--limit", type=int, default=100)
@click.option("--continue", "token", help="Token of the next page.")
@document_output_option
def list_cmd(
    agent: str, status: str | None, limit: int, token: str | None, output: str | None
) -> None:
    """Instances of AGENT, a page at a time."""
    params: dict[str, str | int] = {"limit": limit}
    if status:
        params["status"] = status
    if token:
        params["continue"] = token
    page = _call("GET", _path(agent), params=params)
    if output:
        print_document(page, output)
        return
    click.echo(f"{'ID':<24} {'STATUS':<14} {'VERSION':<8} ERROR")
    for item in page["items"]:
        click.echo(
            f"{item['id']:<24} {item['status']:<14} {item['version']:<8} {item['error'] or ''}"
        )
    if page.get("continue"):
        click.echo(f"(more: --continue {page['continue']})", err=True)


@agents.command()
@_instance
def cancel(agent: str, name: str) -> None:
    """Cancel instance NAME of AGENT."""
    _call("POST", _path(agent, name, "cancel"))
    click.echo(f"{agent}/{name} cancellation queued")


def _brief(data: Any) -> str:
    """``data`` as JSON, cut to fit a line."""
    return orjson.dumps(data).decode()[:80]


def _records_command(action: str, help: str, line: Callable[[dict[str, Any]], str]) -> None:
    """``agents ACTION AGENT NAME``: the records at the instance's ``ACTION`` path, as ``-o
    json|yaml`` asks, else one ``line`` each."""

    @agents.command(action, help=help)
    @_instance
    @document_output_option
    def show(agent: str, name: str, output: str | None) -> None:
        items = _call("GET", _path(agent, name, action))["items"]
        if output:
            print_document(items, output)
            return
        for r in items:
            click.echo(line(r))


_records_command(
    "journal",
    "The journal records of instance NAME of AGENT (those not compacted).",
    lambda r: (
        f"{r['seq']:>6} {r['kind']:<6} {r['name']:<24} {_brief(r['data'])}"
        + ("" if r["valid"] else "  CORRUPT")
    ),
)
_records_command(
    "audit",
    "Who did what, and every tool-call decision, for instance NAME of AGENT.",
    lambda r: f"{r['at']:.3f} {r['actor']:<32} {r['action']:<12} {_brief(r['detail'])}",
)


def parse_packages(text: str) -> tuple[str, ...]:
    """``--agent-packages`` as module prefixes, or a usage error naming the bad part."""
    from modelplane.agents import parse_packages as parse

    try:
        return parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--agent-packages") from None


@click.command("agent-worker")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address of the probes.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /healthz, /readyz (ready once the runtime runs) and /metrics on this port (0:"
    " any free port); default: no HTTP at all.",
)
@click.option(
    "--database-url",
    envvar="MODELPLANE_DATABASE_URL",
    metavar="URL",
    help="The store whose Agent objects it runs, and where shard leases are held (as `up`"
    " --database-url; default: --agents-url on PostgreSQL).",
)
@click.option(
    "--agents-url",
    metavar="URL",
    help="The runtime's tables (default: beside the store, where `up` keeps them).",
)
@click.option(
    "--agent",
    "agent_",
    multiple=True,
    help="Only without a store: ns/name=module:handler, or ns/name=module:handler@sha256:<hex>"
    " for a bundle; repeatable.",
)
@click.option(
    "--agent-packages",
    metavar="MOD,...",
    help="Installed packages an entrypoint without a bundle may name (default: none for Agent"
    " objects, as in `up`; any installed module for --agent, the operator's own choice).",
)
@home_option("The platform's home: bundles are read from (and fetched into) its bundles/ folder.")
@click.option(
    "--api-url",
    metavar="URL",
    help="The Modelplane API to fetch bundles this home lacks from (verified by digest).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="Bearer token for --api-url (default: MODELPLANE_TOKEN).",
)
@click.option("--model-base-url", default="http://127.0.0.1:8470", show_default=True)
@existing_option(
    "--service-account-key-file",
    dir_okay=False,
    metavar="FILE",
    help="The platform's service-account signing key (as the servers' and gateways'): an"
    " Agent's model calls then send its own service account's token, not --token-file's.",
)
@positive_option(
    "--lease-duration",
    10.0,
    "Seconds a shard stays with a process that stopped renewing its lease.",
)
def agent_worker(
    host: str,
    port: int | None,
    database_url: str | None,
    agents_url: str | None,
    agent_: tuple[str, ...],
    agent_packages: str | None,
    home: str,
    api_url: str | None,
    token_file: str | None,
    model_base_url: str,
    service_account_key_file: str | None,
    lease_duration: float,
) -> None:
    """Run the store's Agents (as `up` does) until stopped.

    Every `up` and agent-worker sharing one database shares the instances' 16 shards by leases:
    each runs only the shards it holds, takes over those of a process that died once its leases
    lapse, and cannot commit for a shard it lost (fencing).
    """
    from modelplane.agents import worker_main as main

    if not database_url and not agents_url:
        raise click.UsageError("give --database-url (the store whose Agents it runs)")
    args = ["--model-base-url", model_base_url]
    args += ["--lease-duration", str(lease_duration), "--home", home]
    if database_url:
        args += ["--database-url", database_url]
    if agents_url:
        args += ["--agents-url", agents_url]
    if agent_packages is not None:
        args += ["--agent-packages", ",".join(parse_packages(agent_packages))]
    if api_url:
        args += ["--api-url", api_url]
    if token_file:
        from modelplane.cli._client import read_token_file

        os.environ["MODELPLANE_TOKEN"] = read_token_file(token_file)
    for a in agent_:
        args += ["--agent", a]
    accounts = (
        service_account_tokens(service_account_key_file, auth=True)
        if service_account_key_file
        else None
    )
    started = threading.Event()
    if port is not None:
        from modelplane.cli._probes import serve_probes_in_thread

        def gauges() -> dict[str, float]:
            return {'modelplane_ready{component="agent-worker"}': float(started.is_set())}

        serve_probes_in_thread(
            lambda: None if started.is_set() else "the agent runtime is starting",
            gauges,
            host,
            port,
            lambda url: click.echo(f"agent-worker probes at {url}", err=True),
        )
    code = main(
        args,
        model_token=accounts.token if accounts else None,
        on_started=lambda service: started.set(),
    )
    sys.exit(code)
