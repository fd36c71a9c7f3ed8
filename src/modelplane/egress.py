"""Egress rules: which hosts the platform may call on a tenant's behalf (model upstreams).

A Model version of format ``upstream`` names an address the platform connects to, and whoever
may write a Model chooses it. Left open, that lets an API client make the server call the cloud
metadata service (credentials of the machine), the server's own loopback ports, or anything on
the link-local network. :class:`EgressRules` is the operator's answer, checked by the gateway's
upstream client when it opens a connection:

* **Always refused**: link-local addresses (``169.254.0.0/16``, ``fe80::/10``), the cloud
  metadata services (``169.254.169.254``, ``fd00:ec2::254``, ``100.100.100.200``, the host names
  ``metadata.google.internal`` and ``metadata``) and unspecified addresses (``0.0.0.0``, ``::``).
  No allow-list entry lifts these.
* **Loopback** (``127.0.0.0/8``, ``::1``, ``localhost``) is refused unless ``allow_loopback`` is
  set: embedded mode on one machine, tests and the quickstart use a provider on this machine.
* **The allow-list** (``allow``): when it is empty, any other address may be called; when it
  names anything, a host must match one of its entries. An entry is a host name
  (``api.openai.com``), a wildcard for the subdomains of a name (``*.example.com``; not the name
  itself), or an address or network in CIDR notation (``10.0.0.0/8``, ``2001:db8::/32``). Host
  names are compared with the host the URL names; networks with the resolved addresses.

The check is made on the **resolved** addresses, and the connection is then made to the address
that was checked (:meth:`EgressRules.resolve` returns it): a name that resolves to an allowed
address for the check and to a refused one for the connection (DNS rebinding) cannot slip
through. A host whose resolution gives several addresses is refused if any of them is.

This module imports nothing else of Modelplane, so the gateway and agent runtimes can share it.

Example::

    rules = EgressRules.parse(["*.openai.azure.com", "10.20.0.0/16"])
    refusal = rules.check("api.example.com", "169.254.169.254")
    assert refusal is not None and refusal.rule == "link-local"
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["EgressRefused", "EgressRules", "Refusal"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: metadata services of the clouds: refused whatever the rules say
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a connection is refused: the host as named, the address it resolved to, the rule."""

    host: str
    address: str
    rule: str

    def message(self) -> str:
        at = f" ({self.address})" if self.address and self.address != self.host else ""
        return f"the upstream host {self.host!r}{at} is not allowed: {self.rule}"


class EgressRefused(Exception):
    """A connection the rules refuse; carries the :class:`Refusal`."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message())
        self.refusal = refusal


@dataclass(frozen=True)
class EgressRules:
    """The operator's egress rules for upstream hosts (see the module docstring)."""

    #: host names (``api.example.com``), subdomain wildcards (``*.example.com``)
    hosts: frozenset[str] = frozenset()
    wildcards: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    allow_loopback: bool = False
    #: the allow-list as the operator wrote it, for messages
    written: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, allow: Iterable[str] = (), *, allow_loopback: bool = False) -> EgressRules:
        """Rules from allow-list entries as written on a command line.

        Raises ValueError naming an entry that is neither a host name, a ``*.`` wildcard nor an
        address or CIDR network.
        """
        hosts: set[str] = set()
        wildcards: list[str] = []
        networks: list[IPNetwork] = []
        written: list[str] = []
        for raw in allow:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            written.append(entry)
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = entry[2:] if entry.startswith("*.") else entry
            if not _is_host_name(name):
                raise ValueError(
                    f"upstream allow-list entry {raw!r} is not a host name (api.example.com),"
                    " a wildcard (*.example.com) or an address or network (10.0.0.0/8)"
                )
            if entry.startswith("*."):
                wildcards.append(name)
            else:
                hosts.add(name)
        return cls(
            hosts=frozenset(hosts),
            wildcards=tuple(wildcards),
            networks=tuple(networks),
            allow_loopback=allow_loopback,
            written=tuple(written),
        )

    @property
    def has_allow_list(self) -> bool:
        return bool(self.hosts or self.wildcards or self.networks)

    def _host_listed(self, host: str) -> bool:
        return host in self.hosts or any(host.endswith("." + w) for w in self.wildcards)

    def check_name(self, host: str) -> Refusal | None:
        """The refusal of a host by its name alone (before resolving it), or None."""
        name = host.strip().lower().rstrip(".")
        if name in _METADATA_NAMES:
            return Refusal(host, "", "the cloud metadata service is never an upstream")
        if name in _LOOPBACK_NAMES and not self.allow_loopback:
            return Refusal(host, "", _LOOPBACK_RULE)
        return None

    def check(self, host: str, address: str) -> Refusal | None:
        """The refusal of connecting to ``address`` (which ``host`` resolved to), or None."""
        named = self.check_name(host)
        if named is not None:
            return Refusal(host, address, named.rule)
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return Refusal(host, address, "the address is not an IP address")
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
        if ip in _METADATA_ADDRESSES:
            return Refusal(host, address, "the cloud metadata service is never an upstream")
        if ip.is_unspecified:
            return Refusal(host, address, "the unspecified address is never an upstream")
        if ip.is_link_local:
            return Refusal(host, address, "link-local addresses are never upstreams")
        if ip.is_loopback and not self.allow_loopback:
            return Refusal(host, address, _LOOPBACK_RULE)
        if self.has_allow_list and not self._allowed(host, ip):
            listed = ", ".join(self.written)
            return Refusal(
                host,
                address,
                f"neither the host nor the address is on the upstream allow-list ({listed});"
                " an operator adds it with --upstream-allow",
            )
        return None

    def _allowed(self, host: str, ip: IPAddress) -> bool:
        if self._host_listed(host.strip().lower().rstrip(".")):
            return True
        if ip.is_loopback and self.allow_loopback:
            return True
        return any(ip.version == net.version and ip in net for net in self.networks)

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``, every one of them checked.

        Raises :class:`EgressRefused` when the name or any resolved address is refused, and
        OSError when the name does not resolve.
        """
        named = self.check_name(host)
        if named is not None:
            raise EgressRefused(named)
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses: list[str] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = str(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise OSError(f"{host} resolved to no address")
        for address in addresses:
            refusal = self.check(host, address)
            if refusal is not None:
                raise EgressRefused(refusal)
        return addresses

    async def resolve_url(self, url: str) -> list[str]:
        """:meth:`resolve` for the host and port an http(s) ``url`` names."""
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return await self.resolve(parts.hostname or "", port)


_LOOPBACK_RULE = (
    "loopback addresses are refused unless the gateway runs with --allow-loopback-upstreams"
)


def _is_host_name(name: str) -> bool:
    if not name or len(name) > 253:
        return False
    return all(
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in label)
        for label in name.split(".")
    )
