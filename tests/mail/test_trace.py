"""The trace hook shows each client's conversation with every credential masked."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path

import pytest

from custom_components.mail_relay.mail import pop3 as pop3_module
from custom_components.mail_relay.mail.compose import OutgoingMail
from custom_components.mail_relay.mail.errors import AuthError
from custom_components.mail_relay.mail.imap import quote
from custom_components.mail_relay.mail.models import Security, ServerSettings
from custom_components.mail_relay.mail.probe import imap_login, pop3_login, smtp_login
from custom_components.mail_relay.mail.smtp import SmtpSender
from custom_components.mail_relay.mail.tls import create_ssl_context
from custom_components.mail_relay.mail.trace import RECV, masked_auth
from tests.mail.wire import Wire
from tests.mailserver import DovecotServer, MailUser, SmtpServer

PASSWORD = 'p@ss "word"\\1'


def secret_forms(username: str, password: str) -> list[bytes]:
    """The password as it travels: plain, quoted, base64, SASL PLAIN tokens."""

    def b64(text: str) -> bytes:
        return base64.b64encode(text.encode())

    return [
        password.encode(),
        quote(password)[1:-1].encode(),
        b64(password),
        b64(f"\0{username}\0{password}"),
        b64(f"{username}\0{username}\0{password}"),
    ]


@pytest.fixture
def user(dovecot: DovecotServer, trust_test_cert: Path) -> MailUser:
    """A mailbox whose password needs quoting in IMAP."""
    return dovecot.add_user(password=PASSWORD)


def starttls(host: str, port: int, user: str, password: str) -> ServerSettings:
    return ServerSettings(host, port, Security.STARTTLS, user, password)


def assert_no_secret(wire: Wire, username: str, password: str) -> None:
    seen = wire.all()
    assert seen
    for form in secret_forms(username, password):
        assert form not in seen, form


def test_masked_auth_keeps_only_the_mechanism() -> None:
    assert masked_auth(b"AUTH PLAIN AGpAZXhhbXBsZQBwdw==\r\n") == b"AUTH PLAIN ****\r\n"
    assert masked_auth(b"AUTH LOGIN\r\n") == b"AUTH LOGIN\r\n"
    assert (
        masked_auth(b"A3 AUTHENTICATE PLAIN AGpA\r\n")
        == b"A3 AUTHENTICATE PLAIN ****\r\n"
    )
    # Answers to the server's challenges (AUTH LOGIN's user name and password).
    assert masked_auth(b"amVhbkBleGFtcGxlLm9yZw==\r\n") == b"****\r\n"


async def test_imap_login_masked_and_idle_shown(
    dovecot: DovecotServer, user: MailUser
) -> None:
    wire = Wire()
    client = await imap_login(
        starttls("127.0.0.1", dovecot.imap_port, user.address, PASSWORD), 10, wire
    )
    try:
        await client.select("INBOX", readonly=True)
        assert await client.idle_wait(0.3) is False
    finally:
        await client.logout()

    sent = wire.sent()
    assert b"STARTTLS\r\n" in sent
    login = (
        rb"^\S+ LOGIN " + re.escape(quote(user.address).encode()) + rb" \*\*\*\*\r\n"
    )
    assert re.search(login, sent, re.MULTILINE), sent
    # IDLE's "+ idling" is no login: DONE stays visible.
    assert b"IDLE\r\n" in sent
    assert b"DONE\r\n" in sent
    assert b"+ idling" in wire.all()
    assert {p for p, _, _ in wire.calls} == {"imap"}
    assert_no_secret(wire, user.address, PASSWORD)


async def test_pop3_auth_plain_and_pass_masked(
    dovecot: DovecotServer, user: MailUser
) -> None:
    wire = Wire()
    await pop3_login(
        starttls("127.0.0.1", dovecot.pop3_port, user.address, PASSWORD), 10, wire
    )
    sent = wire.sent()
    assert b"STLS\r\nCAPA\r\n" in sent
    assert b"AUTH PLAIN\r\n****\r\n" in sent  # the SASL answer is masked
    assert_no_secret(wire, user.address, PASSWORD)

    # USER/PASS, for servers without SASL PLAIN.
    def user_pass() -> None:
        client = pop3_module._Client("127.0.0.1", dovecot.pop3_port, wire, timeout=10)
        client.starttls(create_ssl_context(verify=True), client.capabilities())
        client.login(user.address, PASSWORD, [])
        client.quit_session()

    await asyncio.to_thread(user_pass)
    assert f"USER {user.address}\r\nPASS ****\r\n".encode() in wire.sent()
    assert_no_secret(wire, user.address, PASSWORD)


async def test_smtp_auth_plain_and_login_masked_then_mail_shown(
    smtp_server: SmtpServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    host, port = smtp_server.host, smtp_server.starttls_port
    wire = Wire()
    with pytest.raises(AuthError):  # a wrong password: PLAIN is tried, then LOGIN
        await smtp_login(starttls(host, port, mail_user.address, PASSWORD), 10, wire)
    sent = wire.sent()
    assert sent.startswith(b"EHLO ")
    assert b"STARTTLS\r\n" in sent
    assert b"AUTH PLAIN ****\r\n" in sent
    # AUTH LOGIN: the user name goes with the command, the password answers a 334.
    assert b"AUTH LOGIN ****\r\n****\r\n" in sent
    received = b"".join(d for _, direction, d in wire.calls if direction == RECV)
    assert received.startswith(b"220")  # the greeting
    assert b"334 " in received  # the server's challenge, unmasked
    assert_no_secret(wire, mail_user.address, PASSWORD)

    # After the login, the rest of the conversation is shown as it is.
    right = Wire()
    sender = SmtpSender(
        starttls(host, port, mail_user.address, mail_user.password), trace=right
    )
    try:
        await sender.send(
            OutgoingMail(sender=mail_user.address, to=[mail_user.address], text="hi")
        )
    finally:
        await sender.close()
    sent = right.sent()
    assert f"MAIL FROM:<{mail_user.address}>".encode() in sent
    assert b"AUTH PLAIN ****\r\n" in sent
    assert b"\r\nhi\r\n" in sent  # the message itself
    assert_no_secret(right, mail_user.address, mail_user.password)
