"""Granted hosts for a sandboxed process: a CONNECT forwarder on a Unix socket.

A process sandbox has a network namespace of its own with nothing in it. To let one tool reach
one host, the caller runs a :class:`HostForwarder` on its event loop, binds the folder holding its
Unix socket into the sandbox and tells the tool where the socket is (``MODELPLANE_PROXY``). The
tool sends ``CONNECT host:port HTTP/1.1``; the forwarder answers ``200`` and relays bytes when
``host:port`` is granted and the operator's egress rules accept every address the name resolves
to (it connects to an address it checked, so a name cannot rebind in between), and ``403`` with
the reason otherwise. Each decision is reported to ``on_event`` (the caller audits it).

A grant is ``host`` (any port) or ``host:port``, compared with the name the tool asks for, in
lower case: granting ``127.0.0.1`` does not grant ``localhost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from modelplane.egress import EgressRefused, EgressRules

#: the variable that tells a sandboxed tool where the forwarder's socket is
PROXY_ENV = "MODELPLANE_PROXY"
_HEADER_LIMIT = 8192
_HEADER_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class NetworkEvent:
    """One decision of the forwarder: ``host:port`` allowed or refused, and why."""

    host: str
    port: int
    allowed: bool
    reason: str

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


def granted(grants: Iterable[str], host: str, port: int) -> bool:
    """Is ``host:port`` one of ``grants`` (each ``host`` or ``host:port``)?"""
    host = host.lower().rstrip(".")
    return any(g.lower() in (host, f"{host}:{port}") for g in grants)


class HostForwarder:
    """Serves CONNECT requests on a Unix socket, forwarding only to granted hosts."""

    def __init__(
        self,
        grants: Iterable[str],
        egress: EgressRules,
        on_event: Callable[[NetworkEvent], None],
    ) -> None:
        self.grants = tuple(grants)
        self.egress = egress
        self.on_event = on_event
        #: the connections being served, cancelled when serving ends
        self._tasks: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def serving(self, folder: Path) -> AsyncIterator[Path]:
        """Listen on ``folder/proxy.sock`` (reachable by any user: the sandbox runs as another)
        until the block ends; yields the socket's path."""
        path = folder / "proxy.sock"
        server = await asyncio.start_unix_server(self._serve, path=str(path))
        os.chmod(path, 0o777)
        try:
            yield path
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._connect(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEADER_TIMEOUT_S)
        if len(head) > _HEADER_LIMIT:
            return await _answer(writer, 431, "request header too large")
        method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        target = rest.split(" ", 1)[0]
        host, _, port_text = target.rpartition(":")
        if method != "CONNECT" or not host or not port_text.isdigit():
            return await _answer(
                writer, 405, "only CONNECT host:port is forwarded (an HTTPS-style tunnel)"
            )
        port = int(port_text)
        refusal, address = await self._check(host, port)
        if refusal is not None:
            self.on_event(NetworkEvent(host, port, False, refusal))
            return await _answer(writer, 403, refusal)
        self.on_event(NetworkEvent(host, port, True, "granted by the tool's hosts"))
        try:
            up_reader, up_writer = await asyncio.open_connection(address, port)
        except OSError as exc:
            return await _answer(writer, 502, f"{host}:{port} did not answer: {exc}")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_relay(reader, up_writer), _relay(up_reader, writer))
        finally:
            up_writer.close()

    async def _check(self, host: str, port: int) -> tuple[str | None, str]:
        """(why ``host:port`` is refused, or None; the checked address to connect to)."""
        if not granted(self.grants, host, port):
            granted_list = ", ".join(self.grants) or "none"
            return f"{host}:{port} is not granted to this tool (its hosts: {granted_list})", ""
        try:
            addresses = await self.egress.resolve(host, port)
        except EgressRefused as refused:
            return f"refused by the platform's egress rules: {refused}", ""
        except OSError as exc:
            return f"{host} does not resolve: {exc}", ""
        return None, addresses[0]


async def _answer(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    body = reason.encode()
    head = f"HTTP/1.1 {status} Refused\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}"
    writer.write(head.encode() + b"\r\nConnection: close\r\n\r\n" + body)
    await writer.drain()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()
