"""SmtpSender against real aiosmtpd listeners, in every security mode."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from custom_components.mail_relay.mail.compose import OutgoingAttachment, OutgoingMail
from custom_components.mail_relay.mail.errors import (
    AuthError,
    CertificateError,
    ConnectError,
    MessageError,
    SendError,
    StartTlsUnavailableError,
)
from custom_components.mail_relay.mail.models import Security, ServerSettings
from custom_components.mail_relay.mail.smtp import SmtpSender
from tests.mailserver import MailUser, SmtpServer
from tests.mailserver.ports import free_port

MODES = {
    Security.STARTTLS: "starttls",
    Security.SSL: "ssl",
    Security.NONE: "plain",
}
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

type SenderFactory = Callable[..., SmtpSender]


def settings_for(
    server: SmtpServer, user: MailUser, security: Security, **overrides: object
) -> ServerSettings:
    values: dict[str, object] = {
        "host": server.host,
        "port": server.ports[MODES[security]],
        "security": security,
        "username": user.address,
        "password": user.password,
    }
    values |= overrides
    return ServerSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def make_sender(
    smtp_server: SmtpServer, mail_user: MailUser
) -> AsyncIterator[SenderFactory]:
    """Build senders for the test user; every one is closed afterwards."""
    senders: list[SmtpSender] = []

    def make(
        security: Security = Security.STARTTLS,
        *,
        settings: ServerSettings | None = None,
        **kwargs: object,
    ) -> SmtpSender:
        kwargs.setdefault("backoff", 0.01)
        sender = SmtpSender(
            settings or settings_for(smtp_server, mail_user, security),
            **kwargs,  # type: ignore[arg-type]
        )
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        await sender.close()


def unique(name: str) -> str:
    """An address no other test uses (the server and its log live all session)."""
    return f"{name}-{secrets.token_hex(3)}@example.org"


def only_message(server: SmtpServer, address: str) -> EmailMessage:
    received = server.received_by(address)
    assert len(received) == 1
    return received[0].parsed()


@pytest.mark.usefixtures("trust_test_cert")
@pytest.mark.parametrize("security", list(MODES))
async def test_text_mail_in_each_mode(
    security: Security,
    make_sender: SenderFactory,
    smtp_server: SmtpServer,
    mail_user: MailUser,
) -> None:
    to = f"text-{security}@example.org"
    result = await make_sender(security).send(
        OutgoingMail(
            sender=mail_user.address,
            sender_name="Maison Dupré",
            to=[f"Élodie Château <{to}>"],
            subject="Température élevée ☀",
            text="Il fait 31 °C dans le séjour.",
        )
    )
    assert result.accepted == (to,)
    received = smtp_server.received_by(to)
    assert len(received) == 1
    assert received[0].mode == MODES[security]
    assert received[0].login == mail_user.address
    assert received[0].mail_from == mail_user.address
    msg = received[0].parsed()
    assert msg["Subject"] == "Température élevée ☀"
    assert msg["From"].addresses[0].display_name == "Maison Dupré"
    assert msg["From"].addresses[0].addr_spec == mail_user.address
    assert msg["To"].addresses[0].display_name == "Élodie Château"
    assert msg.get_content().strip() == "Il fait 31 °C dans le séjour."


@pytest.mark.usefixtures("trust_test_cert")
@pytest.mark.parametrize("security", list(MODES))
async def test_html_inline_image_attachments_cc_bcc(
    security: Security,
    make_sender: SenderFactory,
    smtp_server: SmtpServer,
    mail_user: MailUser,
) -> None:
    to, cc, bcc = (f"{k}-{security}@example.org" for k in ("to", "cc", "bcc"))
    await make_sender(security).send(
        OutgoingMail(
            sender=mail_user.address,
            to=[to],
            cc=[cc],
            bcc=[bcc],
            reply_to=["Support <support@example.org>"],
            subject="Caméra entrée",
            html='<p>Mouvement détecté</p><img src="cid:snapshot.png">',
            images=[OutgoingAttachment("snapshot.png", PNG)],
            attachments=[
                OutgoingAttachment("rapport été.pdf", b"%PDF-1.4 fake"),
                OutgoingAttachment("log.txt", "ligne é\n".encode()),
            ],
        )
    )
    received = smtp_server.received_by(bcc)
    assert len(received) == 1
    assert sorted(received[0].rcpt_tos) == sorted([to, cc, bcc])
    assert bcc.encode() not in received[0].data
    msg = received[0].parsed()
    assert "Bcc" not in msg
    assert msg["Cc"] == cc
    assert msg["Reply-To"] == "Support <support@example.org>"
    assert msg["Subject"] == "Caméra entrée"

    html = msg.get_body(("html",))
    assert html is not None
    assert "Mouvement détecté" in html.get_content()
    plain = msg.get_body(("plain",))
    assert plain is not None
    assert "Mouvement détecté" in plain.get_content()
    # The image sits next to the HTML in multipart/related, under its cid.
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    image = next(p for p in related.iter_parts() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<snapshot.png>"
    assert image.get_content() == PNG

    attachments = {p.get_filename(): p for p in msg.iter_attachments()}
    assert set(attachments) == {"rapport été.pdf", "log.txt"}
    assert attachments["rapport été.pdf"].get_content_type() == "application/pdf"
    assert attachments["rapport été.pdf"].get_content() == b"%PDF-1.4 fake"
    assert attachments["log.txt"].get_content_type() == "text/plain"


@pytest.mark.usefixtures("trust_test_cert")
async def test_connection_reused_for_a_burst_then_closed_when_idle(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    sender = make_sender(Security.STARTTLS, idle_timeout=0.3)
    before = smtp_server.sessions["starttls"]
    mails = [
        OutgoingMail(sender=mail_user.address, to=[f"burst{i}@example.org"], text="x")
        for i in range(10)
    ]
    # Ten concurrent callers: the lock queues them on one connection.
    results = await asyncio.gather(*(sender.send(m) for m in mails))
    assert all(r.accepted for r in results)
    for i in range(10):
        assert len(smtp_server.received_by(f"burst{i}@example.org")) == 1
    assert smtp_server.sessions["starttls"] - before == 1
    assert sender.connections_opened == 1
    assert sender.connected

    await asyncio.sleep(0.6)
    assert not sender.connected
    await sender.send(mails[0])
    assert sender.connections_opened == 2
    assert smtp_server.sessions["starttls"] - before == 2


@pytest.mark.usefixtures("trust_test_cert")
async def test_dropped_connection_is_replaced_transparently(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    sender = make_sender(Security.SSL, idle_timeout=30)
    mail = OutgoingMail(sender=mail_user.address, to=["drop@example.org"], text="x")
    await sender.send(mail)
    # Simulate the server dropping an idle connection: kill the socket under
    # aiosmtplib without telling it (no FIN seen yet by the client).
    client = sender._client
    assert client is not None
    assert client.transport is not None
    client.transport.abort()
    await sender.send(mail)
    assert len(smtp_server.received_by("drop@example.org")) == 2
    assert sender.connections_opened == 2


@pytest.mark.usefixtures("trust_test_cert")
async def test_550_is_permanent_with_the_server_reply(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    sender = make_sender(Security.STARTTLS)
    smtp_server.replies.append("550 5.7.1 Rejected")
    with pytest.raises(SendError) as caught:
        await sender.send(
            OutgoingMail(sender=mail_user.address, to=["r550@example.org"], text="x")
        )
    assert caught.value.code == 550
    assert caught.value.permanent
    assert "5.7.1 Rejected" in caught.value.reply
    assert smtp_server.received_by("r550@example.org") == []
    # The sender is still usable afterwards.
    await sender.send(
        OutgoingMail(sender=mail_user.address, to=["after550@example.org"], text="y")
    )
    assert len(smtp_server.received_by("after550@example.org")) == 1


@pytest.mark.usefixtures("trust_test_cert")
async def test_421_is_retried_then_delivered_once(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    sender = make_sender(Security.STARTTLS, attempts=3)
    before = smtp_server.sessions["starttls"]
    smtp_server.replies.append("421 4.3.2 Try again later")
    result = await sender.send(
        OutgoingMail(sender=mail_user.address, to=["r421@example.org"], text="x")
    )
    assert result.accepted == ("r421@example.org",)
    assert len(smtp_server.received_by("r421@example.org")) == 1
    # "421 closing": the retry went over a fresh connection.
    assert smtp_server.sessions["starttls"] - before == 2


@pytest.mark.usefixtures("trust_test_cert")
async def test_persistent_4xx_gives_up_with_a_transient_error(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    sender = make_sender(Security.STARTTLS, attempts=2)
    smtp_server.replies.extend(["451 4.3.0 Busy", "451 4.3.0 Busy"])
    with pytest.raises(SendError) as caught:
        await sender.send(
            OutgoingMail(sender=mail_user.address, to=["r451@example.org"], text="x")
        )
    assert caught.value.code == 451
    assert not caught.value.permanent
    assert smtp_server.received_by("r451@example.org") == []


@pytest.mark.usefixtures("trust_test_cert")
async def test_header_injection_never_reaches_the_server(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    sender = make_sender(Security.STARTTLS)
    before = smtp_server.sessions["starttls"]
    with pytest.raises(MessageError, match="subject"):
        await sender.send(
            OutgoingMail(
                sender=mail_user.address,
                to=["inject@example.org"],
                subject="hi\r\nBcc: victim@example.org",
            )
        )
    with pytest.raises(MessageError, match="not a valid email address"):
        await sender.send(
            OutgoingMail(sender=mail_user.address, to=["not an address"], text="x")
        )
    assert smtp_server.received_by("victim@example.org") == []
    assert smtp_server.sessions["starttls"] == before


@pytest.mark.usefixtures("trust_test_cert")
async def test_wrong_password_is_an_auth_error(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    settings = settings_for(smtp_server, mail_user, Security.SSL, password="wrong")
    with pytest.raises(AuthError):
        await make_sender(settings=settings).send(
            OutgoingMail(sender=mail_user.address, to=["x@example.org"], text="x")
        )


@pytest.mark.parametrize("security", [Security.STARTTLS, Security.SSL])
async def test_self_signed_certificate_untrusted_by_default(
    security: Security,
    make_sender: SenderFactory,
    smtp_server: SmtpServer,
    mail_user: MailUser,
) -> None:
    with pytest.raises(CertificateError):
        await make_sender(security).send(
            OutgoingMail(sender=mail_user.address, to=["cert@example.org"], text="x")
        )
    assert smtp_server.received_by("cert@example.org") == []


async def test_verification_can_be_turned_off(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    settings = settings_for(smtp_server, mail_user, Security.SSL, verify_tls=False)
    await make_sender(settings=settings).send(
        OutgoingMail(sender=mail_user.address, to=["noverify@example.org"], text="x")
    )
    assert len(smtp_server.received_by("noverify@example.org")) == 1


async def test_connection_refused_is_a_connect_error(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    settings = settings_for(smtp_server, mail_user, Security.NONE, port=free_port())
    sender = make_sender(settings=settings, attempts=2)
    with pytest.raises(ConnectError):
        await sender.send(
            OutgoingMail(sender=mail_user.address, to=["x@example.org"], text="x")
        )


class _RecordingHandler:
    """A server without STARTTLS that records every command it sees."""

    def __init__(self) -> None:
        self.auth_attempts = 0
        self.messages = 0

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.messages += 1
        return "250 OK"


async def test_starttls_not_offered_fails_closed_before_auth(
    make_sender: SenderFactory, mail_user: MailUser, tmp_path: Path
) -> None:
    handler = _RecordingHandler()

    def authenticator(
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: object,
    ) -> AuthResult:
        handler.auth_attempts += 1
        assert isinstance(auth_data, LoginPassword)
        return AuthResult(success=True)

    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        settings = ServerSettings(
            host="127.0.0.1",
            port=port,
            security=Security.STARTTLS,
            username=mail_user.address,
            password=mail_user.password,
        )
        with pytest.raises(StartTlsUnavailableError):
            await make_sender(settings=settings).send(
                OutgoingMail(sender=mail_user.address, to=["x@example.org"], text="x")
            )
        assert handler.auth_attempts == 0
        assert handler.messages == 0
    finally:
        controller.stop()


@pytest.mark.usefixtures("trust_test_cert")
async def test_no_auth_when_no_username(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    # The plain listener relays without AUTH (an ISP's own-network relay).
    settings = settings_for(
        smtp_server, mail_user, Security.NONE, username="", password=""
    )
    await make_sender(settings=settings).send(
        OutgoingMail(sender=mail_user.address, to=["noauth@example.org"], text="x")
    )
    received = smtp_server.received_by("noauth@example.org")
    assert len(received) == 1
    assert received[0].login is None


async def test_close_leaves_no_timer(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    sender = make_sender(Security.NONE, idle_timeout=60)
    await sender.send(
        OutgoingMail(sender=mail_user.address, to=["close@example.org"], text="x")
    )
    assert sender._idle_handle is not None
    await sender.close()
    assert sender._idle_handle is None
    assert not sender.connected


@pytest.mark.usefixtures("trust_test_cert")
async def test_some_recipients_refused(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    """The others get the message once; the refused ones come back with the reply."""
    here, gone = unique("here"), unique("gone")
    smtp_server.refused_rcpts[gone] = "550 5.1.1 No such user"
    result = await make_sender(Security.STARTTLS).send(
        OutgoingMail(sender=mail_user.address, to=[here, gone], text="x")
    )
    assert result.accepted == (here,)
    assert result.refused == {gone: (550, "5.1.1 No such user")}
    assert len(smtp_server.received_by(here)) == 1
    assert smtp_server.received_by(gone) == []


@pytest.mark.usefixtures("trust_test_cert")
async def test_every_recipient_refused_is_permanent_and_the_connection_survives(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    gone, kept = unique("gone"), unique("kept")
    smtp_server.refused_rcpts[gone] = "550 5.1.1 No such user"
    sender = make_sender(Security.STARTTLS)
    with pytest.raises(SendError) as caught:
        await sender.send(OutgoingMail(sender=mail_user.address, to=[gone], text="x"))
    assert caught.value.code == 550
    assert caught.value.permanent
    assert "No such user" in caught.value.reply
    # The kept connection is still in step with the server: the next message
    # goes over it.
    await sender.send(OutgoingMail(sender=mail_user.address, to=[kept], text="y"))
    assert len(smtp_server.received_by(kept)) == 1
    assert sender.connections_opened == 1


@pytest.mark.usefixtures("trust_test_cert")
async def test_internationalised_domain_goes_out_in_ascii(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    """société.fr travels as xn--socit-esab.fr: a valid header, no SMTPUTF8 needed."""
    token = secrets.token_hex(3)
    await make_sender(Security.STARTTLS).send(
        OutgoingMail(
            sender=mail_user.address, to=[f"Léa <lea-{token}@société.fr>"], text="x"
        )
    )
    ascii_form = f"lea-{token}@xn--socit-esab.fr"
    msg = only_message(smtp_server, ascii_form)
    assert msg["To"].addresses[0].addr_spec == ascii_form
    assert msg["To"].addresses[0].display_name == "Léa"


@pytest.mark.usefixtures("trust_test_cert")
async def test_no_idle_time_means_one_connection_per_message(
    make_sender: SenderFactory, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    sender = make_sender(Security.STARTTLS, idle_timeout=0)
    before = smtp_server.sessions["starttls"]
    for _ in range(2):
        await sender.send(
            OutgoingMail(sender=mail_user.address, to=[unique("once")], text="x")
        )
        assert not sender.connected
    await sender.close()
    assert smtp_server.sessions["starttls"] - before == 2
