"""The audit log: a hash chain in the platform's database (SQLite and PostgreSQL), verified,
pruned, read with filters and pages, appended by several processes, exported to OpenTelemetry."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from modelplane.api.errors import BadRequest
from modelplane.policy import (
    AuditEvent,
    AuditLog,
    AuditQuery,
    Verification,
    open_audit_log,
    parse_retention,
    record_hash,
)

ROOT = Path(__file__).resolve().parents[2]


def _event(i: int, **changes: str) -> AuditEvent:
    fields = {
        "category": "admission",
        "principal": "alice",
        "action": "create",
        "resource": f"Endpoint/team-a/e{i}",
        "decision": "allow",
        "namespace": "team-a",
    }
    fields.update(changes)
    return AuditEvent(**fields)  # type: ignore[arg-type]


@pytest.fixture
def log(store_url: str) -> Iterator[AuditLog]:
    with AuditLog(store_url) as log:
        yield log


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite://")


def test_appended_events_form_one_chain_that_verifies(log: AuditLog) -> None:
    # given five decisions appended and committed
    for i in range(5):
        log.append(_event(i, decision="deny" if i == 3 else "allow"))
    assert log.flush()

    # then they are records 1..5, each linked to the one before, and the chain verifies
    records = log.records()
    assert [r.sequence for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    assert records[3].event == replace(_event(3, decision="deny"), time=records[3].event.time)
    result = log.verify()
    assert result.ok and result.records == 5


def test_the_hash_is_sha256_of_the_previous_hash_and_the_canonical_record() -> None:
    # given an event, written out by hand as the docs describe the canonical JSON
    event = AuditEvent("tool", "bob", "tools/call", "fs/read", "deny", time="2026-01-01T00:00:00Z")
    canonical = json.dumps(
        {
            "action": "tools/call",
            "arguments_digest": "",
            "category": "tool",
            "decision": "deny",
            "namespace": "",
            "on_behalf_of": "",
            "policies": [],
            "policy_version": "",
            "principal": "bob",
            "reasons": [],
            "resource": "fs/read",
            "sequence": 7,
            "time": "2026-01-01T00:00:00Z",
        },
        separators=(",", ":"),
    )
    prev = "ab" * 32
    # then the record's hash is sha256(prev_hash + that JSON)
    expected = hashlib.sha256((prev + canonical).encode()).hexdigest()
    assert record_hash(prev, 7, event) == expected


def _tampered(url: str, records: int, sql: str) -> Verification:
    """Verify after ``records`` committed events and ``sql`` run on the file behind the log."""
    with AuditLog(url) as log:
        for i in range(records):
            log.append(_event(i))
    with sqlite3.connect(_sqlite_path(url)) as db:
        db.execute(sql)
    with AuditLog(url) as log:
        return log.verify()


def test_verify_names_the_record_edited_in_the_sqlite_file(sqlite_url: str) -> None:
    # given ten committed records, when record 6's decision is changed in the database file
    result = _tampered(sqlite_url, 10, "UPDATE audit_log SET decision = 'deny' WHERE sequence = 6")
    # then verify names record 6, having verified the five before it
    assert not result.ok
    assert result.first_bad == 6 and result.records == 5
    assert "edited" in result.problem


def test_verify_names_a_record_that_was_removed(sqlite_url: str) -> None:
    result = _tampered(sqlite_url, 6, "DELETE FROM audit_log WHERE sequence = 3")
    assert result.first_bad == 3 and "missing" in result.problem


def test_a_recomputed_hash_still_breaks_the_link_to_the_next_record(sqlite_url: str) -> None:
    # given a forger who edits record 2 and recomputes its hash
    with AuditLog(sqlite_url) as log:
        for i in range(4):
            log.append(_event(i))
        log.flush()
        second = log.records()[1]
    forged = replace(second.event, decision="deny")
    new_hash = record_hash(second.prev_hash, 2, forged)
    with sqlite3.connect(_sqlite_path(sqlite_url)) as db:
        db.execute("UPDATE audit_log SET decision='deny', hash=? WHERE sequence=2", (new_hash,))
    # then record 3, whose prev_hash is the old hash, is where the chain breaks
    with AuditLog(sqlite_url) as log:
        result = log.verify()
    assert result.first_bad == 3 and "prev_hash" in result.problem


def test_pruning_keeps_the_rest_of_the_chain_verifiable(log: AuditLog) -> None:
    # given three old records and two recent ones
    for i, day in enumerate(["01", "02", "03", "20", "21"]):
        log.append(
            AuditEvent("model", "bob", "chat", f"m{i}", "allow", time=f"2026-01-{day}T00:00:00Z")
        )
    assert log.flush()

    # when records before 10 January are pruned
    assert log.prune("2026-01-10T00:00:00Z") == 3

    # then two remain, numbered as before, and the chain verifies from the anchor
    assert [r.sequence for r in log.records()] == [4, 5]
    assert log.verify().ok and log.verify().records == 2
    # and appending continues the same chain
    log.append(_event(9))
    assert log.flush()
    assert [r.sequence for r in log.records()] == [4, 5, 6]
    assert log.verify().ok


def test_everything_pruned_then_appended_still_verifies(log: AuditLog) -> None:
    log.append(AuditEvent("model", "bob", "chat", "m", "allow", time="2026-01-01T00:00:00Z"))
    assert log.flush()
    assert log.prune("2027-01-01T00:00:00Z") == 1
    log.append(_event(1))
    assert log.flush()
    assert [r.sequence for r in log.records()] == [2]
    assert log.verify().ok


def test_the_retention_setting_prunes_old_records_on_its_own(sqlite_url: str) -> None:
    # given a log holding one record from long ago, opened with a retention of 30 days
    with AuditLog(sqlite_url) as log:
        log.append(AuditEvent("model", "bob", "chat", "m", "allow", time="2020-01-01T00:00:00Z"))
        log.append(_event(1))
    with open_audit_log(sqlite_url, retention="30d") as log:
        # then the writer prunes it at start; the recent one stays, and the chain verifies
        from tests.control._wait import wait_until

        wait_until(lambda: [r.sequence for r in log.records()] == [2], what="the prune")
        assert log.verify().ok


def test_a_bad_retention_setting_is_refused_naming_the_option(sqlite_url: str) -> None:
    assert parse_retention("30d") == 30 * 86400
    assert parse_retention("7d12h") == 7.5 * 86400
    assert parse_retention("36h") == 36 * 3600
    with pytest.raises(BadRequest, match="--audit-retention: '30 days' is not a retention"):
        open_audit_log(sqlite_url, retention="30 days")
    with pytest.raises(ValueError, match="positive duration"):
        parse_retention("0d")


def test_close_commits_every_acknowledged_event(store_url: str) -> None:
    # given a thousand appends and a clean stop right after (a generous bound for the stop: a
    # busy machine commits slower, and close() says whether its writer finished)
    log = AuditLog(store_url)
    for i in range(1000):
        log.append(_event(i))
    assert log.close(timeout=120), f"the writer did not finish; lost {log.lost}"
    # then every one is in the log, chained
    with AuditLog(store_url) as log:
        result = log.verify()
        assert result.ok and result.records == 1000
        assert log.lost == 0


def test_records_are_filtered_and_paged(log: AuditLog) -> None:
    # given decisions of two principals, in two namespaces, allowed and denied
    log.append(_event(1))
    log.append(_event(2, principal="bob", decision="deny"))
    log.append(_event(3, namespace="team-b", category="tool"))
    log.append(AuditEvent("model", "bob", "chat", "m", "allow", time="2020-01-01T00:00:00Z"))
    assert log.flush()

    def seqs(**filters: object) -> list[int]:
        return [r.sequence for r in log.records(AuditQuery(**filters))]  # type: ignore[arg-type]

    # then each filter selects by its column, and filters combine
    assert seqs(principal="bob") == [2, 4]
    assert seqs(decision="deny") == [2]
    assert seqs(namespace="team-b") == [3]
    assert seqs(category="admission", principal="alice") == [1]
    assert seqs(since="2025-01-01T00:00:00.000000Z") == [1, 2, 3]
    assert seqs(until="2025-01-01T00:00:00.000000Z") == [4]
    # and pages continue after the last sequence seen
    assert seqs(limit=2) == [1, 2]
    assert seqs(limit=2, after=2) == [3, 4]


@pytest.mark.slow
def test_two_processes_appending_at_once_keep_one_chain(store_url: str) -> None:
    # given two processes appending 300 events each to one database, in small batches
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    args = [sys.executable, "-m", "tests.policy._appender", store_url]
    procs = [subprocess.Popen([*args, who, "300"], env=env, cwd=ROOT) for who in ("alice", "bob")]
    assert [p.wait(120) for p in procs] == [0, 0]

    # then the log holds 600 records in one linear chain, and both wrote interleaved
    with AuditLog(store_url) as log:
        result = log.verify()
        assert result.ok, result
        assert result.records == 600
        records = log.records(AuditQuery(limit=1000))
    assert [r.sequence for r in records] == list(range(1, 601))
    assert {r.event.principal for r in records} == {"alice", "bob"}


def test_committed_records_are_exported_as_opentelemetry_logs(sqlite_url: str) -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    # given a log exporting to an in-memory OpenTelemetry exporter
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    with AuditLog(sqlite_url, logger_provider=provider) as log:
        # when an allow and a deny are committed
        log.append(_event(1))
        log.append(_event(2, decision="deny", principal="bob"))
        assert log.flush()
    # then each is one OTel log record, with the decision's fields as attributes
    exported = [d.log_record for d in exporter.get_finished_logs()]
    assert [r.body for r in exported] == [
        "alice create Endpoint/team-a/e1: allow",
        "bob create Endpoint/team-a/e2: deny",
    ]
    second = dict(exported[1].attributes or {})
    assert second["modelplane.audit.decision"] == "deny"
    assert second["modelplane.audit.sequence"] == 2
    assert str(exported[1].severity_text) == "WARN"


def test_a_refused_write_is_counted_as_lost_and_never_raises(sqlite_url: str) -> None:
    # given a log whose database refuses every insert (as a full or read-only disk would)
    with AuditLog(sqlite_url) as log:
        with sqlite3.connect(_sqlite_path(sqlite_url)) as db:
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON audit_log"
                " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        # when a decision is appended, the append returns and the writer gives up after retries
        log.append(_event(1))
        assert log.flush(30)
        # then the loss is counted (and logged), not raised into the decision
        assert log.lost == 1
