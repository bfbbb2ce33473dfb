"""Scripted SMTP and IMAP servers: real TCP listeners answering from a table.

For server behaviour aiosmtpd and Dovecot cannot produce: HELO-only servers,
temporary AUTH failures, data smuggled behind a STARTTLS reply, garbled replies,
hang-ups, replies that never come (an empty reply sends nothing) or come
slowly, broken SEARCH.
"""

from __future__ import annotations

import asyncio
import contextlib

HANG_UP = "<hang up>"


class ScriptedServer:
    """Answers each command by its verb; a list is used up one reply at a time.

    A reply ending in HANG_UP is sent, then the connection is closed; an empty
    reply sends nothing (the client waits); ``delay`` seconds pass before each
    reply. The reply to the message itself is the script's ``"."``.
    """

    def __init__(
        self, script: dict[str, str | list[str]], *, delay: float = 0.0
    ) -> None:
        self.script = script
        self.delay = delay
        self.commands: list[str] = []
        self.messages: list[str] = []
        self.sessions = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:  # kept connections too
            writer.close()
        for task in list(self._tasks):  # sessions still waiting (``delay``)
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _reply(self, verb: str) -> str:
        answer = self.script.get(verb, "250 OK")
        if isinstance(answer, list):
            return answer.pop(0) if len(answer) > 1 else answer[0]
        return answer

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.sessions += 1
        self._writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        with contextlib.suppress(ConnectionError):
            writer.write(b"220 scripted ESMTP\r\n")
            while (
                line := (await reader.readline())
                .decode(errors="replace")
                .rstrip("\r\n")
            ):
                self.commands.append(line)
                verb = line.split(" ", 1)[0].upper()
                answer = self._reply(verb)
                if not await self._answer(writer, answer):
                    break
                if verb == "DATA" and answer.startswith("354"):
                    body = []
                    while (data := await reader.readline()) not in (b".\r\n", b""):
                        body.append(data.decode())
                    self.messages.append("".join(body))
                    if not await self._answer(writer, self._reply(".")):
                        break
                if verb == "QUIT":
                    break
        writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, answer: str) -> bool:
        """Send one scripted reply; return False when the script hangs up."""
        hang_up = answer.endswith(HANG_UP)
        answer = answer.removesuffix(HANG_UP)
        if self.delay:
            await asyncio.sleep(self.delay)
        if answer:
            writer.write(answer.encode() + b"\r\n")
            await writer.drain()
        return not hang_up


class ScriptedImapServer:
    """A scripted IMAP server: answers each tagged command from a table.

    Keys are command texts without the tag (``UID FETCH 63:* (UID)``), matched
    as prefixes, the longest first, case-insensitively; values are the answer
    lines, ``{tag}`` standing for the command's tag. When no line starts with
    ``{tag}``, ``{tag} OK done`` is added. Unknown commands get ``BAD``.
    For server bugs Dovecot cannot be made to show (GNU Mailutils' SEARCH).
    """

    def __init__(self, script: dict[str, str], greeting: str) -> None:
        self.script = script
        self.greeting = greeting
        self.commands: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> ScriptedImapServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def _answer(self, tag: str, command: str) -> str:
        keys = sorted(self.script, key=len, reverse=True)
        key = next((k for k in keys if command.upper().startswith(k.upper())), None)
        if key is None:
            return f"{tag} BAD unknown command\r\n"
        lines = self.script[key].replace("{tag}", tag).split("\r\n")
        if not any(line.startswith(f"{tag} ") for line in lines):
            lines.append(f"{tag} OK done")
        return "".join(line + "\r\n" for line in lines)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError):
            writer.write(self.greeting.encode() + b"\r\n")
            while line := (await reader.readline()).decode().rstrip("\r\n"):
                tag, _, command = line.partition(" ")
                self.commands.append(command)
                writer.write(self._answer(tag, command).encode())
                await writer.drain()
                if command.upper() == "LOGOUT":
                    break
        writer.close()
