"""A child process that appends audit events to a log (the concurrency test's second writer)."""

from __future__ import annotations

import sys

from modelplane.policy import AuditEvent, AuditLog


def main(url: str, who: str, count: int) -> None:
    with AuditLog(url, batch=7) as log:
        for i in range(count):
            log.append(AuditEvent("admission", who, "create", f"Endpoint/team-a/e{i}", "allow"))
            if i % 13 == 0:
                log.flush()  # many small batches: the two writers interleave


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
