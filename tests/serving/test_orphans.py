"""A worker does not outlive the process that started it (kill -9 of `modelplane up`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
from tests.control._wait import wait_until


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_worker_exits_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    # given a parent that starts a (simulated) worker in a session of its own, as the node agent
    port_file, pid_file = tmp_path / "port", tmp_path / "pid"
    parent_code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-m', 'modelplane.serving.simulated',"
        f" '--port-file', {str(port_file)!r}], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n"  # the parent idles until it is killed
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        wait_until(lambda: port_file.exists() and pid_file.exists(), timeout=30, what="worker up")
        worker = int(pid_file.read_text())
        assert _alive(worker)
        # when the parent is killed with SIGKILL
        parent.kill()
        parent.wait(10)
        # then the worker notices and exits
        wait_until(lambda: not _alive(worker), timeout=10, what="the orphaned worker to exit")
    finally:
        parent.kill()
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            psutil.Process(int(pid_file.read_text())).kill()
