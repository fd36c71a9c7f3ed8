"""Secrets: encrypted at rest, redacted for those who may not read them, the only way to give an
upstream its API key (hole 1: `apiKeySecret` sent any server file to any URL)."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from tests.control._wait import wait_until
from tests.security._platform import (
    ADMIN_TOKEN,
    TENANT_TOKEN,
    Platform,
    chat,
    endpoint,
    running_platform,
    secret,
    upstream_model,
    url,
    use_key_file,
)

from modelplane.api import validate
from modelplane.api.errors import ModelplaneError
from modelplane.cli import cli
from modelplane.gateway import EndpointRoute
from modelplane.gateway._upstream import UpstreamClient, UpstreamError
from modelplane.server._authz import REDACTED
from modelplane.store import Store, open_store
from modelplane.testing import FakeUpstream

VALUE = "sk-live-0123456789abcdef"


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_key_file(tmp_path, monkeypatch)


@pytest.fixture
def sqlite_store(sqlite_url: str, key_file: Path) -> Iterator[Store]:
    with open_store(sqlite_url) as store:
        yield store


@pytest.fixture
def platform(sqlite_store: Store) -> Iterator[Platform]:
    with running_platform(sqlite_store) as p:
        yield p


def _stored_text(store_url: str) -> str:
    """Every row of every table of the database, as text: what someone with the file sees."""
    if store_url.startswith("sqlite:///"):
        with sqlite3.connect(store_url.removeprefix("sqlite://")) as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            rows = [row for t in tables for row in conn.execute(f'SELECT * FROM "{t}"')]
        return repr(rows)
    import psycopg

    with psycopg.connect(store_url) as conn:
        return repr(
            [
                *conn.execute("SELECT * FROM mp_objects").fetchall(),
                *conn.execute("SELECT * FROM mp_events").fetchall(),
            ]
        )


# -- encryption at rest ------------------------------------------------------------------------


def test_the_database_holds_only_ciphertext_of_a_secret(store_url: str, key_file: Path) -> None:
    # given a Secret written, then changed, through the store (both backends)
    with open_store(store_url) as store:
        created = store.create(validate(secret("provider", **{"api-key": VALUE})))
        store.patch("Secret", "default", "provider", {"metadata": {"labels": {"team": "a"}}})
        # then every process that opens the store reads it in the clear
        encoded = base64.b64encode(VALUE.encode()).decode()
        assert created["data"] == {"api-key": encoded}
        assert store.get("Secret", "default", "provider")["data"] == {"api-key": encoded}
    # and neither the objects nor the events (watch history) hold the value, plain or base64
    text = _stored_text(store_url)
    assert "provider" in text and "encryptedData" in text
    assert VALUE not in text
    assert base64.b64encode(VALUE.encode()).decode()[:16] not in text


def test_the_key_file_is_created_owner_only_on_the_first_secret(
    sqlite_store: Store, key_file: Path
) -> None:
    assert not key_file.exists()
    sqlite_store.create(secret("s", a="b"))
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text())) == 32


def test_a_store_opened_with_another_key_says_so(
    sqlite_url: str, sqlite_store: Store, tmp_path: Path
) -> None:
    # given a Secret written with one key
    sqlite_store.create(secret("s", a="b"))
    other = tmp_path / "other.key"
    other.write_text(base64.b64encode(b"k" * 32).decode())
    # when another process opens the database with another key file
    with open_store(sqlite_url, encryption_key_file=other) as wrong:
        with pytest.raises(ModelplaneError) as caught:
            wrong.get("Secret", "default", "s")
        with pytest.raises(ModelplaneError):
            wrong.list("Secret")
        # other kinds are not affected
        assert wrong.list("Model").items == []
    # then the error names the key file and what to do, and no value
    message = caught.value.message
    assert str(other) in message and "same --encryption-key-file" in message


def test_a_process_without_the_key_file_is_told_where_to_get_it(
    sqlite_url: str, sqlite_store: Store, tmp_path: Path
) -> None:
    sqlite_store.create(secret("s", a="b"))
    with (
        open_store(sqlite_url, encryption_key_file=tmp_path / "absent.key") as keyless,
        pytest.raises(ModelplaneError, match="does not exist"),
    ):
        keyless.get("Secret", "default", "s")


def test_a_watch_of_secrets_sees_them_in_the_clear(sqlite_store: Store) -> None:
    with sqlite_store.watch("Secret") as watch:
        sqlite_store.create(validate(secret("s", a=VALUE)))
        events = wait_until(lambda: watch.next_batch(0.1), what="the ADDED event")
    assert events[0].object["data"] == {"a": base64.b64encode(VALUE.encode()).decode()}


# -- the API: validation, redaction ------------------------------------------------------------


def test_string_data_is_merged_into_data_and_never_stored(platform: Platform) -> None:
    body = secret("provider", **{"api-key": VALUE})
    body["data"] = {"other": base64.b64encode(b"x").decode()}

    created = platform.admin.post(url("secrets"), json=body)

    assert created.status_code == 201, created.text
    stored = platform.admin.get(url("secrets", "provider")).json()
    assert "stringData" not in stored
    assert stored["type"] == "Opaque"
    assert base64.b64decode(stored["data"]["api-key"]).decode() == VALUE
    assert set(stored["data"]) == {"api-key", "other"}


def test_an_invalid_secret_names_the_key_and_never_repeats_the_value(platform: Platform) -> None:
    body = secret("bad")
    body["data"] = {"api-key": "not base64 " + VALUE, "a/b": "eA=="}

    r = platform.admin.post(url("secrets"), json=body)

    assert r.status_code == 422
    fields = {c["field"] for c in r.json()["details"]["causes"]}
    assert fields == {"data[api-key]", "data[a/b]"}
    assert VALUE not in r.text


def test_a_secret_value_is_redacted_for_a_non_admin(platform: Platform) -> None:
    # given a Secret a tenant created (tenants may write Secrets, not read their values)
    created = platform.tenant.post(url("secrets"), json=secret("provider", **{"api-key": VALUE}))
    assert created.status_code == 201, created.text
    # when the tenant reads it back in every way the API offers
    got = platform.tenant.get(url("secrets", "provider")).json()
    listed = platform.tenant.get(url("secrets")).json()["items"]
    with platform.tenant.stream(
        "GET", url("secrets"), params={"watch": "true", "timeoutSeconds": "1"}
    ) as stream:
        watched = [orjson.loads(line)["object"] for line in stream.iter_lines() if line]
    # then the keys are there and the values are not
    for shown in (created.json(), got, listed[0], watched[0]):
        assert shown["data"] == {"api-key": REDACTED}
        assert VALUE not in orjson.dumps(shown).decode()
    # while an administrator sees the value
    admin = platform.admin.get(url("secrets", "provider")).json()
    assert base64.b64decode(admin["data"]["api-key"]).decode() == VALUE


def test_a_redacted_secret_written_back_is_refused_not_stored(platform: Platform) -> None:
    platform.tenant.post(url("secrets"), json=secret("provider", **{"api-key": VALUE}))
    shown = platform.tenant.get(url("secrets", "provider")).json()

    r = platform.tenant.put(url("secrets", "provider"), json=shown)

    assert r.status_code == 422
    admin = platform.admin.get(url("secrets", "provider")).json()
    assert base64.b64decode(admin["data"]["api-key"]).decode() == VALUE


# -- the CLI -----------------------------------------------------------------------------------


def _mp(platform: Platform, token: str, *args: str) -> Any:
    result = CliRunner().invoke(
        cli, ["--server", platform.url, "--token", token, *args], catch_exceptions=False
    )
    return result


def test_create_secret_generic_reads_literals_and_files_on_the_client(
    platform: Platform, tmp_path: Path
) -> None:
    # given a file only the client has
    cert = tmp_path / "client" / "ca.pem"
    cert.parent.mkdir()
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\n\x00\xff\n")
    # when the secret is created from a literal and the file
    result = _mp(
        platform,
        ADMIN_TOKEN,
        *("create", "secret", "generic", "provider", "-n", "team-a"),
        *("--from-literal=api-key=" + VALUE, f"--from-file={cert}", f"--from-file=renamed={cert}"),
    )
    # then it says so, and the server stored the bytes the client read
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "secret/provider created"
    stored = platform.store.get("Secret", "team-a", "provider")
    data = {k: base64.b64decode(v) for k, v in stored["data"].items()}
    assert data == {
        "api-key": VALUE.encode(),
        "ca.pem": cert.read_bytes(),
        "renamed": cert.read_bytes(),
    }


def test_create_secret_refuses_an_invalid_key_before_sending(platform: Platform) -> None:
    result = _mp(platform, ADMIN_TOKEN, "create", "secret", "generic", "s", "--from-literal=a/b=c")
    assert result.exit_code == 2
    assert "a key must consist of" in result.output
    assert platform.store.list("Secret").items == []


def test_create_secret_output_json_is_redacted_for_a_non_admin(platform: Platform) -> None:
    result = _mp(
        platform,
        TENANT_TOKEN,
        *("create", "secret", "generic", "s", "--from-literal=k=" + VALUE, "-o", "json"),
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["data"] == {"k": REDACTED}


def test_describe_secret_shows_sizes_never_values(platform: Platform) -> None:
    platform.admin.post(url("secrets"), json=secret("provider", **{"api-key": VALUE}))

    result = _mp(platform, ADMIN_TOKEN, "describe", "secret", "provider")

    assert result.exit_code == 0, result.output
    assert f"api-key:  {len(VALUE)} bytes" in result.output
    assert "Opaque" in result.output
    assert VALUE not in result.output
    assert base64.b64encode(VALUE.encode()).decode() not in result.output


# -- hole 1: apiKeySecret ----------------------------------------------------------------------


def test_hole_1_an_api_key_file_path_cannot_send_a_server_file_upstream(
    platform: Platform, tmp_path: Path
) -> None:
    # given the server's own token file, and a provider the attacker runs
    token_file = tmp_path / "server" / "tokens.csv"
    token_file.parent.mkdir()
    token_file.write_text(f"{ADMIN_TOKEN},ops,,system:masters\n{TENANT_TOKEN},alice\n")
    with FakeUpstream("attacker", reply="thanks") as attacker:
        # when a tenant declares a Model whose apiKeySecret names that file
        model = upstream_model("stolen", attacker.url, apiKeySecret=str(token_file))
        refused = platform.tenant.post(url("models"), json=model)
        platform.tenant.post(url("endpoints"), json=endpoint("steal", "stolen"))
        answer = chat(platform.tenant, "steal")
        # then the manifest is refused, naming the field and how to move
        assert refused.status_code == 422, refused.text
        (cause,) = refused.json()["details"]["causes"]
        assert cause["field"] == "spec.versions[0].apiKeySecret"
        assert "apiKeySecretRef" in cause["message"] and "create secret" in cause["message"]
        # and no request carried the token anywhere
        assert answer.status_code == 503  # the Endpoint's Model does not exist
        assert sum(attacker.requests.values()) == 0
        assert not any(ADMIN_TOKEN in str(h) for h in attacker.headers)


def test_an_upstream_gets_its_key_from_a_secret_in_the_models_namespace(
    platform: Platform,
) -> None:
    with FakeUpstream("provider", reply="hello") as provider:
        platform.tenant.post(url("secrets"), json=secret("provider", **{"api-key": VALUE}))
        ref = {"name": "provider", "key": "api-key"}
        model = upstream_model("hosted", provider.url, apiKeySecretRef=ref)
        assert platform.tenant.post(url("models"), json=model).status_code == 201
        platform.tenant.post(url("endpoints"), json=endpoint("ep", "hosted"))
        wait_until(lambda: _routed(platform, "ep"), what="the gateway to route ep")

        r = chat(platform.tenant, "ep")

        assert r.status_code == 200, r.text
        assert provider.headers[-1]["authorization"] == f"Bearer {VALUE}"


def test_a_secret_in_another_namespace_is_never_used(platform: Platform) -> None:
    with FakeUpstream("provider", reply="hello") as provider:
        # given the key only in namespace other
        platform.admin.post(
            url("secrets", namespace="other"),
            json=secret("provider", namespace="other", **{"api-key": VALUE}),
        )
        ref = {"name": "provider", "key": "api-key"}
        platform.tenant.post(
            url("models"), json=upstream_model("hosted", provider.url, apiKeySecretRef=ref)
        )
        platform.tenant.post(url("endpoints"), json=endpoint("ep", "hosted"))
        route = wait_until(lambda: _route(platform, "ep"), what="the gateway to see ep")

        r = chat(platform.tenant, "ep")

        assert route.versions[0].problem is not None
        assert r.status_code == 503
        assert "Secret default/provider" in r.json()["error"]["message"]
        assert sum(provider.requests.values()) == 0


def test_a_key_with_a_line_break_is_refused_and_never_sent(platform: Platform) -> None:
    with FakeUpstream("provider", reply="hello") as provider:
        injected = VALUE + "\r\nX-Injected: 1"
        platform.admin.post(url("secrets"), json=secret("provider", **{"api-key": injected}))
        ref = {"name": "provider", "key": "api-key"}
        platform.admin.post(
            url("models"), json=upstream_model("hosted", provider.url, apiKeySecretRef=ref)
        )
        platform.admin.post(url("endpoints"), json=endpoint("ep", "hosted"))
        wait_until(lambda: _route(platform, "ep"), what="the gateway to see ep")

        r = chat(platform.admin, "ep")

        assert r.status_code == 503
        message = r.json()["error"]["message"]
        assert "line break" in message and "api-key" in message
        assert VALUE not in message
        assert sum(provider.requests.values()) == 0


def test_the_upstream_client_refuses_a_header_value_with_a_line_break() -> None:
    async def send(url: str) -> None:
        client = UpstreamClient(connect_timeout=1, read_timeout=1)
        try:
            await client.request("POST", url, b"{}", {"authorization": "a\r\nb: c"})
        finally:
            await client.aclose()

    with FakeUpstream("provider") as provider:
        with pytest.raises(UpstreamError, match="line break") as caught:
            asyncio.run(send(provider.url + "/chat/completions"))
        assert sum(provider.requests.values()) == 0
    assert "a\r\nb" not in str(caught.value)


def _route(platform: Platform, name: str) -> EndpointRoute | None:
    route = platform.gateway.table.lookup(name)
    return route if isinstance(route, EndpointRoute) and route.versions else None


def _routed(platform: Platform, name: str) -> bool:
    route = _route(platform, name)
    return route is not None and any(v.replicas for v in route.versions)


def test_no_secret_value_reaches_the_logs(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeUpstream("provider", reply="hello") as provider:
        # given a key that is used, a key that is refused, and a secret a tenant cannot read
        bad = VALUE + "\n"
        platform.admin.post(url("secrets"), json=secret("good", **{"api-key": VALUE}))
        platform.admin.post(url("secrets"), json=secret("bad", **{"api-key": bad}))
        for name in ("good", "bad"):
            ref = {"name": name, "key": "api-key"}
            platform.admin.post(
                url("models"), json=upstream_model(name, provider.url, apiKeySecretRef=ref)
            )
            platform.admin.post(url("endpoints"), json=endpoint(name, name))
        wait_until(lambda: _routed(platform, "good"), what="the gateway to route good")
        # when every path that touches them runs
        answers = [chat(platform.admin, "good"), chat(platform.admin, "bad")]
        platform.tenant.get(url("secrets"))
        platform.admin.post(url("secrets"), json={**secret("good"), "data": {"k": VALUE}})
    # then they ran, and nothing logged holds the value, plain or encoded
    assert [a.status_code for a in answers] == [200, 503]
    encoded = base64.b64encode(VALUE.encode()).decode()
    assert VALUE not in caplog.text and encoded not in caplog.text
