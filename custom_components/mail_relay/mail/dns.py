"""A tiny asyncio DNS stub resolver for the two record types autodetection needs.

Why not aiodns: the aiodns/pycares pair changes its API between major versions
(aiodns 3.2 cannot even send a query with pycares 5), and MX/SRV over UDP is a
few dozen lines. Nameservers are configurable, so an organisation (or a test)
can point lookups at its own server.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

TYPE_MX = 15
TYPE_SRV = 33
_CLASS_IN = 1
_RCODE_NXDOMAIN = 3
_RESOLV_CONF = Path("/etc/resolv.conf")


class DnsError(Exception):
    """A lookup failed (no answer, server failure, malformed reply)."""


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


def system_nameservers(path: Path = _RESOLV_CONF) -> list[str]:
    """Read the system's nameservers; blocking, run it in an executor."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    servers = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            servers.append(parts[1])
    return servers


def split_nameserver(server: str) -> tuple[str, int]:
    """Split "host", "host:port" or "[v6]:port" into host and port."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if server.count(":") == 1:
        host, _, port = server.partition(":")
        return host, int(port)
    return server, 53


def encode_query(name: str, qtype: int, query_id: int) -> bytes:
    """Build a recursive query for one name and type."""
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
    qname = b"".join(
        bytes([len(label)]) + label
        for label in (part.encode("idna") for part in name.strip(".").split("."))
        if label
    )
    return header + qname + b"\x00" + struct.pack("!HH", qtype, _CLASS_IN)


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """Read a possibly compressed name; return it and the offset after it."""
    labels: list[str] = []
    end: int | None = None
    for _ in range(128):  # bounds pointer loops
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length == 0:
            return ".".join(labels), end if end is not None else offset + 1
        labels.append(data[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    raise DnsError("name compression loop")


def parse_response(
    data: bytes, query_id: int
) -> tuple[list[MxRecord], list[SrvRecord]]:
    """Parse the answer section; NXDOMAIN and empty answers give nothing."""
    try:
        ident, flags, qdcount, ancount, _, _ = struct.unpack_from("!HHHHHH", data)
        if ident != query_id:
            raise DnsError("reply to another query")
        rcode = flags & 0x000F
        if rcode == _RCODE_NXDOMAIN:
            return [], []
        if rcode:
            raise DnsError(f"server answered rcode {rcode}")
        offset = 12
        for _ in range(qdcount):
            _, offset = _read_name(data, offset)
            offset += 4
        mx: list[MxRecord] = []
        srv: list[SrvRecord] = []
        for _ in range(ancount):
            _, offset = _read_name(data, offset)
            rtype, _, _, rdlength = struct.unpack_from("!HHIH", data, offset)
            offset += 10
            if rtype == TYPE_MX:
                (priority,) = struct.unpack_from("!H", data, offset)
                host, _ = _read_name(data, offset + 2)
                mx.append(MxRecord(priority, host.lower()))
            elif rtype == TYPE_SRV:
                priority, weight, port = struct.unpack_from("!HHH", data, offset)
                target, _ = _read_name(data, offset + 6)
                srv.append(SrvRecord(priority, weight, port, target.lower()))
            offset += rdlength
    except (struct.error, IndexError) as err:
        raise DnsError("malformed reply") from err
    return mx, srv


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, query_id: int) -> None:
        self.query_id = query_id
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if (
            len(data) >= 2
            and int.from_bytes(data[:2]) == self.query_id
            and not self.answer.done()
        ):
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class DnsResolver:
    """Send MX and SRV queries over UDP to the configured nameservers."""

    def __init__(
        self, nameservers: Sequence[str] = (), *, timeout: float = 3.0
    ) -> None:
        """Use these nameservers ("host" or "host:port"); none: the system's."""
        self._nameservers = list(nameservers)
        self._timeout = timeout

    async def _servers(self) -> list[str]:
        if not self._nameservers:
            loop = asyncio.get_running_loop()
            self._nameservers = await loop.run_in_executor(None, system_nameservers)
        if not self._nameservers:
            raise DnsError("no nameserver configured")
        return self._nameservers

    async def _query(self, name: str, qtype: int) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        last: Exception = DnsError("no nameserver answered")
        for server in await self._servers():
            host, port = split_nameserver(server)
            query_id = secrets.randbelow(0x10000)
            transport, protocol = await loop.create_datagram_endpoint(
                partial(_Datagram, query_id), remote_addr=(host, port)
            )
            try:
                transport.sendto(encode_query(name, qtype, query_id))
                async with asyncio.timeout(self._timeout):
                    return query_id, await protocol.answer
            except (TimeoutError, OSError) as err:
                last = err
            finally:
                transport.close()
        raise DnsError(f"lookup of {name} failed: {last}")

    async def mx(self, name: str) -> list[MxRecord]:
        """Return the MX records of a domain, best (lowest priority) first."""
        query_id, data = await self._query(name, TYPE_MX)
        records, _ = parse_response(data, query_id)
        return sorted(records, key=lambda r: r.priority)

    async def srv(self, name: str) -> list[SrvRecord]:
        """Return the SRV records of a service name, in preference order."""
        query_id, data = await self._query(name, TYPE_SRV)
        _, records = parse_response(data, query_id)
        return sorted(records, key=lambda r: (r.priority, -r.weight))
