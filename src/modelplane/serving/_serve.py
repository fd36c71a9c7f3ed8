"""Running a worker app: bind a loopback socket (port 0 = any free one), announce the port, serve.

The port is written to ``--port-file`` only after the socket is bound and the model is loaded, so
whoever started the worker learns a port that answers; the write is atomic (rename).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def announce(port_file: str | None, port: int) -> None:
    if not port_file:
        return
    path = Path(port_file)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)


def serve_app(app: Starlette, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve ``app`` on the bound ``sock`` until SIGINT/SIGTERM."""
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    asyncio.run(server.serve(sockets=[sock]))


def exit_with_parent(interval: float = 0.5) -> None:
    """End this process when the one that started it dies (``kill -9`` of ``modelplane up``).

    Workers run in a session of their own, so no signal reaches them when their node agent's
    process disappears; an orphan would keep its port and memory, and the next ``up`` would start
    a second replica beside it. The parent's death shows as a change of ``getppid()``.
    (``PR_SET_PDEATHSIG`` is not used: it fires when the *thread* that forked exits, and the node
    agent starts workers from short-lived threads.)
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)  # a poll of the parent's existence, not a synchronisation
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
