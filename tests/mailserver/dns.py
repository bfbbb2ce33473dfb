"""A tiny authoritative DNS server on 127.0.0.1 answering MX and SRV (UDP).

Hand-encoded (no DNS library needed). It runs in the test's own event loop, so
no thread outlives a test.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

TYPES = {"MX": 15, "SRV": 33}


def _name(name: str) -> bytes:
    labels = [p.encode() for p in name.strip(".").split(".") if p]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


@dataclass
class DnsTestServer:
    """Answer from ``records``: {(name, "MX"): [(prio, host)], (name, "SRV"): [(prio, weight, port, target)]}.

    Names not listed get NXDOMAIN; names in ``servfail`` get SERVFAIL; names in
    ``silent`` get no answer at all. ``queries`` logs what was asked.
    """

    records: dict[tuple[str, str], list[tuple]] = field(default_factory=dict)
    servfail: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    queries: list[tuple[str, int]] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    _transport: asyncio.DatagramTransport | None = None

    @property
    def nameserver(self) -> str:
        """The "host:port" string a resolver is configured with."""
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        server = self

        class _Proto(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple) -> None:
                reply = server.answer(data)
                if reply is not None:
                    self.transport.sendto(reply, addr)  # type: ignore[attr-defined]

        transport, _ = await loop.create_datagram_endpoint(
            _Proto, local_addr=(self.host, 0)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def __aenter__(self) -> DnsTestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, query: bytes) -> bytes | None:
        ident, _flags, _qd, _, _, _ = struct.unpack_from("!HHHHHH", query)
        offset = 12
        labels = []
        while query[offset]:
            length = query[offset]
            labels.append(query[offset + 1 : offset + 1 + length].decode())
            offset += 1 + length
        offset += 1
        qtype, _qclass = struct.unpack_from("!HH", query, offset)
        question = query[12 : offset + 4]
        name = ".".join(labels).lower()
        self.queries.append((name, qtype))
        if name in self.silent:
            return None
        kind = {v: k for k, v in TYPES.items()}.get(qtype)
        answers = self.records.get((name, kind or ""), [])
        known = any(key[0] == name for key in self.records)
        rcode = 2 if name in self.servfail else (0 if known else 3)
        rdatas = []
        for rec in answers if rcode == 0 else []:
            if kind == "MX":
                rdata = struct.pack("!H", rec[0]) + _name(rec[1])
            else:
                rdata = struct.pack("!HHH", rec[0], rec[1], rec[2]) + _name(rec[3])
            rdatas.append(
                b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 60, len(rdata)) + rdata
            )
        header = struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, len(rdatas), 0, 0)
        return header + question + b"".join(rdatas)
