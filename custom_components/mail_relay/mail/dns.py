"""MX and SRV lookups for autodetection, through aiodns (a Home Assistant dependency).

A thin typed layer: records come back as our own dataclasses, every failure as
``DnsError``, and nameservers may carry a port ("host:port", "[v6]:port") so an
organisation (or a test) can point lookups at its own server. With no
nameserver configured, c-ares reads the system's resolv.conf.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiodns
import pycares

# "No such name" and "no record of that type" are answers, not failures.
_EMPTY_ANSWERS = frozenset({pycares.errno.ARES_ENOTFOUND, pycares.errno.ARES_ENODATA})


class DnsError(Exception):
    """A lookup failed (no answer, server failure, bad configuration)."""


@dataclass(frozen=True, slots=True)
class MxRecord:
    """A mail exchanger."""

    priority: int
    host: str


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """A service location (RFC 2782); target "" means "not offered"."""

    priority: int
    weight: int
    port: int
    target: str


def split_nameserver(server: str) -> tuple[str, int]:
    """Split "host", "host:port" or "[v6]:port" into host and port."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if server.count(":") == 1:
        host, _, port = server.partition(":")
        return host, int(port)
    return server, 53


def _groups(nameservers: Sequence[str]) -> list[tuple[int, list[str]]]:
    """Group nameservers by port, in order: a c-ares channel has one port."""
    groups: list[tuple[int, list[str]]] = []
    for server in nameservers:
        try:
            host, port = split_nameserver(server)
        except ValueError as err:
            raise DnsError(f"bad nameserver {server!r}") from err
        if groups and groups[-1][0] == port:
            groups[-1][1].append(host)
        else:
            groups.append((port, [host]))
    return groups


class DnsResolver:
    """Ask the configured nameservers (or the system's) for MX and SRV records."""

    def __init__(
        self, nameservers: Sequence[str] = (), *, timeout: float = 3.0
    ) -> None:
        """Use these nameservers ("host" or "host:port"); none: the system's."""
        self._groups = _groups(nameservers)
        self._timeout = timeout

    async def _query_group(
        self, name: str, qtype: str, port: int | None, hosts: list[str]
    ) -> list[Any]:
        """Query one channel, then tear it down so no socket or timer lingers.

        The channel is made here, inside the running loop (aiodns binds to the
        loop it is created in), and lives only for this query.
        """
        options: dict[str, Any] = {"timeout": self._timeout, "tries": 1}
        if port is not None:
            options.update(udp_port=port, tcp_port=port)
        try:
            resolver = aiodns.DNSResolver(
                hosts or None, loop=asyncio.get_running_loop(), **options
            )
        except (ValueError, pycares.AresError) as err:
            raise DnsError(f"bad nameserver configuration: {err}") from err
        try:
            # c-ares enforces the timeout per server; this bounds the whole query.
            async with asyncio.timeout(self._timeout * max(len(hosts), 1) + 1):
                result: list[Any] = await resolver.query(name, qtype)
        except aiodns.error.DNSError as err:
            if err.args and err.args[0] in _EMPTY_ANSWERS:
                return []
            raise DnsError(f"lookup of {name} failed: {err}") from err
        except TimeoutError as err:
            raise DnsError(f"lookup of {name} timed out") from err
        finally:
            # Cancelling ends pending queries, which closes their sockets and
            # stops aiodns's timer in this loop. aiodns 3.2 has no close(); pycares
            # 4.9+ frees the channel on close(), older ones when it is collected.
            resolver.cancel()
            close = getattr(resolver._channel, "close", None)
            if close is not None:
                close()
        return result

    async def _query(self, name: str, qtype: str) -> list[Any]:
        if not self._groups:
            return await self._query_group(name, qtype, None, [])
        last: DnsError | None = None
        for port, hosts in self._groups:
            try:
                return await self._query_group(name, qtype, port, hosts)
            except DnsError as err:
                last = err
        assert last is not None  # at least one group was tried
        raise last

    async def mx(self, name: str) -> list[MxRecord]:
        """Return the MX records of a domain, best (lowest priority) first."""
        records = [
            MxRecord(int(r.priority), str(r.host).rstrip(".").lower())
            for r in await self._query(name, "MX")
        ]
        return sorted(records, key=lambda r: r.priority)

    async def srv(self, name: str) -> list[SrvRecord]:
        """Return the SRV records of a service name, in preference order."""
        records = [
            SrvRecord(
                int(r.priority),
                int(r.weight),
                int(r.port),
                str(r.host).rstrip(".").lower(),
            )
            for r in await self._query(name, "SRV")
        ]
        return sorted(records, key=lambda r: (r.priority, -r.weight))
