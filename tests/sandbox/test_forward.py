"""The forwarder of granted hosts: only CONNECT to a granted host:port the egress rules accept."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from modelplane.egress import EgressRules
from modelplane.sandbox import HostForwarder, NetworkEvent, granted


def test_a_grant_names_a_host_on_any_port_or_one_host_and_port() -> None:
    assert granted(["127.0.0.1"], "127.0.0.1", 8080)
    assert granted(["API.example.com:443"], "api.example.com", 443)
    assert not granted(["api.example.com:443"], "api.example.com", 80)
    assert not granted(["127.0.0.1"], "localhost", 8080)
    assert not granted([], "127.0.0.1", 80)


async def _ask(forwarder: HostForwarder, request: bytes) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        async with forwarder.serving(Path(tmp)) as socket:
            reader, writer = await asyncio.open_unix_connection(str(socket))
            writer.write(request)
            answer = await reader.read()
            writer.close()
            return answer


def test_only_connect_is_forwarded_and_an_ungranted_host_is_refused_and_reported() -> None:
    events: list[NetworkEvent] = []
    forwarder = HostForwarder(["127.0.0.1:9"], EgressRules(allow_loopback=True), events.append)
    # a plain HTTP request is not a tunnel
    answer = asyncio.run(_ask(forwarder, b"GET http://127.0.0.1:9/ HTTP/1.1\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.1 405") and events == []
    # a host that is not granted is refused with the reason, and reported
    answer = asyncio.run(_ask(forwarder, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.1 403") and b"not granted" in answer
    assert events == [
        NetworkEvent("example.com", 443, False, answer.split(b"\r\n\r\n")[1].decode())
    ]


def test_a_granted_host_the_egress_rules_refuse_is_refused() -> None:
    events: list[NetworkEvent] = []
    forwarder = HostForwarder(["169.254.169.254"], EgressRules(), events.append)
    answer = asyncio.run(_ask(forwarder, b"CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.1 403") and b"metadata" in answer
    assert [e.allowed for e in events] == [False]
