"""The seccomp filter of the process sandbox: a classic BPF program that bubblewrap installs.

System calls that a tool never needs and that reach across the sandbox's walls (tracing other
processes, mounting, loading kernel code, entering namespaces, reading other processes' memory)
fail with EPERM; every other call is allowed. The program is built here, without libseccomp, for
x86_64 and aarch64; on other architectures the sandbox refuses to start rather than run unfiltered.
"""

from __future__ import annotations

import platform
import struct

from modelplane.sandbox.errors import SandboxUnavailable

#: the denied system calls, by name
DENIED = (
    "ptrace", "mount", "umount2", "pivot_root", "chroot", "kexec_load", "kexec_file_load", "bpf",
    "perf_event_open", "keyctl", "add_key", "request_key", "unshare", "setns", "open_by_handle_at",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "userfaultfd",
    "process_vm_readv", "process_vm_writev",
)  # fmt: skip

_X86_64 = {
    "ptrace": 101, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
    "kexec_load": 246, "kexec_file_load": 320, "bpf": 321, "perf_event_open": 298, "keyctl": 250,
    "add_key": 248, "request_key": 249, "unshare": 272, "setns": 308, "open_by_handle_at": 304,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "reboot": 169, "swapon": 167,
    "swapoff": 168, "userfaultfd": 323, "process_vm_readv": 310, "process_vm_writev": 311,
}  # fmt: skip
_AARCH64 = {
    "ptrace": 117, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "kexec_load": 104,
    "kexec_file_load": 294, "bpf": 280, "perf_event_open": 241, "keyctl": 219, "add_key": 217,
    "request_key": 218, "unshare": 97, "setns": 268, "open_by_handle_at": 265, "init_module": 105,
    "finit_module": 273, "delete_module": 106, "reboot": 142, "swapon": 224, "swapoff": 225,
    "userfaultfd": 282, "process_vm_readv": 270, "process_vm_writev": 271,
}  # fmt: skip
#: machine -> (AUDIT_ARCH_*, syscall numbers)
_ARCHES = {"x86_64": (0xC000003E, _X86_64), "aarch64": (0xC00000B7, _AARCH64)}

_LD_W_ABS, _JEQ_K, _JGE_K, _RET_K = 0x20, 0x15, 0x35, 0x06
_KILL_PROCESS, _ALLOW, _ERRNO_EPERM = 0x80000000, 0x7FFF0000, 0x00050000 | 1
#: x86_64's x32 ABI numbers its calls from here; all of them are refused
_X32_BIT = 0x40000000


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def filter_program(machine: str | None = None) -> bytes:
    """The BPF program (struct sock_filter[]) for ``machine`` (this one by default)."""
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise SandboxUnavailable(
            f"the process sandbox has no seccomp filter for the {machine} architecture"
            f" (only {', '.join(_ARCHES)}); tools do not run unfiltered"
        )
    arch, numbers = _ARCHES[machine]
    denied = [numbers[name] for name in DENIED]
    n = len(denied)
    prog = [
        _insn(_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _insn(_JEQ_K, 1, 0, arch),
        _insn(_RET_K, 0, 0, _KILL_PROCESS),
        _insn(_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        _insn(_JGE_K, n + 1, 0, _X32_BIT),
    ]
    prog += [_insn(_JEQ_K, n - i, 0, nr) for i, nr in enumerate(denied)]
    prog += [_insn(_RET_K, 0, 0, _ALLOW), _insn(_RET_K, 0, 0, _ERRNO_EPERM)]
    return b"".join(prog)
