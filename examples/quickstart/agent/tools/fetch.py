"""The quickstart's sandboxed process tool: fetches one http URL through the runtime's forwarder.

It runs in the process sandbox (docs/sandbox.md) with no network of its own: the only way out is
the Unix socket named by ``MODELPLANE_PROXY``, whose forwarder lets it reach only the hosts the
Agent's ``tools[].hosts`` grants (and the platform's egress rules allow). Reads ``{"url": ...}``
on stdin; writes ``{"status": N, "body": "..."}`` or ``{"refused": "why"}`` on stdout. Standard
library only: it runs on the system's python3.
"""

import io
import json
import os
import socket
import sys
from urllib.parse import urlsplit


def _head(stream: io.BufferedReader) -> tuple[int, int]:
    """The status and Content-Length (-1 when absent) of an HTTP response."""
    status = int(stream.readline().split(b" ", 2)[1])
    length = -1
    while (line := stream.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, length


def fetch(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return {"refused": f"{url!r} is not an http:// URL"}
    target = f"{parts.hostname}:{parts.port or 80}"
    proxy = os.environ.get("MODELPLANE_PROXY")
    if not proxy:
        return {"refused": "no host is granted to this tool"}
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(10)
        conn.connect(proxy)
        conn.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        stream = conn.makefile("rb")
        status, length = _head(stream)
        if status != 200:
            return {"refused": stream.read(max(length, 0)).decode(errors="replace")}
        path = parts.path or "/"
        request = f"GET {path} HTTP/1.0\r\nHost: {target}\r\nConnection: close\r\n\r\n"
        conn.sendall(request.encode())
        status, length = _head(stream)
        body = stream.read(length if length >= 0 else 4096)
        return {"status": status, "body": body[:4096].decode(errors="replace")}


if __name__ == "__main__":
    print(json.dumps(fetch(str(json.load(sys.stdin)["url"]))))
