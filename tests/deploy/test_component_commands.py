"""Every rendered component's container runs a command the CLI really has, with options it takes,
and its probes' port is the port that command listens on."""

from __future__ import annotations

from typing import Any

import click
import pytest

from modelplane.cli import cli
from modelplane.deploy import render

WORKLOADS = [
    o
    for o in render([], image="modelplane:test").platform
    if o["kind"] in ("Deployment", "DaemonSet")
]


def _parse(argv: list[str]) -> click.Context:
    """``modelplane ARGV`` as click parses it (raises on an unknown command or option)."""
    ctx = click.Context(cli, info_name="modelplane")
    command = cli.get_command(ctx, argv[0])
    assert command is not None, f"modelplane {argv[0]} does not exist"
    return command.make_context(argv[0], argv[1:], parent=ctx)


def test_every_component_is_rendered() -> None:
    names = {w["metadata"]["name"] for w in WORKLOADS}
    assert names == {f"modelplane-{c}" for c in ("server", "gateway", "agent-worker", "node")}


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w["metadata"]["name"])
def test_the_rendered_command_line_parses_with_the_real_cli(workload: dict[str, Any]) -> None:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    program, *argv = container["command"]
    assert program == "modelplane"
    sub = _parse(argv)
    for port in container.get("ports", []):
        assert sub.params["port"] == port["containerPort"]


def test_a_wrong_option_would_be_caught() -> None:
    with pytest.raises(click.NoSuchOption):
        _parse(["node", "--no-such-option"])
