"""A write acknowledged to the caller survives kill -9 of the process, on every backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from modelplane.store import open_store

# writes objects as fast as it can and prints the name of each one after the call returned
_WRITER = """
import sys
from modelplane.store import open_store

store = open_store(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    name = f"m{i}"
    store.create({"kind": "Model", "metadata": {"name": name, "namespace": "default"}, "spec": {}})
    print(name, flush=True)
    i += 1
"""


def test_acknowledged_writes_survive_kill_9(store_url: str) -> None:
    # given a process writing as fast as it can
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, store_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        acknowledged: list[str] = []
        deadline = time.monotonic() + 30
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            acknowledged.append(proc.stdout.readline().strip())

        # when it is killed in the middle of its writes
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        acknowledged += [line.strip() for line in proc.stdout if line.strip()]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)

    # then every write it had acknowledged is there, and the store still works
    assert len(acknowledged) >= 200
    with open_store(store_url) as store:
        stored = {o["metadata"]["name"] for o in store.list("Model").items}
        assert set(acknowledged) <= stored
        store.create({"kind": "Model", "metadata": {"name": "after", "namespace": "default"}})
