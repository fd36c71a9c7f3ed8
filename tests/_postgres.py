"""A PostgreSQL server of a test's own, for what the shared one must not suffer (a restart).

The machine's PostgreSQL serves every test; a test that restarts or kills the database starts
its own cluster with the same binaries (``initdb``, ``pg_ctl``) in a temporary folder owned by
the ``postgres`` user (PostgreSQL refuses to run as root), on a free port.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _bin_dir() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def unavailable() -> str | None:
    """Why a private server cannot be started here, or None."""
    if _bin_dir() is None:
        return "PostgreSQL's server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run PostgreSQL as"
    return None


class PrivatePostgres:
    """``initdb`` + ``pg_ctl`` in a temporary folder; ``url`` reaches database ``postgres``."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        assert bin_dir is not None, unavailable()
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="mp-pg-"))
        self.data = self.root / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self, *, also_listen: str = "") -> None:
        """Start it on 127.0.0.1 (and ``also_listen``, an address it then trusts a /16 of)."""
        addresses = ",".join(filter(None, ("127.0.0.1", also_listen)))
        if also_listen:
            hba = self.data / "pg_hba.conf"
            net = ".".join(also_listen.split(".")[:2]) + ".0.0/16"
            line = f"host all all {net} trust\n"
            if line not in hba.read_text():
                with hba.open("a") as f:
                    f.write(line)
        options = f"-p {self.port} -k {self.root} -c listen_addresses={addresses} -c fsync=off"
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``mode`` ``immediate`` is a crash: no checkpoint, clients cut off."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()
