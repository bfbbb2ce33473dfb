"""Counting TCP proxy: bytes on the wire, per connection, in each direction.

It runs in a process of its own (``python -m bench.proxy``) so that its CPU time,
memory and sockets never count against the Home Assistant process being measured,
and so that relaying 20 MB does not compete with Home Assistant's event loop.

Routes are added at run time over a small JSON-lines control connection:
``{"cmd": "add", "label": "...", "host": "127.0.0.1", "port": 993}`` answers
``{"port": <listening port>}``; ``{"cmd": "stats", "label": "..."}`` answers the
per-connection counters (bytes server->client ``s2c`` and client->server ``c2s``,
open/close times, the time of the last byte from the server, and ``turns``: how
often the server answered after the client spoke, i.e. round trips).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

CHUNK = 256 * 1024


@dataclass
class Conn:
    """Counters of one proxied connection."""

    id: int
    opened: float
    c2s: int = 0
    s2c: int = 0
    closed: float | None = None
    last_s2c: float | None = None
    last_c2s: float | None = None
    # Times the server spoke after the client had: the round trips the client
    # waited for (the TCP handshake not included).
    turns: int = 0
    last_dir: str = ""


@dataclass
class Route:
    """A listening port relayed to one upstream server."""

    label: str
    host: str
    port: int
    delay: float = 0.0  # seconds added to each direction (a long link)
    conns: list[Conn] = field(default_factory=list)
    server: asyncio.Server | None = None


_ids = itertools.count(1)


def _count(conn: Conn, data: bytes, to_client: bool) -> None:
    now = time.time()
    if to_client and conn.last_dir == "c2s":
        conn.turns += 1
    conn.last_dir = "s2c" if to_client else "c2s"
    if to_client:
        conn.s2c += len(data)
        conn.last_s2c = now
    else:
        conn.c2s += len(data)
        conn.last_c2s = now


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    conn: Conn,
    to_client: bool,
    delay: float,
) -> None:
    """Relay one direction; with a delay, each chunk leaves ``delay`` after it came.

    The delayed chunks go through a queue in arrival order, so the link adds
    latency without limiting bandwidth or reordering anything.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if data == b"":
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()

    sender = loop.create_task(deliver()) if delay > 0 else None
    try:
        while data := await reader.read(CHUNK):
            _count(conn, data, to_client)
            if sender is not None:
                queue.put_nowait((loop.time() + delay, data))
            else:
                writer.write(data)
                await writer.drain()
        if sender is not None:
            queue.put_nowait((0.0, b""))
            await sender
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
    finally:
        if sender is not None and not sender.done():
            sender.cancel()


async def _relay(
    route: Route, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter
) -> None:
    conn = Conn(next(_ids), time.time())
    route.conns.append(conn)
    if route.delay:
        # Over a real link the server's greeting comes two round trips after
        # connect() (SYN, SYN-ACK, ACK, then the greeting); locally it would
        # come at once. The greeting's own trip adds the last ``delay``.
        await asyncio.sleep(3 * route.delay)
    try:
        s_reader, s_writer = await asyncio.open_connection(route.host, route.port)
    except OSError:
        conn.closed = time.time()
        c_writer.close()
        return
    try:
        await asyncio.gather(
            _pump(c_reader, s_writer, conn, False, route.delay),
            _pump(s_reader, c_writer, conn, True, route.delay),
        )
    finally:
        conn.closed = time.time()
        for w in (s_writer, c_writer):
            w.close()


class Proxy:
    """All routes of one proxy process."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}

    async def add(self, label: str, host: str, port: int, delay: float = 0.0) -> int:
        if label in self.routes:
            route = self.routes[label]
            assert route.server is not None
            return int(route.server.sockets[0].getsockname()[1])
        route = Route(label, host, port, delay)

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await _relay(route, r, w)

        route.server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
        self.routes[label] = route
        return int(route.server.sockets[0].getsockname()[1])

    def stats(self, label: str) -> dict[str, Any]:
        route = self.routes[label]
        conns = [asdict(c) for c in route.conns]
        return {
            "label": label,
            "connections": conns,
            "s2c": sum(c["s2c"] for c in conns),
            "c2s": sum(c["c2s"] for c in conns),
            "open": sum(1 for c in conns if c["closed"] is None),
        }

    async def control(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while line := await r.readline():
                req = json.loads(line)
                if req["cmd"] == "add":
                    reply: dict[str, Any] = {
                        "port": await self.add(
                            req["label"],
                            req["host"],
                            req["port"],
                            req.get("delay_ms", 0) / 1000,
                        )
                    }
                elif req["cmd"] == "stats":
                    reply = self.stats(req["label"])
                else:
                    reply = {"error": f"unknown command {req['cmd']}"}
                w.write(json.dumps(reply).encode() + b"\n")
                await w.drain()
        finally:
            w.close()


async def _main() -> None:
    proxy = Proxy()
    control = await asyncio.start_server(proxy.control, "127.0.0.1", 0)
    port = control.sockets[0].getsockname()[1]
    sys.stdout.write(f"CONTROL {port}\n")
    sys.stdout.flush()
    # Exit when the parent closes our stdin.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


class ProxyControl:
    """Client side of the control connection (used inside Home Assistant's loop)."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            reply: dict[str, Any] = json.loads(await reader.readline())
        finally:
            writer.close()
            await writer.wait_closed()
        return reply

    async def add(self, label: str, host: str, port: int, delay_ms: float = 0) -> int:
        """Relay a new local port to host:port; return the local port.

        ``delay_ms`` is added to each direction: a link with twice that round trip.
        """
        reply = await self._ask(
            {
                "cmd": "add",
                "label": label,
                "host": host,
                "port": port,
                "delay_ms": delay_ms,
            }
        )
        return int(reply["port"])

    async def stats(self, label: str) -> dict[str, Any]:
        """Return the counters of every connection made through ``label``."""
        return await self._ask({"cmd": "stats", "label": label})


if __name__ == "__main__":
    asyncio.run(_main())
