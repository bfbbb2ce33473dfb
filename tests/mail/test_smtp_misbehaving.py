"""The SMTP sender against servers that misbehave in ways aiosmtpd cannot.

A scripted server (a real TCP listener on 127.0.0.1 answering from a table)
plays an old HELO-only server, a temporary AUTH failure, a STARTTLS reply with
data smuggled behind it, a garbled reply and a server that hangs up on MAIL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from custom_components.mail_relay.mail.compose import OutgoingMail
from custom_components.mail_relay.mail.errors import (
    AuthError,
    ConnectError,
    MailTimeoutError,
    ProtocolError,
    UnconfirmedSendError,
)
from custom_components.mail_relay.mail.models import Security, ServerSettings
from custom_components.mail_relay.mail.smtp import SmtpSender
from tests.mailserver.scripted import HANG_UP, ScriptedServer


@pytest.fixture
async def senders() -> AsyncIterator[list[SmtpSender]]:
    made: list[SmtpSender] = []
    yield made
    for sender in made:
        await sender.close()


def sender_for(
    made: list[SmtpSender],
    server: ScriptedServer,
    security: Security = Security.NONE,
    username: str = "",
    **kwargs: float,
) -> SmtpSender:
    settings = ServerSettings(
        host="127.0.0.1",
        port=server.port,
        security=security,
        username=username,
        password="secret" if username else "",
    )
    options = {"timeout": 5.0, "backoff": 0.01, **kwargs}
    sender = SmtpSender(settings, **options)  # type: ignore[arg-type]
    made.append(sender)
    return sender


MAIL = OutgoingMail(sender="me@example.org", to=["you@example.org"], text="hello")


async def test_helo_only_server(senders: list[SmtpSender]) -> None:
    """A server that does not know EHLO still gets the mail, one command at a time."""
    async with ScriptedServer(
        {
            "EHLO": "502 5.5.1 EHLO not implemented",
            "HELO": "250 hello",
            "DATA": "354 go",
        }
    ) as server:
        result = await sender_for(senders, server).send(MAIL)
    assert result.accepted == ("you@example.org",)
    verbs = [c.split(" ")[0] for c in server.commands]
    assert verbs[:5] == ["EHLO", "HELO", "MAIL", "RCPT", "DATA"]
    assert server.commands[2] == "MAIL FROM:<me@example.org>"  # no SIZE: no EHLO
    assert "hello" in server.messages[0]


async def test_temporary_auth_failure_is_not_a_wrong_password(
    senders: list[SmtpSender],
) -> None:
    """454 is the server's problem: no AuthError (which would ask for a new password)."""
    async with ScriptedServer(
        {
            "EHLO": "250-scripted\r\n250 AUTH PLAIN LOGIN",
            "AUTH": "454 4.7.0 Temporary authentication failure",
        }
    ) as server:
        sender = sender_for(senders, server, username="me@example.org", attempts=2)
        with pytest.raises(ConnectError, match="454") as caught:
            await sender.send(MAIL)
    assert not isinstance(caught.value, AuthError)
    assert server.sessions == 2  # retried once, as a transient failure
    assert not any(c.startswith("MAIL") for c in server.commands)


async def test_data_smuggled_behind_the_starttls_reply_is_refused(
    senders: list[SmtpSender],
) -> None:
    """Lines sent before the TLS handshake must never count as TLS-protected."""
    async with ScriptedServer(
        {
            "EHLO": "250-scripted\r\n250-STARTTLS\r\n250 AUTH PLAIN",
            # This server cannot do TLS: it hangs up after its reply.
            "STARTTLS": "220 go ahead\r\n250 AUTH PLAIN INJECTED" + HANG_UP,
        }
    ) as server:
        sender = sender_for(
            senders, server, Security.STARTTLS, username="me@example.org"
        )
        with pytest.raises(ConnectError):
            await sender.send(MAIL)
    assert not any(c.startswith(("AUTH", "MAIL")) for c in server.commands)


async def test_garbled_reply_is_a_protocol_error(senders: list[SmtpSender]) -> None:
    async with ScriptedServer({"MAIL": "hello, I am not SMTP"}) as server:
        with pytest.raises(ProtocolError, match="garbled"):
            await sender_for(senders, server).send(MAIL)
    assert server.messages == []


async def test_refusal_then_hang_up_while_pipelining_is_retried(
    senders: list[SmtpSender],
) -> None:
    """421 to a pipelined MAIL, then the socket closes: a fresh connection delivers it."""
    async with ScriptedServer(
        {
            "EHLO": "250-scripted\r\n250 PIPELINING",
            "MAIL": ["421 4.7.0 Too busy, closing" + HANG_UP, "250 OK"],
            "DATA": "354 go",
        }
    ) as server:
        result = await sender_for(senders, server).send(MAIL)
    assert result.accepted == ("you@example.org",)
    assert server.sessions == 2
    assert len(server.messages) == 1


async def test_kept_connection_found_dead_costs_no_retry(
    senders: list[SmtpSender],
) -> None:
    """The server dropped our idle connection: reconnect at once, even with one attempt."""
    async with ScriptedServer(
        {"MAIL": ["250 OK", HANG_UP, "250 OK"], "DATA": "354 go"}
    ) as server:
        sender = sender_for(senders, server, attempts=1, idle_timeout=30)
        await sender.send(MAIL)
        await sender.send(MAIL)
    assert server.sessions == 2
    assert len(server.messages) == 2


async def test_credentials_for_a_server_without_auth(
    senders: list[SmtpSender],
) -> None:
    """A username is set but the server offers no AUTH: say so, send nothing."""
    async with ScriptedServer({"EHLO": "250-scripted\r\n250 SIZE 1000000"}) as server:
        sender = sender_for(senders, server, username="me@example.org")
        with pytest.raises(AuthError, match="does not offer AUTH"):
            await sender.send(MAIL)
    assert not any(c.startswith(("AUTH", "MAIL")) for c in server.commands)


async def test_lost_reply_after_the_final_dot_is_never_resent(
    senders: list[SmtpSender],
) -> None:
    """The server took the message and went silent: one copy, and a distinct error."""
    async with ScriptedServer({"DATA": "354 go", ".": ""}) as server:
        sender = sender_for(senders, server, timeout=1)
        with pytest.raises(UnconfirmedSendError):
            await sender.send(MAIL)
    assert len(server.messages) == 1
    assert server.sessions == 1


async def test_hang_up_after_the_final_dot_is_never_resent(
    senders: list[SmtpSender],
) -> None:
    """The connection closed instead of a reply to the message: not sent again."""
    async with ScriptedServer({"DATA": "354 go", ".": HANG_UP}) as server:
        with pytest.raises(UnconfirmedSendError):
            await sender_for(senders, server).send(MAIL)
    assert len(server.messages) == 1


async def test_explicit_4xx_after_the_final_dot_is_resent(
    senders: list[SmtpSender],
) -> None:
    """451 says the server did not take it: sending again is safe and delivers once."""
    async with ScriptedServer(
        {"DATA": "354 go", ".": ["451 4.3.0 try again later", "250 OK queued"]}
    ) as server:
        result = await sender_for(senders, server).send(MAIL)
    assert result.accepted == ("you@example.org",)
    assert len(server.messages) == 2  # the refused copy and the accepted one


async def test_a_server_that_answers_slowly_cannot_hold_a_send(
    senders: list[SmtpSender],
) -> None:
    """Each reply within the step timeout, but the whole send is bounded."""
    async with ScriptedServer({"DATA": "354 go"}, delay=0.5) as server:
        sender = sender_for(senders, server, deadline=1.0)
        async with asyncio.timeout(30):  # only to catch a hang
            with pytest.raises(MailTimeoutError):
                await sender.send(MAIL)
    assert server.messages == []
