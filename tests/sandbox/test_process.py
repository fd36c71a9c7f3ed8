"""The process sandbox: JSON tools, limits, the wall clock, output caps, grants, a missing bwrap."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from tests.control._wait import wait_until

from modelplane.sandbox import (
    ProcessGrants,
    ProcessLimits,
    ProcessSandbox,
    SandboxUnavailable,
    ToolDeadlineExceeded,
    ToolFailed,
    ToolInvalid,
    ToolOutputTooLarge,
)
from modelplane.sandbox.probes import PYTHON

ECHO = "import json, sys; print(json.dumps({'got': json.load(sys.stdin)}))"


def _processes_with(marker: str) -> list[int]:
    """The processes named ``marker`` (their argv[0]; bwrap's own command line holds the script
    that names them, so it is not counted)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == marker.encode():
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_a_json_tool_reads_stdin_and_writes_stdout(sandbox: ProcessSandbox) -> None:
    assert sandbox.call_json([PYTHON, "-c", ECHO], {"q": [1, 2]}) == {"got": {"q": [1, 2]}}


def test_a_failing_tool_is_a_tool_error_with_its_stderr(sandbox: ProcessSandbox) -> None:
    with pytest.raises(ToolFailed, match="status 3: boom"):
        sandbox.call_json(["/bin/sh", "-c", "echo boom >&2; exit 3"], {})


def test_output_that_is_not_json_is_a_tool_error(sandbox: ProcessSandbox) -> None:
    with pytest.raises(ToolFailed, match="not JSON"):
        sandbox.call_json(["/bin/echo", "hello"], {})


def test_the_wall_clock_kills_the_whole_group_even_when_sigterm_is_ignored(
    sandbox: ProcessSandbox,
) -> None:
    marker = "sandbox-wall-clock-marker"
    script = (
        f"trap '' TERM; (trap '' TERM; exec -a {marker} sleep 300) & exec -a {marker} sleep 300"
    )
    with pytest.raises(ToolDeadlineExceeded, match=r"wall-clock limit of 0\.5s"):
        sandbox.run(["/bin/bash", "-c", script], limits=ProcessLimits(wall_s=0.5))
    wait_until(lambda: not _processes_with(marker), timeout=5, what="no sandboxed process left")
    assert _processes_with(marker) == []


def test_a_tool_that_closes_its_output_and_stays_is_stopped_at_the_deadline(
    sandbox: ProcessSandbox,
) -> None:
    with pytest.raises(ToolDeadlineExceeded, match="wall-clock"):
        sandbox.run(["/bin/sh", "-c", "exec >&- 2>&-; sleep 30"], limits=ProcessLimits(wall_s=0.3))


def test_a_tool_writing_without_end_is_cut_off(sandbox: ProcessSandbox) -> None:
    # /bin/yes would write 1 GB and more; the cap stops it at the first MiB
    with pytest.raises(ToolOutputTooLarge, match="more than 1048576 bytes to stdout"):
        sandbox.run(["/usr/bin/yes"], limits=ProcessLimits(wall_s=20))


def test_cpu_seconds_are_limited(sandbox: ProcessSandbox) -> None:
    result = sandbox.run(
        [PYTHON, "-c", "while True: pass"], limits=ProcessLimits(cpu_s=1, wall_s=20)
    )
    assert result.returncode != 0  # SIGXCPU, reported by bubblewrap as a failed child


def test_the_environment_has_only_the_basics_and_grants(sandbox: ProcessSandbox) -> None:
    os.environ["MODELPLANE_TEST_PARENT_ONLY"] = "parent"
    try:
        result = sandbox.run(["/usr/bin/env"], grants=ProcessGrants(env={"GRANTED": "yes"}))
    finally:
        os.environ.pop("MODELPLANE_TEST_PARENT_ONLY")
    names = {line.split("=", 1)[0] for line in result.stdout.decode().splitlines()}
    assert "GRANTED" in names
    assert "MODELPLANE_TEST_PARENT_ONLY" not in names
    assert names <= {"PATH", "HOME", "LANG", "PWD", "GRANTED"}


def test_a_granted_directory_is_readable_and_stays_read_only(sandbox: ProcessSandbox) -> None:
    # a root platform runs each tool as a user of its own: the granted folder must be readable by all
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        _read_only_grant(sandbox, Path(tmp))


def test_a_granted_directory_must_exist(sandbox: ProcessSandbox, tmp_path: Path) -> None:
    with pytest.raises(ToolInvalid, match="does not exist"):
        sandbox.run(["/bin/true"], grants=ProcessGrants(ro_dirs=(tmp_path / "missing",)))


def _read_only_grant(sandbox: ProcessSandbox, data: Path) -> None:
    (data / "note.txt").write_text("granted")
    grants = ProcessGrants(ro_dirs=(data,))
    read = sandbox.run(["/bin/cat", str(data / "note.txt")], grants=grants)
    assert read.stdout == b"granted"
    write = sandbox.run(["/bin/sh", "-c", f"echo x > {data}/new.txt"], grants=grants)
    assert write.returncode != 0 and b"Read-only" in write.stderr
    assert not (data / "new.txt").exists()


def test_private_tmp_is_writable_and_gone_afterwards(sandbox: ProcessSandbox) -> None:
    result = sandbox.run(["/bin/sh", "-c", "echo x > /tmp/f && ls /tmp"])
    assert result.stdout == b"f\n"
    assert sandbox.run(["/bin/ls", "/tmp"]).stdout == b""


def test_without_bwrap_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        ProcessSandbox(check=False).run(["/bin/true"])


def test_a_started_sandbox_runs_until_stopped_and_stop_ends_everything_in_it(
    sandbox: ProcessSandbox, tmp_path: Path
) -> None:
    # given a long-running sandbox (a Job's gang) whose processes ignore SIGTERM
    marker = "sandbox-started-marker"
    script = (
        f"echo started; trap '' TERM; (exec -a {marker} sleep 300) & exec -a {marker} sleep 300"
    )
    with (tmp_path / "out.log").open("wb") as output:
        proc = sandbox.start(["/bin/bash", "-c", script], output=output)
        # when it runs: start() returned at once, its output goes to the file
        wait_until(lambda: len(_processes_with(marker)) == 2, timeout=30, what="both running")
        assert proc.poll() is None
        wait_until(
            lambda: (tmp_path / "out.log").read_bytes() == b"started\n",
            timeout=10,
            what="its output in the file",
        )
        # then stop() ends the sandbox and every process in it
        ProcessSandbox.stop(proc, grace_s=0.2)
    assert proc.returncode is not None
    wait_until(lambda: not _processes_with(marker), timeout=10, what="no sandboxed process left")
