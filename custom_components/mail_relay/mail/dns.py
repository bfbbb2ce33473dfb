"""MX and SRV lookups for autodetection, through aiodns (a Home Assistant dependency).

A thin typed layer: records come back as our own dataclasses, every failure as
``DnsError``, and nameservers may carry a port ("host:port", "[v6]:port") so an
organisation (or a test) can point lookups at its own server. With no
nameserver configured, c-ares reads the system's resolv.conf.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiodns
import pycares

# "No such name" and "no record of that type" are answers, not failures.
_EMPTY_ANSWERS = frozenset({pycares.errno.ARES_ENOTFOUND, pycares.errno.ARES_ENODATA})


# The record types asked for, as c-ares numbers them (pycares 4 and 5 alike).
type _QType = Literal["MX", "SRV"]
_QTYPES: dict[_QType, int] = {
    "MX": pycares.QUERY_TYPE_MX,
    "SRV": pycares.QUERY_TYPE_SRV,
}


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


@dataclass(frozen=True, slots=True)
class _Answer:
    """One MX or SRV record as aiodns gave it (host as written, maybe with a dot)."""

    priority: int
    host: str
    weight: int = 0
    port: int = 0


async def _ask(resolver: aiodns.DNSResolver, name: str, qtype: _QType) -> list[_Answer]:
    """Query MX or SRV records; the one place that knows both aiodns result shapes.

    aiodns 4 deprecates ``query()`` for ``query_dns()``, which returns pycares 5's
    ``DNSResult``: the records in ``.answer`` (records of other types may come
    along, a CNAME for one), each with a numeric ``.type`` and its fields in
    ``.data`` (MX: ``priority``, ``exchange``; SRV: ``priority``, ``weight``,
    ``port``, ``target``). Older aiodns only has ``query()``: a list of records
    of the asked type with ``priority``, ``host`` and for SRV ``weight``, ``port``.
    """
    query_dns = getattr(resolver, "query_dns", None)
    if query_dns is None:  # aiodns 3
        return [
            _Answer(
                int(r.priority),
                str(r.host),
                int(getattr(r, "weight", 0)),
                int(getattr(r, "port", 0)),
            )
            for r in await resolver.query(name, qtype)
        ]
    answers: list[_Answer] = []
    for record in (await query_dns(name, qtype)).answer:
        if record.type != _QTYPES[qtype]:
            continue
        data = record.data
        if qtype == "MX":
            answers.append(_Answer(int(data.priority), str(data.exchange)))
        else:
            answers.append(
                _Answer(
                    int(data.priority),
                    str(data.target),
                    int(data.weight),
                    int(data.port),
                )
            )
    return answers


async def _close(resolver: aiodns.DNSResolver) -> None:
    """Cancel pending queries and free the channel, whatever the aiodns version.

    Cancelling ends pending queries, which closes their sockets and stops
    aiodns's timer in this loop. aiodns 3.3+ and 4 have an async ``close()``
    that does both; aiodns 3.2 has none: pycares 4.9+ frees the channel on
    ``close()``, older ones when it is collected.
    """
    close = getattr(resolver, "close", None)
    if close is not None and inspect.iscoroutinefunction(close):
        await close()
        return
    resolver.cancel()
    channel_close = getattr(resolver._channel, "close", None)
    if channel_close is not None:
        channel_close()


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
        self, name: str, qtype: _QType, port: int | None, hosts: list[str]
    ) -> list[_Answer]:
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
                result = await _ask(resolver, name, qtype)
        except aiodns.error.DNSError as err:
            if err.args and err.args[0] in _EMPTY_ANSWERS:
                return []
            raise DnsError(f"lookup of {name} failed: {err}") from err
        except TimeoutError as err:
            raise DnsError(f"lookup of {name} timed out") from err
        finally:
            await _close(resolver)
        return result

    async def _query(self, name: str, qtype: _QType) -> list[_Answer]:
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
            MxRecord(r.priority, r.host.rstrip(".").lower())
            for r in await self._query(name, "MX")
        ]
        return sorted(records, key=lambda r: r.priority)

    async def srv(self, name: str) -> list[SrvRecord]:
        """Return the SRV records of a service name, in preference order."""
        records = [
            SrvRecord(r.priority, r.weight, r.port, r.host.rstrip(".").lower())
            for r in await self._query(name, "SRV")
        ]
        return sorted(records, key=lambda r: (r.priority, -r.weight))
