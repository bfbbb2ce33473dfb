"""The core against every server family we ship tests for: one suite, parametrised.

Dovecot and Cyrus IMAP/POP3 (``family``), with Postfix submission delivering by
LMTP into whichever of them runs the test. A family whose packages are not
unpacked here (``scripts/setup``) is skipped with the reason, never faked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import asdict
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import pytest
import pytest_socket

from custom_components.mail_relay.mail.compose import OutgoingMail
from custom_components.mail_relay.mail.errors import StartTlsUnavailableError
from custom_components.mail_relay.mail.imap import FolderState, ImapClient
from custom_components.mail_relay.mail.message import MailEvent
from custom_components.mail_relay.mail.models import Security, ServerSettings
from custom_components.mail_relay.mail.options import (
    EventOptions,
    Pop3PollOptions,
    Retention,
)
from custom_components.mail_relay.mail.pop3 import Pop3Poller, Pop3State
from custom_components.mail_relay.mail.smtp import SmtpSender
from custom_components.mail_relay.mail.tls import create_ssl_context
from tests.mail.test_imap import Sink, make_watcher, running
from tests.mail.wire import Wire
from tests.mailserver import DovecotServer, MailUser, TestCertificate
from tests.mailserver.cyrus import CyrusServer, cyrus_missing
from tests.mailserver.dovecot import (
    FRENCH_NAME,
    FRENCH_SUBJECT,
    FRENCH_TEXT,
    make_message,
)
from tests.mailserver.postfix import PostfixServer, postfix_missing

MailboxServer = DovecotServer | CyrusServer
FAMILIES = ["dovecot", "cyrus"]


def _start(server: Any) -> None:
    # Session fixtures run before the per-test socket fixture enables sockets.
    pytest_socket.enable_socket()
    server.start()


@pytest.fixture(scope="session")
def cyrus(mail_cert: TestCertificate) -> Iterator[CyrusServer]:
    """One Cyrus for the whole run (skipped where its packages are missing)."""
    if reason := cyrus_missing():
        pytest.skip(reason)
    server = CyrusServer(mail_cert)
    _start(server)
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def cyrus_without_tls(mail_cert: TestCertificate) -> Iterator[CyrusServer]:
    """A Cyrus that offers neither STARTTLS nor implicit TLS."""
    if reason := cyrus_missing():
        pytest.skip(reason)
    server = CyrusServer(mail_cert, tls=False)
    _start(server)
    yield server
    server.cleanup()


@pytest.fixture(params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    """The server family this test runs against."""
    return str(request.param)


@pytest.fixture
def mailbox(family: str, request: pytest.FixtureRequest) -> MailboxServer:
    """The family's shared IMAP/POP3 server."""
    server: MailboxServer = request.getfixturevalue(
        "dovecot" if family == "dovecot" else "cyrus"
    )
    return server


@pytest.fixture
def user(mailbox: MailboxServer) -> MailUser:
    """A fresh mailbox on the family's server."""
    return mailbox.add_user()


@pytest.fixture(scope="session")
def postfix_cyrus(
    mail_cert: TestCertificate, cyrus: CyrusServer
) -> Iterator[PostfixServer]:
    """Postfix delivering into the shared Cyrus, with SASL on Cyrus's sasldb."""
    if reason := postfix_missing():
        pytest.skip(reason)
    server = PostfixServer(mail_cert, cyrus)
    _start(server)
    yield server
    server.cleanup()


@pytest.fixture
def submission(family: str, request: pytest.FixtureRequest) -> PostfixServer:
    """Postfix delivering into the family's server (conftest has Dovecot's)."""
    server: PostfixServer = request.getfixturevalue(
        "postfix" if family == "dovecot" else "postfix_cyrus"
    )
    return server


@pytest.fixture
def own_mailbox(family: str, mail_cert: TestCertificate) -> Iterator[MailboxServer]:
    """A server of the family for one test, which may restart it."""
    if family == "cyrus" and (reason := cyrus_missing()):
        pytest.skip(reason)
    server: MailboxServer = (
        DovecotServer(mail_cert) if family == "dovecot" else CyrusServer(mail_cert)
    )
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
async def tls(trust_test_cert: Any) -> Any:
    """A TLS context trusting the test certificate (built off the loop)."""
    return await asyncio.get_running_loop().run_in_executor(None, create_ssl_context)


def imap(
    server: MailboxServer, user: MailUser, security: str = "ssl"
) -> ServerSettings:
    port = server.imaps_port if security == "ssl" else server.imap_port
    return ServerSettings(
        server.host, port, Security(security), user.username, user.password
    )


def pop3(
    server: MailboxServer, user: MailUser, security: str = "ssl"
) -> ServerSettings:
    port = server.pop3s_port if security == "ssl" else server.pop3_port
    return ServerSettings(
        server.host, port, Security(security), user.username, user.password
    )


def smtp(server: PostfixServer, user: MailUser, security: str) -> ServerSettings:
    port = server.ssl_port if security == "ssl" else server.starttls_port
    return ServerSettings(
        server.host, port, Security(security), user.username, user.password
    )


# -- watching ------------------------------------------------------------------


async def test_watch_and_burst_exactly_once_in_order(
    mailbox: MailboxServer, user: MailUser, tls: Any
) -> None:
    sink = Sink()
    watcher = make_watcher(imap(mailbox, user), sink, tls)
    async with running(watcher):
        assert watcher.status.idle  # both families push by IDLE
        started = time.monotonic()
        await asyncio.to_thread(mailbox.deliver, user, make_message("premier"))
        await sink.wait(lambda: len(sink.events) == 1)
        # Pushed, not polled: Cyrus without idled would take up to 60 s.
        assert time.monotonic() - started < 5
        burst = [make_message(f"rafale {n}") for n in range(50)]
        await asyncio.to_thread(mailbox.deliver, user, burst)
        await sink.wait(lambda: len(sink.events) == 51, within=30)
        await asyncio.sleep(0.5)  # nothing more may come
    assert sink.subjects == ["premier", *(f"rafale {n}" for n in range(50))]
    uids = [int(e.uid) for e in sink.events]
    assert uids == sorted(set(uids))


async def test_restart_neither_repeats_nor_loses(
    own_mailbox: MailboxServer, tls: Any
) -> None:
    server = own_mailbox
    user = server.add_user()
    sink = Sink()
    watcher = make_watcher(imap(server, user), sink, tls)
    async with running(watcher):
        await asyncio.to_thread(
            server.deliver, user, [make_message("un"), make_message("deux")]
        )
        await sink.wait(lambda: len(sink.events) == 2)
    saved = sink.states[-1]
    # Mail that came while we were away, then a new watcher from the saved mark.
    await asyncio.to_thread(server.deliver, user, make_message("pendant l’absence"))
    sink2 = Sink()
    watcher2 = make_watcher(
        imap(server, user),
        sink2,
        tls,
        state=FolderState(saved.uidvalidity, saved.last_uid),
    )
    async with running(watcher2):
        await sink2.wait(lambda: len(sink2.events) == 1)
        # The server goes down and comes back while we watch.
        await asyncio.to_thread(server.restart)
        await sink2.wait(lambda: watcher2.status.connected, within=15)
        await asyncio.to_thread(server.deliver, user, make_message("après"))
        await sink2.wait(lambda: len(sink2.events) == 2, within=15)
        await asyncio.sleep(0.5)
    assert sink.subjects == ["un", "deux"]
    assert sink2.subjects == ["pendant l’absence", "après"]


# -- folders -------------------------------------------------------------------


async def test_sent_copy_where_the_namespace_says_over_starttls(
    mailbox: MailboxServer, user: MailUser, tls: Any
) -> None:
    client = ImapClient(imap(mailbox, user, "starttls"), ssl_context=tls)
    await client.connect()
    try:
        namespace = await client.namespace()
        sent = await client.sent_folder()
        # Dovecot keeps folders at the root, Cyrus under INBOX. (as Courier).
        assert sent == namespace.folder("Sent")
        assert sent == ("INBOX.Sent" if mailbox.family == "cyrus" else "Sent")
        # Bare newlines, as Python's email writes by default: sent as CRLF.
        await client.append(sent, make_message("copie envoyée"))
        assert await client.sent_folder() == sent
        await client.select("Sent")
        events = await client.fetch_events(
            await client.new_uids(0),
            account=user.address,
            folder="Sent",
            uidvalidity=client.uidvalidity or 0,
            text_limit=100,
            include_headers=False,
        )
    finally:
        await client.logout()
    assert [e.subject for e in events] == ["copie envoyée"]


async def test_actions_mark_seen_move_delete(
    mailbox: MailboxServer, user: MailUser, tls: Any
) -> None:
    await asyncio.to_thread(
        mailbox.deliver,
        user,
        [make_message("lu"), make_message("rangé"), make_message("jeté")],
    )
    client = ImapClient(imap(mailbox, user), ssl_context=tls)
    await client.connect()
    try:
        archive = (await client.namespace()).folder("Archive")
        await client.create_folder(archive)
        await client.select("INBOX")
        first, second, third = await client.new_uids(0)
        assert await client.unread_count() == 3
        await client.mark_seen([first])
        assert await client.unread_count() == 2
        await client.move([second], "Archive")  # the user's name for it
        await client.delete([third])
        assert await client.new_uids(0) == [first]
        await client.select("Archive")
        assert len(await client.new_uids(0)) == 1
    finally:
        await client.logout()


# -- POP3 ------------------------------------------------------------------------


async def test_pop3_by_uidl_and_top_over_stls(
    mailbox: MailboxServer, user: MailUser, tls: Any
) -> None:
    await asyncio.to_thread(
        mailbox.deliver,
        user,
        [make_message("un", body="x" * 20000), make_message("deux")],
    )
    wire = Wire()
    poller = Pop3Poller(
        pop3(mailbox, user, "starttls"), account=user.address, state=Pop3State(),
        ssl_context=tls, trace=wire,
    )  # fmt: skip
    events: list[MailEvent] = []

    async def collect(event: MailEvent) -> None:
        events.append(event)

    first = await poller.poll_once(collect)
    await asyncio.to_thread(mailbox.deliver, user, make_message("trois"))
    second = await poller.poll_once(collect)
    third = await poller.poll_once(collect)
    assert [e.subject for e in events] == ["un", "deux", "trois"]
    assert (first.new, second.new, third.new) == (2, 1, 0)
    assert len({e.uid for e in events}) == 3  # UIDLs, distinct
    sent = wire.sent()
    assert sent.startswith(b"CAPA\r\nSTLS\r\n")  # STARTTLS works too
    assert b"UIDL\r\n" in sent
    assert b"TOP 1 " in sent  # only the start travels
    assert b"RETR" not in sent
    assert events[0].text.startswith("x" * 100)


async def test_pop3_retention_delete_and_days(
    mailbox: MailboxServer, user: MailUser, tls: Any
) -> None:
    """DELE only what was reported, committed by QUIT, on each family's server."""
    await asyncio.to_thread(mailbox.deliver, user, make_message("old"))
    now = [time.time()]
    events: list[MailEvent] = []

    async def collect(event: MailEvent) -> None:
        events.append(event)

    def poller(retention: Retention) -> Pop3Poller:
        return Pop3Poller(
            pop3(mailbox, user), account=user.address, state=state, ssl_context=tls,
            options=Pop3PollOptions(retention=retention, retention_days=1),
            clock=lambda: now[0],
        )  # fmt: skip

    state = Pop3State()
    days = poller(Retention.DAYS)
    first = await days.poll_once(collect)
    assert (first.new, first.deleted, first.count) == (1, 0, 1)
    now[0] += 2 * 86400  # two days later: "old" is due
    await asyncio.to_thread(mailbox.deliver, user, make_message("new"))
    second = await days.poll_once(collect)
    assert (second.new, second.deleted, second.count) == (1, 1, 1)
    third = await poller(Retention.DELETE).poll_once(collect)
    assert (third.new, third.deleted, third.count) == (0, 1, 0)
    assert [e.subject for e in events] == ["old", "new"]


# -- sending ---------------------------------------------------------------------


@pytest.mark.parametrize("security", ["starttls", "ssl"])
async def test_send_through_postfix_submission(
    submission: PostfixServer,
    mailbox: MailboxServer,
    user: MailUser,
    tls: Any,
    security: str,
) -> None:
    sink = Sink()
    watcher = make_watcher(imap(mailbox, user), sink, tls)
    sender = SmtpSender(smtp(submission, user, security), timeout=10)
    async with running(watcher):
        try:
            for n in range(2):  # over one kept connection
                await sender.send(
                    OutgoingMail(
                        user.address, to=[user.address], subject=f"envoi {n}", text="ok"
                    )
                )
            assert sender.connections_opened == 1
            assert "auth" in sender.extensions
        finally:
            await sender.close()
        await sink.wait(lambda: len(sink.events) == 2, within=15)
    assert sorted(sink.subjects) == ["envoi 0", "envoi 1"]


async def test_starttls_fails_closed(
    family: str, request: pytest.FixtureRequest
) -> None:
    server: MailboxServer = request.getfixturevalue(
        "dovecot_without_tls" if family == "dovecot" else "cyrus_without_tls"
    )
    user = server.add_user()
    wire = Wire()
    client = ImapClient(imap(server, user, "starttls"), ssl_context=None, trace=wire)
    with pytest.raises(StartTlsUnavailableError):
        await client.connect()
    await client.logout()
    poller = Pop3Poller(
        pop3(server, user, "starttls"), account=user.address, state=None, trace=wire
    )
    with pytest.raises(StartTlsUnavailableError):
        await poller.check_login()
    assert user.password.encode() not in wire.all()
    assert b"LOGIN" not in wire.sent()
    assert b"PASS" not in wire.sent()


# -- non-ASCII round trip ----------------------------------------------------------


async def test_french_letter_round_trip_over_imap_and_pop3(
    submission: PostfixServer,
    mailbox: MailboxServer,
    user: MailUser,
    tls: Any,
) -> None:
    sink = Sink()
    watcher = make_watcher(imap(mailbox, user), sink, tls, text_limit=4000)
    sender = SmtpSender(smtp(submission, user, "starttls"), timeout=10)
    async with running(watcher):
        try:
            await sender.send(
                OutgoingMail(
                    user.address,
                    to=[user.address],
                    subject=FRENCH_SUBJECT,
                    text=FRENCH_TEXT,
                    sender_name=FRENCH_NAME,
                )
            )
        finally:
            await sender.close()
        await sink.wait(lambda: len(sink.events) == 1, within=15)
    by_pop3: list[MailEvent] = []

    async def collect(event: MailEvent) -> None:
        by_pop3.append(event)

    poller = Pop3Poller(
        pop3(mailbox, user), account=user.address, state=Pop3State(),
        ssl_context=tls, event=EventOptions(text_limit=4000),
    )  # fmt: skip
    await poller.poll_once(collect)
    over_imap, over_pop3 = sink.events[0], by_pop3[0]
    assert over_imap.subject == FRENCH_SUBJECT
    assert over_imap.sender_name == FRENCH_NAME
    assert over_imap.sender == user.address
    assert over_imap.text.strip() == FRENCH_TEXT
    transport = {"protocol", "folder", "uid", "uidvalidity", "size"}
    assert {k: v for k, v in asdict(over_imap).items() if k not in transport} == {
        k: v for k, v in asdict(over_pop3).items() if k not in transport
    }


# -- non-ASCII in every transfer encoding ----------------------------------------

LETTERS = {
    "fr": (
        "Hélène Lefèvre-Dupré",
        "Relevé : l’eau a coulé – « alerte » à 5 €",
        "Bonjour,\nla pompe s’est arrêtée à 3 h 12.\nÇa recommence œuvre.",
        "relevé été.pdf",
    ),
    "de": (
        "Jürgen Größe",
        "Tür offen – Temperatur 23 °C ✓",
        "Grüße aus dem Keller: Wasserstand 12 cm, Heizöl 40 %.",
        "Übersicht März.pdf",
    ),
    "cjk": (
        "山田 太郎",
        "温度センサー 警告：台所 28 °C",
        "台所の温度が高すぎます。窓を開けてください。\n温度 28 度",
        "温度記録.pdf",
    ),
}
ENCODINGS = ("7bit", "8bit", "quoted-printable", "base64")


def _letter(lang: str, cte: str, to: str) -> tuple[bytes, tuple[str, str, str, str]]:
    """One letter as a mail program writes it; 7bit bodies are ASCII by nature."""
    name, subject, text, filename = LETTERS[lang]
    body = "Plain ASCII body, the headers carry the rest." if cte == "7bit" else text
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(name, "sender", "example.org")
    msg["To"] = to
    msg["Subject"] = f"[{lang} {cte}] {subject}"
    msg.set_content(body, charset="utf-8", cte=cte)
    msg.add_attachment(
        b"%PDF-1.4 " + lang.encode(), maintype="application", subtype="pdf",
        filename=filename,
    )  # fmt: skip
    return msg.as_bytes(), (name, f"[{lang} {cte}] {subject}", body, filename)


async def test_non_ascii_in_every_transfer_encoding_over_imap_and_pop3(
    mailbox: MailboxServer, user: MailUser, tls: Any
) -> None:
    """French, German and Japanese names, subjects, bodies and file names.

    Each in 7bit, 8bit, quoted-printable and base64, with the headers Python's
    mail package writes (encoded words beside plain text, folded): both
    protocols give back exactly the letter.
    """
    letters = [
        _letter(lang, cte, user.address) for lang in LETTERS for cte in ENCODINGS
    ]
    sink = Sink()
    watcher = make_watcher(imap(mailbox, user), sink, tls, text_limit=4000)
    async with running(watcher):
        await asyncio.to_thread(mailbox.deliver, user, [raw for raw, _ in letters])
        await sink.wait(lambda: len(sink.events) == len(letters), within=30)
    by_pop3: list[MailEvent] = []

    async def collect(event: MailEvent) -> None:
        by_pop3.append(event)

    poller = Pop3Poller(
        pop3(mailbox, user), account=user.address, state=Pop3State(),
        ssl_context=tls, event=EventOptions(text_limit=4000),
    )  # fmt: skip
    await poller.poll_once(collect)
    for events in (sink.events, by_pop3):
        got = [
            (
                e.sender_name,
                e.subject,
                e.text.strip(),
                [a.filename for a in e.attachments],
            )
            for e in events
        ]
        want = [
            (name, subject, body, [filename])
            for _, (name, subject, body, filename) in letters
        ]
        assert got == want
