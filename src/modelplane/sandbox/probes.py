"""Escape probes: a fixed set of attempts to get out of the sandboxes, each expected to be denied.

A process probe is a short Python program run under :class:`ProcessSandbox` that prints
``ESCAPED <how>`` when the attempt worked and ``DENIED <why>`` otherwise; a WebAssembly probe is a
reference tool whose call must fail or see nothing. :func:`run_escape_probes` runs them all
(the test suite and ``modelplane bench sandbox`` both do) and returns one :class:`ProbeResult` each.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelplane.sandbox import _tools
from modelplane.sandbox._process import ProcessGrants, ProcessLimits, ProcessSandbox
from modelplane.sandbox._wasm import WasmRuntime, to_wasm
from modelplane.sandbox.errors import SandboxError, ToolDeadlineExceeded, ToolOutOfMemory

#: the host's secrets a probe looks for: a file outside every grant, a variable of the platform
SECRET = "modelplane-probe-secret"
PYTHON = "/usr/bin/python3"

_TRY = """
import os, sys, socket, ctypes, errno
def escaped(how): print("ESCAPED", how); sys.exit(0)
def denied(why): print("DENIED", why); sys.exit(0)
"""

#: name -> program; ``{secret_file}``, ``{port}`` and ``{parent_pid}`` are filled in
PROCESS_PROBES: dict[str, str] = {
    "read_file_outside_grants": """
try: escaped(open({secret_file!r}).read())
except OSError as e: denied(e)""",
    "write_outside_tmp": """
for p in ("/usr/escape", "/etc/escape", "/escape"):
    try: open(p, "w").write("x"); escaped(p)
    except OSError: pass
denied("read-only")""",
    "network_loopback_of_host": """
try: socket.create_connection(("127.0.0.1", {port}), timeout=1); escaped("connected")
except OSError as e: denied(e)""",
    "network_outside": """
try: socket.create_connection(("192.0.2.1", 80), timeout=1); escaped("connected")
except OSError as e: denied(e)""",
    "parent_environment": """
seen = [k for k, v in os.environ.items() if "{secret}" in v]
for pid in os.listdir("/proc"):
    try: seen += ["/proc/" + pid] if b"{secret}" in open("/proc/%s/environ" % pid, "rb").read() else []
    except (OSError, ValueError): pass
escaped(seen) if seen else denied("no secret in any environment")""",
    "signal_parent": """
try: os.kill({parent_pid}, 0); escaped("the platform's pid is visible")
except OSError as e: denied(e)""",
    "fork_bomb": """
n = 0
try:
    while n < 5000:
        if os.fork() == 0:
            import time; time.sleep(30); os._exit(0)
        n += 1
    escaped(n)
except OSError as e: denied("after %d forks: %s" % (n, e))""",
    "ptrace_init": """
libc = ctypes.CDLL(None, use_errno=True)
if libc.ptrace(16, 1, 0, 0) == 0: escaped("attached to pid 1")
denied(os.strerror(ctypes.get_errno()))""",
    "mount": """
libc = ctypes.CDLL(None, use_errno=True)
if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0: escaped("mounted")
denied(os.strerror(ctypes.get_errno()))""",
    "become_root": """
try: os.setuid(0); escaped("uid 0")
except OSError as e: denied(e)""",
    "memory_2gib": """
try: b = bytearray(2 << 30); escaped(len(b))
except MemoryError as e: denied("MemoryError")""",
    "file_over_limit": """
try:
    with open("/tmp/big", "wb") as f: f.write(b"x" * (128 << 20))
    escaped("wrote 128 MiB")
except OSError as e: denied(e)""",
}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str
    denied: bool
    detail: str


@contextmanager
def _host_bait() -> Iterator[tuple[Path, int]]:
    """A secret file in the host's /tmp and a listening socket on the host's loopback."""
    with tempfile.TemporaryDirectory() as tmp, socket.create_server(("127.0.0.1", 0)) as srv:
        secret = Path(tmp) / "secret.txt"
        secret.write_text(SECRET)
        secret.chmod(0o644)
        os.chmod(tmp, 0o755)
        yield secret, srv.getsockname()[1]


def run_process_probe(
    sandbox: ProcessSandbox, name: str, *, grants: ProcessGrants | None = None, port: int = 1
) -> ProbeResult:
    """Run one process probe (with a host bait of its own unless ``port`` is given)."""
    with _host_bait() as (secret_file, bait_port):
        program = _TRY + PROCESS_PROBES[name].format(
            secret_file=str(secret_file),
            port=port if port != 1 else bait_port,
            parent_pid=os.getpid(),
            secret=SECRET,
        )
        os.environ["MODELPLANE_PROBE_SECRET"] = SECRET
        try:
            result = sandbox.run(
                [PYTHON, "-c", program],
                limits=ProcessLimits(wall_s=10.0, processes=32, file_bytes=16 << 20),
                grants=grants,
            )
        except SandboxError as exc:
            return ProbeResult(name, True, f"{type(exc).__name__}: {exc}")
        finally:
            os.environ.pop("MODELPLANE_PROBE_SECRET", None)
    out = result.stdout.decode(errors="replace").strip()
    if out.startswith("DENIED"):
        return ProbeResult(name, True, out)
    err = result.stderr.decode(errors="replace").strip()[-300:]
    return ProbeResult(name, False, out or f"exit {result.returncode}: {err}")


def _wasm_probes(runtime: WasmRuntime) -> dict[str, Callable[[], str]]:
    def denied_if_error(source: str, wanted: type[SandboxError]) -> Callable[[], str]:
        def probe() -> str:
            try:
                return f"ESCAPED {runtime.load(source.encode()).call({})}"
            except wanted as exc:
                return f"DENIED {exc}"

        return probe

    def denied_if_equal(source: str, expected: object) -> Callable[[], str]:
        def probe() -> str:
            got = runtime.load(source.encode()).call({})
            return f"DENIED {got}" if got == expected else f"ESCAPED {got}"

        return probe

    return {
        "wasm_import_not_granted": denied_if_error(_tools.SMUGGLER, SandboxError),
        "wasm_directory_not_granted": denied_if_equal(_tools.PREOPEN, {"granted": False}),
        "wasm_environment_not_granted": denied_if_equal(_tools.ENVIRON, {"env": ""}),
        "wasm_runaway_loop": denied_if_error(_tools.RUNAWAY, ToolDeadlineExceeded),
        "wasm_memory_without_bound": denied_if_error(_tools.GREEDY, ToolOutOfMemory),
    }


def run_escape_probes(
    sandbox: ProcessSandbox | None = None, runtime: WasmRuntime | None = None
) -> list[ProbeResult]:
    """Every probe, process ones first; each denied unless a sandbox leaks."""
    sandbox = sandbox or ProcessSandbox()
    runtime = runtime or WasmRuntime()
    results = [run_process_probe(sandbox, name) for name in PROCESS_PROBES]
    for name, probe in _wasm_probes(runtime).items():
        out = probe()
        results.append(ProbeResult(name, out.startswith("DENIED"), out))
    return results


__all__ = [
    "ECHO_WAT",
    "PROCESS_PROBES",
    "RUNAWAY_WAT",
    "ProbeResult",
    "run_escape_probes",
    "to_wasm",
]

#: the reference tools, for the benchmark and the docs
ECHO_WAT = _tools.ECHO
RUNAWAY_WAT = _tools.RUNAWAY
