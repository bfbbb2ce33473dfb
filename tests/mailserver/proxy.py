"""A TCP proxy on 127.0.0.1 that can turn into a bad network on demand.

Between a client and a real server (Dovecot), it forwards bytes as they come
(``PASS``), drops every byte both ways while keeping the connections open, as
a dead Wi-Fi link or a NAT that forgot the connection does (``BLACKHOLE``:
neither side hears anything, nobody sends a FIN or a RST), or forwards the
server's bytes one at a time every ``drip`` seconds (``DRIP``: a server that
answers, but so slowly that each read stays within the client's timeout).

``rewrite``, when set, changes what the server sends before it is forwarded
(a hostile answer on top of a real server's session; small answers only: it
sees one chunk at a time).

The mode applies at once to the connections already open and to new ones;
``cut()`` closes every open connection (a link that comes back carries none
of the old TCP connections).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from enum import Enum


class Mode(Enum):
    """What the proxy does with the bytes."""

    PASS = "pass"
    BLACKHOLE = "blackhole"
    DRIP = "drip"


_CHUNK = 65536


class FaultyProxy:
    """Listens on a free port and forwards to ``host:port`` in the current mode."""

    def __init__(self, host: str, port: int, *, drip: float = 0.5) -> None:
        self.target = (host, port)
        self.drip = drip
        self.mode = Mode.PASS
        self.port = 0
        self.connections = 0  # accepted so far
        self.dropped = 0  # bytes swallowed by BLACKHOLE
        self.client_bytes = bytearray()  # everything the client sent
        self.rewrite: Callable[[bytes], bytes] | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Future[None]] = set()

    async def __aenter__(self) -> FaultyProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def set_mode(self, mode: Mode) -> None:
        """Switch every connection, open or new, to ``mode``."""
        self.mode = mode

    def cut(self) -> None:
        """Close every open connection abruptly (both sides see a reset)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer, upstream=True)),
            asyncio.ensure_future(self._pump(up_reader, writer, upstream=False)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
                self._tasks.discard(pump)
            for side in (writer, up_writer):
                side.transport.abort()
                self._writers.discard(side)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        """Copy one direction until EOF, applying the mode to every chunk."""
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(_CHUNK):
                if upstream:
                    self.client_bytes += data
                elif self.rewrite is not None:
                    data = self.rewrite(data)
                if self.mode is Mode.BLACKHOLE:
                    self.dropped += len(data)
                    continue
                if self.mode is Mode.DRIP and not upstream:
                    for index in range(len(data)):
                        await asyncio.sleep(self.drip)
                        if self.mode is Mode.BLACKHOLE:
                            self.dropped += len(data) - index
                            break
                        writer.write(data[index : index + 1])
                        await writer.drain()
                    continue
                writer.write(data)
                await writer.drain()
