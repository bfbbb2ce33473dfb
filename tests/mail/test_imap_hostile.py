"""The IMAP client against servers that send what Dovecot never would.

A scripted IMAP server (a real TCP listener on 127.0.0.1) announces a 2 GB
literal and streams it, sends more than an answer may bring, sends a line
without end, or greets with something that is not IMAP.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest

from custom_components.mail_relay.mail.errors import ConnectError, ProtocolError
from custom_components.mail_relay.mail.imap import ImapClient
from custom_components.mail_relay.mail.imap.adapter import (
    MAX_ANSWER_BYTES,
    MAX_LINE_BYTES,
)
from custom_components.mail_relay.mail.models import Security, ServerSettings
from tests.mailserver import TestCertificate
from tests.mailserver.imap_scripted import ScriptedImapServer, Writer

MIB = 1024 * 1024


def client_for(server: ScriptedImapServer, timeout: float = 5.0) -> ImapClient:
    settings = ServerSettings("127.0.0.1", server.port, Security.NONE, "u", "p")
    return ImapClient(settings, ssl_context=None, timeout=timeout)


async def fetch_from(server: ScriptedImapServer) -> None:
    """Log in, select and fetch UID 1 as the watcher does."""
    client = client_for(server)
    try:
        await client.connect()
        await client.select("INBOX")
        async with asyncio.timeout(60):  # only to catch a hang
            await client.fetch_messages([1], text_bytes=2048)
    finally:
        await client.logout()


async def test_a_2_gb_literal_is_refused_before_it_is_held() -> None:
    """The server announces {2147483648} and streams 256 MB: cut at the announcement."""

    async def stream(tag: str, _line: str, out: Writer) -> None:
        await out.write(b"* 1 FETCH (UID 1 BODY[HEADER] {2147483648}\r\n")
        chunk = b"x" * MIB
        for _ in range(256):
            await out.write(chunk)

    async with ScriptedImapServer(answers={"UID FETCH": stream}) as server:
        with pytest.raises(ProtocolError, match="announced 2147483648 bytes"):
            await fetch_from(server)
    # What the kernel's socket buffers took before the connection was cut.
    assert server.sent < 16 * MIB


async def test_an_answer_over_the_budget_is_refused() -> None:
    """A hundred 1 MB literals in one answer: cut once the budget is spent."""

    async def many(tag: str, _line: str, out: Writer) -> None:
        for uid in range(1, 101):
            await out.write(
                b"* %d FETCH (UID %d BODY[HEADER] {%d}\r\n" % (uid, uid, MIB)
            )
            await out.write(b"x" * MIB + b")\r\n")
        await out.write(f"{tag} OK done\r\n".encode())

    async with ScriptedImapServer(answers={"UID FETCH": many}) as server:
        with pytest.raises(ProtocolError, match="the 64 MB an answer may bring"):
            await fetch_from(server)
    assert server.sent < MAX_ANSWER_BYTES + 16 * MIB


async def test_a_line_without_end_is_refused() -> None:
    """64 MB without a line break: cut past the line limit, in linear time."""

    async def endless(tag: str, _line: str, out: Writer) -> None:
        await out.write(b"* 1 FETCH (UID 1 FLAGS (")
        chunk = b"x" * MIB
        for _ in range(64):
            await out.write(chunk)

    async with ScriptedImapServer(answers={"UID FETCH": endless}) as server:
        with pytest.raises(ProtocolError, match="line over 16 MB"):
            await fetch_from(server)
    assert server.sent < MAX_LINE_BYTES + 16 * MIB


@pytest.mark.parametrize(
    "greeting",
    [b"+OK Dovecot ready.", b"220 mail.example.org ESMTP", b"\x00\xffgarbage OK"],
)
async def test_a_greeting_that_is_not_imap_fails_at_once(
    greeting: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A POP3 or SMTP port, or garbage: a protocol error now, not after the timeout."""
    async with ScriptedImapServer(greeting=greeting) as server:
        client = client_for(server, timeout=30.0)
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            with pytest.raises(ProtocolError, match="not an IMAP server"):
                await client.connect()
            await client.logout()
            gc.collect()
            await asyncio.sleep(0)
        assert time.monotonic() - started < 10
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert not any(c.upper().split()[1:2] == ["LOGIN"] for c in server.commands)


async def test_a_bye_greeting_is_a_connection_refusal() -> None:
    """``* BYE`` at once means "too busy, come back later": retried, not a protocol error."""
    async with ScriptedImapServer(greeting=b"* BYE too many connections") as server:
        client = client_for(server, timeout=30.0)
        with pytest.raises(ConnectError, match="too many connections") as caught:
            await client.connect()
        await client.logout()
    assert not isinstance(caught.value, ProtocolError)


async def test_clear_text_after_the_starttls_reply_is_dropped(
    mail_cert: TestCertificate,
) -> None:
    """A line started in clear text behind the OK must not join the first TLS line.

    Joined, it would make the client believe the server refuses LOGIN.
    """

    async def starttls(tag: str, _line: str, out: Writer) -> None:
        await out.write(f"{tag} OK begin TLS\r\n* CAPABILITY LOGINDISABLED X".encode())
        await out.start_tls(mail_cert.server_context())

    async with ScriptedImapServer(
        capabilities="IMAP4rev1 STARTTLS",
        answers={"STARTTLS": starttls},
    ) as server:
        settings = ServerSettings("127.0.0.1", server.port, Security.STARTTLS, "u", "p")
        client = ImapClient(
            settings, ssl_context=mail_cert.client_context(), timeout=5.0
        )
        try:
            await client.connect()
            assert "LOGINDISABLED" not in client.capabilities
        finally:
            await client.logout()
    assert any(" LOGIN " in c for c in server.commands)
