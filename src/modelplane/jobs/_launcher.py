"""Inside a Job's sandbox: start every replica of the gang at once, stop them all when one fails.

The job runner runs this file as ``python3 _launcher.py GANG.json`` inside the process sandbox (it
uses the standard library only and imports nothing of the platform). ``GANG.json`` holds ``argv``
(the template's command), ``cwd`` (the bundle's folder), ``logs`` (a writable folder) and
``replicas[] {rank, env}``. Each replica's stdout and stderr go to ``logs/replica-<rank>.log``. When
a replica exits non-zero the others get SIGTERM, then SIGKILL after :data:`GRACE_S`: a gang fails
together. The last line of the launcher's own output is one JSON object, ``{"exits": {rank:
code}, "failed": rank or null}``; its exit status is 0 when every replica exited 0, else 1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

GRACE_S = 10.0


def _start(gang: dict[str, Any]) -> dict[int, subprocess.Popen[bytes]]:
    procs: dict[int, subprocess.Popen[bytes]] = {}
    for replica in gang["replicas"]:
        rank = int(replica["rank"])
        with open(os.path.join(gang["logs"], f"replica-{rank}.log"), "wb") as log:
            procs[rank] = subprocess.Popen(
                gang["argv"],
                env=replica["env"],
                cwd=gang["cwd"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    return procs


def _stop_all(procs: dict[int, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    for proc in procs.values():
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(path: str) -> int:
    with open(path) as f:
        gang = json.load(f)
    procs = _start(gang)
    by_pid = {p.pid: rank for rank, p in procs.items()}
    exits: dict[int, int] = {}
    failed: int | None = None
    while len(exits) < len(procs):
        pid, status = os.wait()
        rank = by_pid.get(pid)
        if rank is None:
            continue  # an orphan the launcher inherited as the sandbox's init
        procs[rank].returncode = code = os.waitstatus_to_exitcode(status)
        exits[rank] = code
        if code != 0 and failed is None:
            failed = rank
            _stop_all({r: p for r, p in procs.items() if r not in exits})
            for r, p in procs.items():
                exits.setdefault(r, p.returncode if p.returncode is not None else -9)
    print(json.dumps({"exits": exits, "failed": failed}), flush=True)
    return 0 if failed is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
