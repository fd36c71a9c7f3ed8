"""Admission decisions in the audit log, and the log's REST surface (``/audit``), over a real
server on loopback with a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.control._wait import wait_until
from tests.policy._manifests import GROUP, endpoint, max_three_policy
from tests.security._platform import ADMIN_TOKEN, TENANT_TOKEN, TOKENS, use_key_file
from tests.server.conftest import serving

from modelplane.policy import RECORDS_PATH, VERIFY_PATH, AuditLog, audit_routes
from modelplane.server import create_app
from modelplane.store import open_store


@dataclass
class Api:
    admin: httpx.Client
    tenant: httpx.Client
    log: AuditLog


@pytest.fixture
def api(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    use_key_file(tmp_path, monkeypatch)
    store = open_store(sqlite_url)
    log = AuditLog(sqlite_url)
    app = create_app(store, tokens=TOKENS, routes=audit_routes(log), audit=log)
    try:
        with (
            serving(app) as base,
            httpx.Client(base_url=base, headers=_bearer(ADMIN_TOKEN), timeout=10) as admin,
            httpx.Client(base_url=base, headers=_bearer(TENANT_TOKEN), timeout=10) as tenant,
        ):
            yield Api(admin, tenant, log)
    finally:
        log.close()
        store.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _url(plural: str) -> str:
    return f"/apis/{GROUP}/namespaces/team-a/{plural}"


def _records(api: Api, **params: str) -> list[dict[str, object]]:
    assert api.log.flush()
    response = api.admin.get(RECORDS_PATH, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


def test_every_admission_decision_is_recorded_with_its_policy_set_version(api: Api) -> None:
    # given an Endpoint created before any Policy, then a Policy forbidding more than 3 replicas
    assert api.tenant.post(_url("endpoints"), json=endpoint("before", 5)).status_code == 201
    assert api.admin.post(_url("policies"), json=max_three_policy()).status_code == 201
    wait_until(
        lambda: api.tenant.post(_url("endpoints"), json=endpoint("big", 5)).status_code == 403,
        what="the Policy to refuse the write",
    )
    # when the tenant creates an allowed one
    assert api.tenant.post(_url("endpoints"), json=endpoint("small", 2)).status_code == 201

    # then the log holds the allow before the Policy (no version), the administrator's Policy
    # write (break glass), the deny naming the policy, and the allow, with the same version
    records = _records(api, principal="alice")
    first, deny, allow = records[0], records[-2], records[-1]
    assert (first["resource"], first["decision"], first["policyVersion"]) == (
        "Endpoint/team-a/before",
        "allow",
        "",
    )
    assert deny["decision"] == "deny" and deny["resource"] == "Endpoint/team-a/big"
    assert deny["policies"] == ["team-a/replicas (max-replicas)"]
    assert deny["reasons"] == ["at most 3 replicas"]
    assert str(deny["policyVersion"]).startswith("sha256:")
    assert allow["decision"] == "allow" and allow["policyVersion"] == deny["policyVersion"]
    policy_write = _records(api, principal="ops", category="admission")
    assert policy_write[0]["resource"] == "Policy/team-a/replicas"
    assert policy_write[0]["reasons"] == ["break glass"]
    # and the 403 names the version it was decided with
    refused = api.tenant.post(_url("endpoints"), json=endpoint("big2", 9))
    assert refused.json()["details"]["policyVersion"] == deny["policyVersion"]
    assert api.admin.get(VERIFY_PATH).json()["verified"] is True


def test_the_audit_log_is_for_administrators_only(api: Api) -> None:
    for path in (RECORDS_PATH, VERIFY_PATH):
        response = api.tenant.get(path)
        assert response.status_code == 403
        assert "administrators" in response.json()["message"]


def test_bad_query_parameters_are_refused_naming_them(api: Api) -> None:
    cases = {
        "limit=0": "limit='0' must be a whole number from 1 to 1000",
        "since=yesterday": "since='yesterday' is neither a time nor a duration",
        "colour=red": "unknown query parameter 'colour'",
        "continue=x": "continue='x' must be a whole number",
    }
    for query, message in cases.items():
        response = api.admin.get(f"{RECORDS_PATH}?{query}")
        assert response.status_code == 400, query
        assert message in response.json()["message"]


def test_records_are_read_a_page_at_a_time(api: Api) -> None:
    # given five writes
    for i in range(5):
        assert api.tenant.post(_url("endpoints"), json=endpoint(f"e{i}", 1)).status_code == 201
    assert api.log.flush()
    # when read two at a time
    seen: list[object] = []
    params: dict[str, str] = {"limit": "2", "principal": "alice"}
    while True:
        page = api.admin.get(RECORDS_PATH, params=params).json()
        seen += [r["resource"] for r in page["items"]]
        if "continue" not in page:
            break
        params["continue"] = page["continue"]
    # then every record comes once, in order
    assert seen == [f"Endpoint/team-a/e{i}" for i in range(5)]


def test_a_decision_is_in_the_next_listing_without_waiting_for_the_writer(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a log whose writer would let a decision linger for a minute before committing it
    use_key_file(tmp_path, monkeypatch)
    store = open_store(sqlite_url)
    log = AuditLog(sqlite_url, linger=60.0)
    app = create_app(store, tokens=TOKENS, routes=audit_routes(log), audit=log)
    try:
        with (
            serving(app) as base,
            httpx.Client(base_url=base, headers=_bearer(TENANT_TOKEN), timeout=30) as tenant,
            httpx.Client(base_url=base, headers=_bearer(ADMIN_TOKEN), timeout=30) as admin,
        ):
            # when a write is decided and the log is listed at once (no flush by the caller)
            assert tenant.post(_url("endpoints"), json=endpoint("now", 1)).status_code == 201
            items = admin.get(RECORDS_PATH, params={"principal": "alice"}).json()["items"]
            # then the listing holds it: the route committed what was queued before it
            assert [i["resource"] for i in items] == ["Endpoint/team-a/now"]
    finally:
        log.close()
        store.close()
