"""``modelplane gateway`` (the OpenAI-compatible gateway alone) and ``modelplane chat``.

``gateway`` serves ``/v1`` from the store named by ``--database-url`` (a shared PostgreSQL for
scale-out: run as many as you like behind a load balancer). ``chat`` streams one reply from a
model through the ``/v1`` of ``--server``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click
import httpx
import orjson

from modelplane.api.errors import ModelplaneError
from modelplane.cli._context import connection_options, settings
from modelplane.cli._options import (
    authentication,
    authentication_options,
    egress_rules,
    server_options,
    service_account_tokens,
    tls_options,
)


@click.command("gateway")
@server_options(8480)
@authentication_options
@tls_options
@click.option(
    "--per-process-limits",
    is_flag=True,
    help="Keep Endpoint rate limits and budgets in this process only, as with one gateway:"
    " with N gateways each admits up to the limit. By default they hold across every gateway"
    " on the store (see docs/gateway.md).",
)
def gateway(
    host: str,
    port: int,
    home: str,
    database_url: str | None,
    encryption_key_file: str | None,
    upstream_allow: tuple[str, ...],
    allow_loopback_upstreams: bool,
    log_level: str,
    tls_cert_file: str | None,
    tls_private_key_file: str | None,
    per_process_limits: bool,
    **auth_flags: Any,
) -> None:
    """Run the OpenAI-compatible gateway alone, serving /v1 from the store.

    With --token-file or --oidc-issuer-url every route but the probes needs a bearer token,
    and a caller may call only the models of its namespaces (administrators: all)."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from starlette.middleware import Middleware

    from modelplane import platform
    from modelplane.gateway import serve_gateway
    from modelplane.server import TLS, BearerAuth
    from modelplane.store import default_url, open_store

    egress = egress_rules(upstream_allow, allow_loopback_upstreams)
    key_file = auth_flags.pop("service_account_key_file", None)
    tokens, oidc = authentication(auth_flags, egress)
    # only a key shared with the agent workers can verify their tokens: none of its own
    accounts = service_account_tokens(key_file, auth=False)
    auth = (
        [Middleware(BearerAuth, tokens=tokens, oidc=oidc, service_accounts=accounts)]
        if tokens or oidc
        else []
    )
    if (tls_cert_file is None) != (tls_private_key_file is None):
        raise click.UsageError("--tls-cert-file and --tls-private-key-file go together")
    tls_files = (
        (tls_cert_file, tls_private_key_file) if tls_cert_file and tls_private_key_file else None
    )
    if tls_files is not None:
        try:
            TLS(*tls_files).check()
        except ModelplaneError as exc:
            raise click.ClickException(str(exc)) from None
    home_dir = Path(home).expanduser().absolute()
    os.environ["MODELPLANE_HOME"] = str(home_dir)
    url = database_url or default_url()
    store = open_store(url, encryption_key_file=encryption_key_file)
    try:
        audit = platform.audit_log(store)  # the decisions of model calls, as up records them
    except ModelplaneError as exc:
        store.close()
        raise click.ClickException(str(exc)) from None
    try:
        serve_gateway(
            store,
            host=host,
            port=port,
            egress=egress,
            on_started=lambda u: click.echo(f"Modelplane gateway serving {u}/v1", err=True),
            middleware=auth,
            tls_files=tls_files,
            audit=audit,
            shared_limits=not per_process_limits,
        )
    finally:
        audit.close()
        store.close()


@click.command("chat")
@click.argument("model")
@click.argument("message")
@click.option("--system", help="A system message to send first.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Most tokens in the reply.")
@click.option(
    "--temperature",
    type=click.FloatRange(0, 2),
    help="Sampling temperature, 0 (greedy) to 2; default: the model's own generation config.",
)
@click.option(
    "--top-p",
    type=click.FloatRange(0, 1, min_open=True),
    help="Nucleus sampling mass, (0, 1]; default: the model's own generation config.",
)
@connection_options()
def chat(
    model: str,
    message: str,
    system: str | None,
    max_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
) -> None:
    """Send MESSAGE to MODEL (an Endpoint or Graph) and stream the reply."""
    s = settings()
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": message})
    body: dict[str, object] = {"model": model, "messages": messages, "stream": True}
    if max_tokens:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    if top_p is not None:
        body["top_p"] = top_p
    token = s.resolved_token()
    headers = {"authorization": f"Bearer {token}"} if token else {}
    url = s.server.rstrip("/") + "/v1/chat/completions"
    timeout = httpx.Timeout(10.0, read=300.0)
    try:
        with httpx.stream("POST", url, json=body, headers=headers, timeout=timeout) as r:
            if r.status_code != 200:
                raise click.ClickException(_error_message(r.read(), r.status_code))
            ended = _print_stream(r)
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"cannot reach {url}: {exc} (is `modelplane up` running? set --server)"
        ) from None
    click.echo("")
    if not ended:
        raise click.ClickException("the reply ended early (the stream was interrupted)")


def _print_stream(r: httpx.Response) -> bool:
    for line in r.iter_lines():
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            return True
        event = orjson.loads(data)
        if "error" in event:
            click.echo("")
            raise click.ClickException(str(event["error"].get("message")))
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content") or choice.get("text") or ""
            if text:
                click.echo(text, nl=False)
    return False


def _error_message(content: bytes, status: int) -> str:
    try:
        return f"{status}: {orjson.loads(content)['error']['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"{status}: {content[:300].decode(errors='replace')}"
