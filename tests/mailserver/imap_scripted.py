"""A scripted IMAP server: a real TCP listener for answers Dovecot never gives.

It greets with ``greeting`` (anything: ``+OK``, garbage, BYE), accepts any
LOGIN, answers CAPABILITY with ``capabilities``, opens any folder with the given UIDVALIDITY and UIDNEXT, and answers
each command by its verb from ``answers``: a coroutine that gets the tag, the
whole command line and the writer, and writes whatever it likes (a literal
announced at 2 GB and streamed, say); it may read the client's next line
(an AUTHENTICATE exchange). Verbs without an answer get ``OK``.
``sent`` counts the bytes the server managed to write.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable

Answer = Callable[[str, str, "Writer"], Awaitable[None]]


class Writer:
    """The server's side of one connection: write and count."""

    def __init__(
        self,
        server: ScriptedImapServer,
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader,
    ):
        self._server = server
        self._writer = writer
        self._reader = reader

    async def write(self, data: bytes) -> None:
        """Write and wait until the client took it (raises once it left)."""
        self._writer.write(data)
        await self._writer.drain()
        self._server.sent += len(data)

    async def readline(self) -> str:
        """Read the client's next line (its answer to a ``+`` challenge)."""
        line = (await self._reader.readline()).decode(errors="replace")
        self._server.commands.append(line.rstrip("\r\n"))
        return line.rstrip("\r\n")

    def close(self) -> None:
        """Hang up (after a BYE, say)."""
        self._writer.close()

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade the connection (the server's side of STARTTLS)."""
        await self._writer.start_tls(context)


class ScriptedImapServer:
    """Speaks just enough IMAP to log in and select; the rest is scripted."""

    def __init__(
        self,
        *,
        greeting: bytes = b"* OK scripted ready",
        capabilities: str = "IMAP4rev1 IDLE",
        answers: dict[str, Answer] | None = None,
        uidvalidity: int = 7,
        uidnext: int = 6,
    ) -> None:
        self.greeting = greeting
        self.capabilities = capabilities
        self.answers = answers or {}
        self.uidvalidity = uidvalidity
        self.uidnext = uidnext
        self.commands: list[str] = []
        self.sessions = 0  # connections accepted
        self.sent = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ScriptedImapServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.sessions += 1
        out = Writer(self, writer, reader)
        try:
            with contextlib.suppress(ConnectionError, OSError):
                await out.write(self.greeting + b"\r\n")
                while line := (await reader.readline()).decode(errors="replace"):
                    line = line.rstrip("\r\n")
                    self.commands.append(line)
                    tag, _, rest = line.partition(" ")
                    words = rest.split()
                    verb = (words[0] if words else "").upper()
                    if verb == "UID" and len(words) > 1:
                        verb = f"UID {words[1].upper()}"
                    answer = self.answers.get(verb)
                    if answer is not None:
                        await answer(tag, line, out)
                    else:
                        await out.write(self._default(verb, tag))
                    if verb == "LOGOUT":
                        break
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    def _default(self, verb: str, tag: str) -> bytes:
        if verb == "CAPABILITY":
            caps = self.capabilities
            return f"* CAPABILITY {caps}\r\n{tag} OK done\r\n".encode()
        if verb in ("SELECT", "EXAMINE"):
            return (
                f"* 0 EXISTS\r\n* OK [UIDVALIDITY {self.uidvalidity}] ok\r\n"
                f"* OK [UIDNEXT {self.uidnext}] ok\r\n"
                f"{tag} OK [READ-WRITE] selected\r\n"
            ).encode()
        if verb == "STATUS":
            return (
                f'* STATUS "INBOX" (UIDNEXT {self.uidnext})\r\n{tag} OK done\r\n'
            ).encode()
        if verb == "LOGOUT":
            return f"* BYE bye\r\n{tag} OK bye\r\n".encode()
        return f"{tag} OK done\r\n".encode()
