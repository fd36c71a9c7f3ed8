"""Native tools in a bubblewrap sandbox: namespaces, a read-only system, rlimits, a wall clock.

A sandboxed process sees the system directories (``/usr``, ``/etc`` and the ``/bin``, ``/lib``
links) read-only, a private ``/tmp``, a private ``/proc`` and ``/dev``, nothing else of the host
unless a directory is granted; it has no network unless granted (``--share-net``), no environment
of the platform's (only ``PATH``, ``HOME=/tmp``, ``LANG`` and granted variables), its own PID,
IPC and UTS namespaces, no capabilities, and a user of its own (from :data:`SANDBOX_UIDS`) when
the platform runs as root.
Resource limits are set by ``prlimit`` before bubblewrap starts (CPU seconds, address space,
processes, file size); a wall-clock timeout kills the whole process group (``--die-with-parent``
takes the sandbox with it, SIGTERM ignored or not); stdout and stderr are capped.

Where bubblewrap is missing or the kernel refuses namespaces, :class:`SandboxUnavailable` says
which and what to install; the tool never runs unsandboxed.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any

from modelplane.sandbox._seccomp import filter_program
from modelplane.sandbox.errors import (
    SandboxUnavailable,
    ToolDeadlineExceeded,
    ToolFailed,
    ToolInvalid,
    ToolOutputTooLarge,
)

#: what a sandbox sees of the host's filesystem, read-only (symlinks are recreated as links)
SYSTEM_PATHS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
_BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
#: a root platform runs each sandbox as its own user, drawn from this range: RLIMIT_NPROC never
#: binds root, and counts per user, so one uid per run keeps one tool's processes (and a fork
#: bomb's leftovers still being torn down) from counting against another's
SANDBOX_UIDS = range(10_000_000, 10_000_000 + (1 << 20))
_INSTALL = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"
)
_USERNS = (
    "the kernel refused the namespaces bubblewrap needs: allow unprivileged user namespaces"
    " (sysctl kernel.unprivileged_userns_clone=1 on Debian;"
    " kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04), or run in a container"
    " that permits them"
)


_FILTER = filter_program()


@dataclass(frozen=True, slots=True)
class ProcessLimits:
    """What one sandboxed run may use."""

    wall_s: float = 30.0
    cpu_s: int = 10
    memory_bytes: int = 1024 * 1024 * 1024
    processes: int = 64
    file_bytes: int = 64 * 1024 * 1024
    output_bytes: int = 1024 * 1024
    #: after SIGTERM at the deadline, how long before SIGKILL
    grace_s: float = 0.1


@dataclass(frozen=True, slots=True)
class ProcessGrants:
    """What a sandboxed process may reach beyond the defaults; the default grants nothing."""

    network: bool = False
    ro_dirs: tuple[Path, ...] = ()
    rw_dirs: tuple[Path, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    #: where the process starts (a granted folder); ``/tmp`` when None
    cwd: Path | None = None


@dataclass(frozen=True, slots=True)
class ProcessResult:
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float


def bwrap_argv(grants: ProcessGrants, seccomp_fd: int | None = None) -> list[str]:
    """The bubblewrap command line (up to ``--``) for ``grants``, the filter read from a fd."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(f"bubblewrap (bwrap) is not on PATH: {_INSTALL}")
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if grants.network:
        argv.append("--share-net")
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    cwd = str(grants.cwd) if grants.cwd is not None else "/tmp"
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", cwd]
    for flag, dirs in (("--ro-bind", grants.ro_dirs), ("--bind", grants.rw_dirs)):
        for d in dirs:
            if not d.is_dir():
                raise ToolInvalid(f"granted directory {d} does not exist")
            argv += [flag, str(d), str(d)]
    # the sandbox's own root (a tmpfs bubblewrap builds) is read-only too, once set up
    argv += ["--remount-ro", "/"]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return [*argv, "--"]


def _prlimit_argv(limits: ProcessLimits) -> list[str]:
    """``prlimit`` (util-linux) setting the rlimits, then exec'ing bubblewrap.

    Not a ``preexec_fn``: the runtime calling the sandbox has threads, and a Python function
    between fork and exec may deadlock there; ``prlimit`` is a program, so nothing of ours runs
    in the child.
    """
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        raise SandboxUnavailable(
            "prlimit is not on PATH: install util-linux (Debian/Ubuntu: apt-get install util-linux)"
        )
    return [
        prlimit,
        f"--cpu={limits.cpu_s}",
        f"--as={limits.memory_bytes}",
        f"--nproc={limits.processes}",
        f"--fsize={limits.file_bytes}",
        "--core=0",
        "--",
    ]


@cache
def _check_namespaces() -> None:
    """Once per process: can bubblewrap build a sandbox here? (SandboxUnavailable if not.)"""
    probe = ProcessSandbox(check=False).run(["/bin/true"], limits=ProcessLimits(wall_s=10.0))
    if probe.returncode != 0:
        said = probe.stderr.decode(errors="replace").strip()
        raise SandboxUnavailable(f"{_USERNS} (bwrap said: {said or 'nothing'})")


class ProcessSandbox:
    """Runs commands under bubblewrap with limits and grants; see the module docstring."""

    def __init__(self, *, check: bool = True) -> None:
        self._check = check

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes = b"",
        limits: ProcessLimits | None = None,
        grants: ProcessGrants | None = None,
    ) -> ProcessResult:
        """Run ``argv`` in a fresh sandbox; its exit status and (capped) output."""
        limits = limits or ProcessLimits()
        grants = grants or ProcessGrants()
        if self._check:
            _check_namespaces()
        start = time.perf_counter()
        proc = _spawn(argv, limits, grants)
        try:
            out, err = _pump(proc, stdin, start + limits.wall_s, limits)
        finally:
            _kill_group(proc, limits.grace_s)
        return ProcessResult(proc.returncode, out, err, time.perf_counter() - start)

    def start(
        self,
        argv: Sequence[str],
        *,
        output: IO[bytes],
        limits: ProcessLimits | None = None,
        grants: ProcessGrants | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a fresh sandbox and return at once, for work that outlives a call
        (a Job's replicas): stdin empty, stdout and stderr to ``output`` (a file the caller
        opened). The rlimits hold; the wall clock and the output cap are the caller's, who ends
        the process (and everything in its sandbox) with :meth:`stop`."""
        limits = limits or ProcessLimits()
        grants = grants or ProcessGrants()
        if self._check:
            _check_namespaces()
        return _spawn(argv, limits, grants, output)

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
        """End a process :meth:`start` returned: SIGTERM to its group, SIGKILL after ``grace_s``;
        its sandbox (a PID namespace) goes with it."""
        _kill_group(proc, grace_s)

    def call_json(
        self,
        argv: Sequence[str],
        args: Any,
        *,
        limits: ProcessLimits | None = None,
        grants: ProcessGrants | None = None,
    ) -> Any:
        """Run ``argv`` with ``args`` as JSON on stdin; its stdout read as JSON."""
        payload = json.dumps(args).encode()
        result = self.run(argv, stdin=payload, limits=limits, grants=grants)
        if result.returncode != 0:
            tail = result.stderr.decode(errors="replace").strip()[-500:]
            raise ToolFailed(f"{argv[0]} exited with status {result.returncode}: {tail}")
        try:
            return json.loads(result.stdout)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ToolFailed(f"{argv[0]} wrote output that is not JSON: {exc}") from None


def _spawn(
    argv: Sequence[str],
    limits: ProcessLimits,
    grants: ProcessGrants,
    output: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start bubblewrap, handing it the seccomp filter through a pipe."""
    # a root platform drops to a uid of the run's own (see SANDBOX_UIDS) before prlimit starts
    uid = random.choice(SANDBOX_UIDS) if os.getuid() == 0 else None
    read, write = os.pipe()
    try:
        try:
            os.write(write, _FILTER)  # a few hundred bytes: well within a pipe's buffer
        finally:
            os.close(write)
        bwrap = bwrap_argv(grants, read)  # first: a missing bwrap is the error to name
        return subprocess.Popen(
            [*_prlimit_argv(limits), *bwrap, *argv],
            stdin=subprocess.PIPE if output is None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if output is None else output,
            stderr=subprocess.PIPE if output is None else output,
            env={**_BASE_ENV, **grants.env},
            start_new_session=True,
            pass_fds=(read,),
            user=uid,
            group=uid,
            extra_groups=[] if uid is not None else None,
        )
    finally:
        os.close(read)


def _pump(
    proc: subprocess.Popen[bytes], stdin: bytes, deadline: float, limits: ProcessLimits
) -> tuple[bytes, bytes]:
    """Feed stdin, collect stdout and stderr until both close; raise at the deadline or cap."""
    assert proc.stdin and proc.stdout and proc.stderr
    chunks: dict[int, list[bytes]] = {proc.stdout.fileno(): [], proc.stderr.fileno(): []}
    sizes = dict.fromkeys(chunks, 0)
    sel = selectors.DefaultSelector()
    for fd in chunks:
        sel.register(fd, selectors.EVENT_READ)
    pending = memoryview(stdin)
    stdin_fd = proc.stdin.fileno()
    if pending:
        os.set_blocking(stdin_fd, False)
        sel.register(stdin_fd, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    while len(sel.get_map()) > 0:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise ToolDeadlineExceeded(
                f"the process ran past its wall-clock limit of {limits.wall_s}s"
            )
        for key, _ in sel.select(left):
            fd = key.fd
            if fd == stdin_fd:
                try:
                    pending = pending[os.write(fd, pending) :]
                except BrokenPipeError:
                    pending = pending[:0]
                if not pending:
                    sel.unregister(fd)
                    proc.stdin.close()
                continue
            data = os.read(fd, 65536)
            if not data:
                sel.unregister(fd)
                continue
            sizes[fd] += len(data)
            if sizes[fd] > limits.output_bytes:
                which = "stdout" if fd == proc.stdout.fileno() else "stderr"
                raise ToolOutputTooLarge(
                    f"the process wrote more than {limits.output_bytes} bytes to {which}; it was cut off"
                )
            chunks[fd].append(data)
    try:  # its output closed; it may still run (a child that closed stdout and stayed)
        proc.wait(max(0.0, deadline - time.perf_counter()))
    except subprocess.TimeoutExpired:
        raise ToolDeadlineExceeded(
            f"the process ran past its wall-clock limit of {limits.wall_s}s"
        ) from None
    return b"".join(chunks[proc.stdout.fileno()]), b"".join(chunks[proc.stderr.fileno()])


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM then SIGKILL to the whole process group of ``proc``; reap it."""
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(grace_s)
                break
            except subprocess.TimeoutExpired:
                continue
        proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
