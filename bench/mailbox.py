"""Mailbox helpers: fast Maildir filling, LMTP delivery with timestamps, a bare IDLE client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage

from tests.mailserver import DovecotServer, MailUser
from tests.mailserver.dovecot import make_message


def fill_maildir(server: DovecotServer, user: MailUser, count: int) -> None:
    """Write ``count`` messages straight into the user's Maildir.

    Delivering 10,000 messages through LMTP takes minutes; Dovecot indexes files
    it finds in ``cur/`` just as well. ``:2,`` means no flags (unread).
    """
    root = server.maildir(user)
    home = root.parent
    uid, gid = server._mail_uid, server._mail_gid
    for path in (home, root, root / "cur", root / "new", root / "tmp"):
        path.mkdir(mode=0o700, exist_ok=True)
        os.chown(path, uid, gid)
    stamp = int(time.time()) - 86400
    cur = root / "cur"
    for i in range(count):
        data = make_message(
            subject=f"old message {i}",
            body=f"Body of old message {i}.\n" * 3,
            to=user.address,
        )
        name = f"{stamp + i}.M{i}P{os.getpid()}.bench,S={len(data)}:2,"
        path = cur / name
        path.write_bytes(data)
        os.chown(path, uid, gid)


def deliver_timed(
    server: DovecotServer, user: MailUser, messages: list[bytes]
) -> list[float]:
    """Deliver through LMTP in one session; return when each was accepted (time.time)."""
    accepted: list[float] = []
    with smtplib.LMTP(
        server.host, server.lmtp_port, local_hostname="localhost", timeout=120
    ) as lmtp:
        for message in messages:
            lmtp.sendmail("sender@example.org", [user.address], message)
            accepted.append(time.time())
    return accepted


def tagged_message(subject: str, to: str, body: str = "Bench message.") -> bytes:
    """A small message whose subject identifies it in events."""
    return make_message(subject=subject, body=body, to=to)


def large_message(to: str, subject: str, size: int = 20 * 1024 * 1024) -> bytes:
    """A message of about ``size`` bytes: some text and two binary attachments."""
    msg = EmailMessage()
    msg["From"] = "sender@example.org"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{secrets.token_hex(8)}@example.org>"
    msg.set_content("The report is attached.\n" * 20)
    # base64 grows data by 4/3 (plus line breaks): two parts of 3/8 of the size.
    part = size * 3 // 8
    msg.add_attachment(
        os.urandom(part), maintype="application", subtype="pdf", filename="report.pdf"
    )
    msg.add_attachment(
        os.urandom(part), maintype="image", subtype="jpeg", filename="photo.jpg"
    )
    return msg.as_bytes()


class IdleFloor:
    """A bare IMAP IDLE client on raw asyncio + ssl: the floor any client can reach.

    It logs in, selects INBOX, enters IDLE and records when each ``* n EXISTS``
    arrives; nothing else (no FETCH), so its latency is Dovecot's own delay plus
    the network and TLS.
    """

    def __init__(self, on_exists: Callable[[int, float], None]) -> None:
        self._on_exists = on_exists
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def _command(self, tag: str, command: str) -> list[bytes]:
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(f"{tag} {command}\r\n".encode())
        await self._writer.drain()
        lines = []
        while True:
            line = await self._reader.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                if not line.startswith(tag.encode() + b" OK"):
                    raise RuntimeError(line.decode(errors="replace"))
                return lines

    async def start(
        self, host: str, port: int, user: MailUser, context: ssl.SSLContext
    ) -> int:
        """Connect, log in, select INBOX and start IDLE; return the EXISTS count."""
        self._reader, self._writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname="127.0.0.1"
        )
        await self._reader.readline()  # greeting
        await self._command("a1", f'LOGIN "{user.username}" "{user.password}"')
        exists = 0
        for line in await self._command("a2", "SELECT INBOX"):
            parts = line.split()
            if len(parts) == 3 and parts[2] == b"EXISTS":
                exists = int(parts[1])
        self._writer.write(b"a3 IDLE\r\n")
        await self._writer.drain()
        line = await self._reader.readline()
        if not line.startswith(b"+"):
            raise RuntimeError(f"IDLE refused: {line!r}")
        self._task = asyncio.get_running_loop().create_task(self._listen())
        return exists

    async def _listen(self) -> None:
        assert self._reader is not None
        while line := await self._reader.readline():
            parts = line.split()
            if len(parts) == 3 and parts[0] == b"*" and parts[2] == b"EXISTS":
                self._on_exists(int(parts[1]), time.time())

    async def stop(self) -> None:
        """Leave IDLE, log out and close."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            try:
                self._writer.write(b"DONE\r\na4 LOGOUT\r\n")
                await self._writer.drain()
            except (ConnectionError, OSError):
                pass
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError, ssl.SSLError):
                await self._writer.wait_closed()
