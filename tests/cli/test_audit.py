"""``modelplane audit log`` and ``audit verify``, the real CLI against a real ``modelplane up``
over loopback, on the audit log up keeps in its SQLite file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import httpx
from tests.cli._platform import UpServer, clean_env, modelplane_command, wait_for
from tests.policy._manifests import GROUP, endpoint, max_three_policy


def _cli(up: UpServer, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = modelplane_command("--server", up.url, "--token", token, "audit", *args)
    return subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=60)


def test_audit_verify_names_a_record_edited_in_the_database_file(tmp_path: Path) -> None:
    # given up with an administrator's and a tenant's token, a Policy, and the tenant's writes
    tokens = tmp_path / "tokens"
    tokens.write_text(
        'ops-token,ops,1,"system:masters"\nalice-token,alice,2,"modelplane:namespace:team-a"\n'
    )
    up = UpServer(tmp_path / "home", "--token-file", str(tokens)).start().wait_ready()
    try:
        base = f"{up.url}/apis/{GROUP}/namespaces/team-a"
        ops = httpx.Client(headers={"Authorization": "Bearer ops-token"}, timeout=10)
        alice = httpx.Client(headers={"Authorization": "Bearer alice-token"}, timeout=10)
        assert ops.post(f"{base}/policies", json=max_three_policy()).status_code == 201
        assert alice.post(f"{base}/endpoints", json=endpoint("small", 1)).status_code == 201
        wait_for(
            "the Policy to refuse",
            lambda: alice.post(f"{base}/endpoints", json=endpoint("big", 8)).status_code == 403,
        )

        # when the administrator reads the log, and the tenant tries to
        def alice_records() -> list[dict[str, object]] | None:
            listed = _cli(up, "ops-token", "log", "--principal", "alice", "-o", "json")
            assert listed.returncode == 0, listed.stderr
            items: list[dict[str, object]] = json.loads(listed.stdout)["items"]
            return items if any(r["decision"] == "deny" for r in items) else None

        records = wait_for("the deny in the audit log", alice_records)
        table = _cli(up, "ops-token", "log", "--decision", "deny")
        refused = _cli(up, "alice-token", "log")
        verified = _cli(up, "ops-token", "verify")

        # and someone edits the deny into an allow in the database file
        deny = next(r for r in records if r["decision"] == "deny")
        with sqlite3.connect(tmp_path / "home" / "modelplane.db") as db:
            db.execute(
                "UPDATE audit_log SET decision = 'allow' WHERE sequence = ?", (deny["sequence"],)
            )
        tampered = _cli(up, "ops-token", "verify")
    finally:
        assert up.stop() == 0, up.stderr

    # then the log showed the tenant's allow and deny, naming the policy and the version
    assert records[0]["resource"] == "Endpoint/team-a/small"
    assert deny["policies"] == ["team-a/replicas (max-replicas)"]
    assert str(deny["policyVersion"]).startswith("sha256:")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == [
        "SEQ", "TIME", "PRINCIPAL", "CATEGORY", "ACTION", "RESOURCE", "DECISION", "POLICIES",
    ]  # fmt: skip
    assert "Endpoint/team-a/big" in table.stdout and "deny" in table.stdout
    # the tenant was refused, the untouched chain verified, and the edited record is named
    assert refused.returncode == 1 and "administrators" in refused.stderr
    assert verified.returncode == 0
    assert verified.stdout.startswith("verified ") and verified.stdout.endswith(" records\n")
    assert tampered.returncode == 1
    assert f"record {deny['sequence']} does not hold" in tampered.stderr
    assert "Traceback" not in tampered.stderr


def test_up_refuses_a_bad_audit_retention_naming_the_option(tmp_path: Path) -> None:
    # when up is started with a retention that is not a duration
    up = UpServer(tmp_path / "home", "--audit-retention", "a month").start()
    # then it exits 1 before serving, saying what to write instead
    assert up.wait_exit(60) == 1
    assert "--audit-retention: 'a month' is not a retention period" in up.stderr
    assert "30d" in up.stderr and "Traceback" not in up.stderr
