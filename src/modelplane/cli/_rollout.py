"""``modelplane rollout status|promote|abort ENDPOINT`` and ``rollout analyze FILE``.

``status`` reads the Endpoint's ``status.rollout``; ``promote`` and ``abort`` set the annotation
``modelplane.dev/rollout-action`` through the REST API and wait until the rollout controller has
applied it (it removes the annotation). ``analyze`` judges a saved samples file offline.
"""

from __future__ import annotations

import time
from typing import Any

import click

from modelplane.api import ACTION_ANNOTATION as _ACTION_ANNOTATION
from modelplane.cli._context import settings
from modelplane.cli._output import console, print_table, to_json, to_yaml

_OUTPUT = click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default=None)


def _path(name: str) -> str:
    return f"/apis/modelplane.dev/v1alpha1/namespaces/{settings().namespace}/endpoints/{name}"


def _get(name: str) -> dict[str, Any]:
    with settings().client() as client:
        endpoint: dict[str, Any] = client.request("GET", _path(name))
    return endpoint


def _split(traffic: Any) -> str:
    return ", ".join(f"{t.get('version')} {t.get('weight')}%" for t in traffic or []) or "-"


@click.group()
def rollout() -> None:
    """Canary rollouts of Endpoints: see where one stands, promote it, or abort it."""


@rollout.command()
@click.argument("endpoint")
@_OUTPUT
def status(endpoint: str, output: str | None) -> None:
    """Phase, canary, step, traffic and the last analysis of ENDPOINT's rollout."""
    obj = _get(endpoint)
    st = obj.get("status") or {}
    state = st.get("rollout")
    if output:
        data = {"traffic": st.get("traffic"), "rollout": state}
        click.echo(to_json(data) if output == "json" else to_yaml(data).rstrip("\n"))
        return
    out = console()
    if not state:
        click.echo(
            f"endpoint/{endpoint}: no rollout (traffic {_split(st.get('traffic') or obj['spec'].get('traffic'))})"
        )
        return
    steps = state.get("steps") or []
    analysis = state.get("lastAnalysis") or {}
    print_table(
        out,
        ["ENDPOINT", "PHASE", "CANARY", "STABLE", "STEP", "WEIGHT", "VERDICT", "SAMPLES"],
        [
            [
                endpoint,
                str(state.get("phase", "")),
                str(state.get("canary", "")),
                str(state.get("stable", "")),
                f"{int(state.get('step') or 0) + 1}/{len(steps)}" if steps else "-",
                f"{state.get('weight', 0)}%",
                str(analysis.get("verdict") or "-"),
                f"{analysis.get('samples', 0)}/{analysis.get('stableSamples', 0)}"
                if analysis
                else "-",
            ]
        ],
    )
    click.echo(f"traffic:  {_split(st.get('traffic'))} (wanted: {_split(state.get('target'))})")
    if state.get("message"):
        click.echo(f"message:  {state['message']}")
    if analysis.get("reason"):
        click.echo(f"analysis: {analysis['reason']} ({analysis.get('time', '')})")


def _request(endpoint: str, action: str, timeout: float) -> None:
    patch = {"metadata": {"annotations": {_ACTION_ANNOTATION: action}}}
    with settings().client() as client:
        client.request("PATCH", _path(endpoint), body=patch)
        deadline = time.monotonic() + timeout
        while True:
            obj = client.request("GET", _path(endpoint))
            if _ACTION_ANNOTATION not in ((obj.get("metadata") or {}).get("annotations") or {}):
                break
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"asked to {action} endpoint/{endpoint}, but the rollout controller did not"
                    f" act within {timeout:g}s; is `modelplane up` (or a controller manager)"
                    " running? The request stays in place until it does."
                )
            time.sleep(0.1)  # polling the controller's answer with a deadline
    state = (obj.get("status") or {}).get("rollout") or {}
    traffic = _split((obj.get("status") or {}).get("traffic"))
    click.echo(f"endpoint/{endpoint}: {state.get('phase', 'no rollout')} (traffic {traffic})")


_TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=15.0,
    show_default=True,
    help="Seconds to wait for the rollout controller to apply it.",
)


@rollout.command()
@click.argument("endpoint")
@_TIMEOUT
def promote(endpoint: str, timeout: float) -> None:
    """Send ENDPOINT's wanted split (spec.traffic) in full now, skipping the remaining steps.

    While a remediation playbook holds the split (status.remediation), restore the one it replaced.
    """
    _request(endpoint, "promote", timeout)


@rollout.command()
@click.argument("endpoint")
@_TIMEOUT
def abort(endpoint: str, timeout: float) -> None:
    """Roll ENDPOINT back to the split in force before its rollout began."""
    _request(endpoint, "abort", timeout)


@rollout.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--canary", required=True, help="The new version.")
@click.option("--stable", required=True, help="The version to compare against.")
@click.option("--min-samples", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--ttft-p99", metavar="DURATION", help='Largest TTFT p99 allowed, e.g. "800ms".')
@click.option("--tpot", metavar="DURATION", help='Largest mean TPOT allowed, e.g. "50ms".')
@click.option("--error-rate", type=click.FloatRange(0, 1), help="Largest error rate, 0 to 1.")
@_OUTPUT
def analyze(
    file: str,
    canary: str,
    stable: str,
    min_samples: int,
    ttft_p99: str | None,
    tpot: str | None,
    error_rate: float | None,
    output: str | None,
) -> None:
    """Judge CANARY against STABLE in FILE, saved from GET /v1/_modelplane/samples?endpoint=NAME.

    Exit status 0 on pass, 1 on fail, 3 when inconclusive.
    """
    from modelplane.api import parse_duration
    from modelplane.rollout import Criteria, RecordedSamples, judge

    try:
        criteria = Criteria(
            min_samples=min_samples,
            ttft_p99=parse_duration(ttft_p99) if ttft_p99 else None,
            tpot=parse_duration(tpot) if tpot else None,
            error_rate=error_rate,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    recorded = RecordedSamples.load(file)
    endpoints = recorded.endpoints()
    ns, name = endpoints[0] if endpoints else ("default", "")
    have = recorded.versions(ns, name)
    for version in (canary, stable):
        if version not in have:
            raise click.ClickException(
                f"{file} has no samples of version {version!r} (it has {', '.join(have) or 'none'})"
            )
    verdict = judge(
        recorded.samples(ns, name, canary, 0.0),
        recorded.samples(ns, name, stable, 0.0),
        criteria,
        canary_name=f"canary {canary}",
        stable_name=f"stable {stable}",
    )
    data = {
        "verdict": verdict.verdict,
        "reason": verdict.reason,
        "samples": verdict.canary_samples,
        "stableSamples": verdict.stable_samples,
    }
    if output:
        click.echo(to_json(data) if output == "json" else to_yaml(data).rstrip("\n"))
    else:
        click.echo(f"{verdict.verdict}: {verdict.reason}")
    click.get_current_context().exit({"pass": 0, "fail": 1, "inconclusive": 3}[verdict.verdict])
