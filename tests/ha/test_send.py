"""Sending through Home Assistant: the notify entity and ``mail_relay.send_mail``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.notify import DOMAIN as NOTIFY_DOMAIN
from homeassistant.components.notify import SERVICE_SEND_MESSAGE
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from homeassistant.util import slugify
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.mail_relay.const import (
    CONF_POLL_INTERVAL,
    CONF_RECIPIENTS,
    CONF_SENDER_NAME,
    CONF_SMTP_PORT,
    DOMAIN,
    EVENT_NEW_MAIL,
)
from custom_components.mail_relay.mail import smtp as smtp_module
from custom_components.mail_relay.mail.bounds import MAX_ATTACHMENT_BYTES
from custom_components.mail_relay.mail.smtp import SmtpSender
from tests.ha.helpers import wait_for
from tests.mailserver import DovecotServer, MailUser, SmtpServer
from tests.mailserver.dovecot import (
    FRENCH_NAME,
    FRENCH_SUBJECT,
    FRENCH_TEXT,
    make_message,
)
from tests.mailserver.postfix import PostfixServer
from tests.mailserver.scripted import ScriptedServer

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

pytestmark = pytest.mark.usefixtures("trust_test_cert")


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry


async def _on_scripted(
    hass: HomeAssistant, base: MockConfigEntry, port: int
) -> tuple[MockConfigEntry, SmtpSender]:
    """Set up ``base`` sending through the scripted server on ``port``."""
    entry = await _setup(
        hass,
        MockConfigEntry(
            domain=DOMAIN,
            title=base.title,
            data={**base.data, CONF_SMTP_PORT: port},
            unique_id=base.unique_id,
        ),
    )
    sender = entry.runtime_data.sender
    assert sender is not None
    return entry, sender


async def _notify_fails(
    hass: HomeAssistant, entry: MockConfigEntry
) -> HomeAssistantError:
    """Send a notification that must fail; return the error the user sees."""
    with pytest.raises(HomeAssistantError) as caught:
        await hass.services.async_call(
            NOTIFY_DOMAIN,
            SERVICE_SEND_MESSAGE,
            {"entity_id": _notify_entity_id(hass, entry), "message": "x"},
            blocking=True,
        )
    return caught.value


async def _send_mail_fails(
    hass: HomeAssistant,
    data: dict[str, Any],
    expected: type[HomeAssistantError] = ServiceValidationError,
) -> HomeAssistantError:
    """Call ``mail_relay.send_mail`` expecting ``expected``; return the error."""
    with pytest.raises(expected) as caught:
        await hass.services.async_call(DOMAIN, "send_mail", data, blocking=True)
    return caught.value


def _notify_entity_id(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(
        NOTIFY_DOMAIN, DOMAIN, f"{entry.entry_id}_notify"
    )
    assert entity_id is not None
    return entity_id


async def _unload(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


@pytest.fixture
def allowed_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A directory in allowlist_external_dirs, as a user would configure it."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    hass.config.allowlist_external_dirs = {str(allowed)}
    return allowed


async def test_notify_entity_sends_to_default_recipients(
    hass: HomeAssistant,
    mail_user: MailUser,
    smtp_server: SmtpServer,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = await _setup(
        hass,
        entry_factory(
            mail_user,
            options={
                CONF_RECIPIENTS: [
                    "Jean Dupont <jean@example.org>",
                    "marie@example.org",
                ],
                CONF_SENDER_NAME: "Maison Dupré",
            },
        ),
    )
    entity_id = _notify_entity_id(hass, entry)
    state = hass.states.get(entity_id)
    assert state is not None
    assert state.attributes["friendly_name"] == f"{mail_user.address} (IMAP) Send mail"
    # The README's notify.<account>_send_mail.
    assert entity_id == f"notify.{slugify(mail_user.address)}_imap_send_mail"
    # By config entry: async_get_device is deprecated from Home Assistant 2026
    # (identifiers are unique per entry only), its replacement is not in 2025.4.
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    [device] = [d for d in devices if (DOMAIN, entry.entry_id) in d.identifiers]
    assert device.name == f"{mail_user.address} (IMAP)"
    assert device.entry_type is dr.DeviceEntryType.SERVICE

    await hass.services.async_call(
        NOTIFY_DOMAIN,
        SERVICE_SEND_MESSAGE,
        {
            "entity_id": entity_id,
            "title": "Porte d'entrée ouverte",
            "message": "À 7 h 02.",
        },
        blocking=True,
    )
    received = smtp_server.received_by("marie@example.org")
    assert len(received) == 1
    assert sorted(received[0].rcpt_tos) == ["jean@example.org", "marie@example.org"]
    assert received[0].login == mail_user.address
    msg = received[0].parsed()
    assert msg["Subject"] == "Porte d'entrée ouverte"
    assert msg["From"].addresses[0].display_name == "Maison Dupré"
    assert msg["From"].addresses[0].addr_spec == mail_user.address
    assert msg.get_content().strip() == "À 7 h 02."
    await _unload(hass, entry)


async def test_notify_without_recipients_mails_the_account_itself(
    hass: HomeAssistant,
    mail_user: MailUser,
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = await _setup(hass, entry_factory(mail_user, smtp_security="ssl"))
    await hass.services.async_call(
        NOTIFY_DOMAIN,
        SERVICE_SEND_MESSAGE,
        {"entity_id": _notify_entity_id(hass, entry), "message": "hello me"},
        blocking=True,
    )
    [sent] = smtp_server.received_by(mail_user.address)
    assert sent.parsed()["Auto-Submitted"] == "auto-generated"
    # The SMTP fixture relays to Dovecot: the mail is in the user's mailbox.
    assert dovecot.message_count(mail_user) == 1
    await _unload(hass, entry)


async def test_mail_the_account_sent_itself_fires_no_event(
    hass: HomeAssistant,
    mail_user: MailUser,
    dovecot: DovecotServer,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    """An automation "new mail -> notify" on the account does not loop."""
    entry = await _setup(hass, entry_factory(mail_user))
    events = async_capture_events(hass, EVENT_NEW_MAIL)

    @callback
    def notify_on_mail(event: Event) -> None:
        hass.async_create_task(
            hass.services.async_call(
                NOTIFY_DOMAIN,
                SERVICE_SEND_MESSAGE,
                {
                    "entity_id": _notify_entity_id(hass, entry),
                    "title": f"Re: {event.data['subject']}",
                    "message": "Mail arrived.",
                },
                blocking=True,
            )
        )

    hass.bus.async_listen(EVENT_NEW_MAIL, notify_on_mail)
    await hass.async_add_executor_job(
        dovecot.deliver, mail_user, make_message("Colis", to=mail_user.address)
    )
    # The notification lands in the same mailbox, then a person writes again.
    await wait_for(hass, lambda: dovecot.message_count(mail_user) == 2)
    await hass.async_add_executor_job(
        dovecot.deliver, mail_user, make_message("Facture", to=mail_user.address)
    )
    await wait_for(hass, lambda: dovecot.message_count(mail_user) == 4)
    await wait_for(hass, lambda: len(events) == 2)
    await asyncio.sleep(0.5)  # a loop would fire more by now
    assert [e.data["subject"] for e in events] == ["Colis", "Facture"]
    assert [e.data["auto_submitted"] for e in events] == [None, None]
    assert dovecot.message_count(mail_user) == 4
    await _unload(hass, entry)


async def test_no_notify_entity_without_smtp(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = await _setup(hass, entry_factory(mail_user, smtp_security=None))
    assert entry.runtime_data.sender is None
    assert (
        er.async_get(hass).async_get_entity_id(
            NOTIFY_DOMAIN, DOMAIN, f"{entry.entry_id}_notify"
        )
        is None
    )
    error = await _send_mail_fails(
        hass,
        {"config_entry_id": entry.entry_id, "to": ["a@example.org"], "text": "x"},
    )
    assert error.translation_key == "smtp_not_configured"
    await _unload(hass, entry)


async def test_send_mail_action_with_everything(
    hass: HomeAssistant,
    mail_user: MailUser,
    smtp_server: SmtpServer,
    entry_factory: Callable[..., MockConfigEntry],
    allowed_dir: Path,
) -> None:
    entry = await _setup(hass, entry_factory(mail_user, smtp_security="starttls"))
    (allowed_dir / "rapport.pdf").write_bytes(b"%PDF-1.4 rapport")
    (allowed_dir / "snapshot.png").write_bytes(PNG)
    response = await hass.services.async_call(
        DOMAIN,
        "send_mail",
        {
            "config_entry_id": entry.entry_id,
            "to": ["Élodie <elodie@example.org>"],
            "cc": "cc@example.org",
            "bcc": ["hidden@example.org"],
            "reply_to": ["support@example.org"],
            "subject": "Caméra : mouvement",
            "html": '<p>Mouvement</p><img src="cid:snapshot.png">',
            "attachments": [str(allowed_dir / "rapport.pdf")],
            "images": [str(allowed_dir / "snapshot.png")],
        },
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert sorted(response["accepted"]) == [  # type: ignore[arg-type]
        "cc@example.org",
        "elodie@example.org",
        "hidden@example.org",
    ]
    received = smtp_server.received_by("hidden@example.org")
    assert len(received) == 1
    msg = received[0].parsed()
    assert "Bcc" not in msg
    assert b"hidden@example.org" not in received[0].data
    assert msg["Subject"] == "Caméra : mouvement"
    assert msg["To"].addresses[0].display_name == "Élodie"
    assert msg["Cc"] == "cc@example.org"
    assert msg["Reply-To"] == "support@example.org"
    image = next(p for p in msg.walk() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<snapshot.png>"
    assert image.get_content() == PNG
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "rapport.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == b"%PDF-1.4 rapport"
    await _unload(hass, entry)


async def test_send_mail_file_errors(
    hass: HomeAssistant,
    mail_user: MailUser,
    smtp_server: SmtpServer,
    entry_factory: Callable[..., MockConfigEntry],
    allowed_dir: Path,
    tmp_path: Path,
) -> None:
    entry = await _setup(hass, entry_factory(mail_user))
    outside = tmp_path / "secret.txt"
    outside.write_text("not for mail")
    big = allowed_dir / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(MAX_ATTACHMENT_BYTES + 1)
    # A FIFO nobody writes to: reading it would block an executor thread.
    fifo = allowed_dir / "camera.jpg"
    os.mkfifo(fifo)
    cases = {
        "path_not_allowed": {"attachments": [str(outside)]},
        "file_not_found": {"attachments": [str(allowed_dir / "missing.pdf")]},
        "attachments_too_large": {"attachments": [str(big)]},
        "file_not_regular": {"images": [str(fifo)]},
    }
    for key, extra in cases.items():
        async with asyncio.timeout(30):  # only to catch a hang
            error = await _send_mail_fails(
                hass,
                {
                    "config_entry_id": entry.entry_id,
                    "to": [f"{key}@example.org"],
                    "text": "x",
                    **extra,
                },
            )
        assert error.translation_key == key
        assert error.translation_domain == DOMAIN
        assert smtp_server.received_by(f"{key}@example.org") == []
    # The translated message names the offending path.
    error = await _send_mail_fails(
        hass,
        {
            "config_entry_id": entry.entry_id,
            "to": ["x@example.org"],
            "images": [str(outside)],
        },
    )
    assert "allowlist_external_dirs" in str(error)
    await _unload(hass, entry)


async def test_send_mail_invalid_input(
    hass: HomeAssistant,
    mail_user: MailUser,
    smtp_server: SmtpServer,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = await _setup(hass, entry_factory(mail_user))
    for data in (
        {"to": ["victim@example.org"], "subject": "hi\r\nBcc: spam@example.org"},
        {"to": ["not an address"]},
        {"to": ["ok@example.org"], "reply_to": ["x@example.org\nBcc: y@example.org"]},
    ):
        error = await _send_mail_fails(
            hass,
            {"config_entry_id": entry.entry_id, "text": "x", **data},
        )
        assert error.translation_key == "invalid_message"
    assert smtp_server.received_by("victim@example.org") == []
    assert smtp_server.received_by("spam@example.org") == []
    error = await _send_mail_fails(
        hass,
        {"config_entry_id": "nope", "to": ["a@example.org"]},
    )
    assert error.translation_key == "entry_not_found"
    await _unload(hass, entry)


async def test_server_refusal_is_a_home_assistant_error(
    hass: HomeAssistant,
    mail_user: MailUser,
    smtp_server: SmtpServer,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = await _setup(hass, entry_factory(mail_user))
    smtp_server.replies.append("550 5.7.1 Rejected")
    error = await _send_mail_fails(
        hass,
        {
            "config_entry_id": entry.entry_id,
            "to": ["refused@example.org"],
            "text": "x",
        },
        HomeAssistantError,
    )
    assert not isinstance(error, ServiceValidationError)
    assert error.translation_key == "send_refused"
    assert error.translation_placeholders == {
        "code": "550",
        "reply": "5.7.1 Rejected",
    }
    assert "5.7.1 Rejected" in str(error)
    assert smtp_server.received_by("refused@example.org") == []
    await _unload(hass, entry)


async def test_untrusted_certificate_error(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = await _setup(hass, entry_factory(mail_user, smtp_security="ssl"))
    # The mailbox connected while the test CA was trusted; the SMTP sender
    # builds its TLS context at its first send, now without it.
    monkeypatch.delenv("SSL_CERT_FILE")
    error = await _notify_fails(hass, entry)
    assert error.translation_key == "smtp_certificate"
    await _unload(hass, entry)


async def test_burst_of_notifications_shares_one_connection(
    hass: HomeAssistant,
    mail_user: MailUser,
    smtp_server: SmtpServer,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = await _setup(
        hass, entry_factory(mail_user, options={CONF_RECIPIENTS: ["burst@example.org"]})
    )
    entity_id = _notify_entity_id(hass, entry)
    before = smtp_server.sessions["starttls"]
    await asyncio.gather(
        *(
            hass.services.async_call(
                NOTIFY_DOMAIN,
                SERVICE_SEND_MESSAGE,
                {"entity_id": entity_id, "title": f"n{i}", "message": "x"},
                blocking=True,
            )
            for i in range(20)
        )
    )
    received = smtp_server.received_by("burst@example.org")
    assert sorted(m.parsed()["Subject"] for m in received) == sorted(
        f"n{i}" for i in range(20)
    )
    assert smtp_server.sessions["starttls"] - before == 1
    # Unloading closes the kept connection and cancels its idle timer.
    sender = entry.runtime_data.sender
    assert sender is not None
    assert sender.connected
    await _unload(hass, entry)
    assert not sender.connected


async def test_smtp_password_refused_starts_reauth(
    hass: HomeAssistant,
    mail_user: MailUser,
    smtp_server: SmtpServer,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = await _setup(hass, entry_factory(mail_user))
    smtp_server.add_user(mail_user.address, "changed-on-the-server")
    error = await _notify_fails(hass, entry)
    assert error.translation_key == "smtp_auth_failed"
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == ["reauth"]
    await _unload(hass, entry)


async def test_copy_saved_in_sent_folder(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    mail_cert,
) -> None:
    import imaplib

    from custom_components.mail_relay.const import CONF_SAVE_SENT

    entry = await _setup(hass, entry_factory(mail_user, options={CONF_SAVE_SENT: True}))
    await hass.services.async_call(
        NOTIFY_DOMAIN,
        SERVICE_SEND_MESSAGE,
        {
            "entity_id": _notify_entity_id(hass, entry),
            "message": "Porte ouverte",
            "title": "Alarme",
        },
        blocking=True,
    )

    def sent_copy() -> tuple[bytes, bytes] | None:
        client = imaplib.IMAP4_SSL(
            dovecot.host, dovecot.imaps_port, ssl_context=mail_cert.client_context()
        )
        try:
            client.login(mail_user.username, mail_user.password)
            if client.select("Sent", readonly=True) != ("OK", [b"1"]):
                return None
            _, data = client.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            return data[0][0], data[0][1]
        finally:
            client.logout()

    # The copy is saved in the background, after the notification returned.
    for _ in range(100):
        copy = await hass.async_add_executor_job(sent_copy)
        if copy is not None:
            break
        await asyncio.sleep(0.05)
    assert copy is not None
    flags, headers = copy
    assert b"\\Seen" in flags
    assert b"Subject: Alarme" in headers
    await _unload(hass, entry)


async def test_temporary_login_failure_does_not_ask_for_a_new_password(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    """454 at AUTH: a clear error after the retries, and no reauth prompt."""
    async with ScriptedServer(
        {
            "EHLO": "250-scripted\r\n250 AUTH PLAIN LOGIN",
            "AUTH": "454 4.7.0 Temporary authentication failure",
        }
    ) as server:
        entry, sender = await _on_scripted(
            hass, entry_factory(mail_user, smtp_security="none"), server.port
        )
        sender.backoff = 0.01
        error = await _notify_fails(hass, entry)
        assert error.translation_key == "smtp_connect_failed"
        assert "454" in str(error)
        await hass.async_block_till_done()
        assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []
        assert server.sessions == smtp_module.DEFAULT_ATTEMPTS
        await _unload(hass, entry)


async def test_unconfirmed_notification_is_sent_once_and_said_so(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    """The reply to the message never comes: one copy, and the user is told why."""
    async with ScriptedServer(
        {
            "EHLO": "250-scripted\r\n250 AUTH PLAIN LOGIN",
            "AUTH": "235 2.7.0 Authentication successful",
            "DATA": "354 go",
            ".": "",
        }
    ) as server:
        entry, sender = await _on_scripted(
            hass, entry_factory(mail_user, smtp_security="none"), server.port
        )
        sender.timeout = 1.0
        error = await _notify_fails(hass, entry)
        assert error.translation_key == "send_unconfirmed"
        assert "may have been delivered" in str(error)
        assert len(server.messages) == 1
        await _unload(hass, entry)


async def test_french_letter_by_send_mail_through_postfix_arrives_identical(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    postfix: PostfixServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    """``send_mail`` → Postfix (STARTTLS, SASL) → LMTP → the event, IMAP and POP3."""
    base = entry_factory(mail_user, options={CONF_SENDER_NAME: FRENCH_NAME})
    sender = await _setup(
        hass,
        MockConfigEntry(
            domain=DOMAIN,
            title=base.title,
            data={**base.data, CONF_SMTP_PORT: postfix.starttls_port},
            options=base.options,
            unique_id=base.unique_id,
        ),
    )
    reader = dovecot.add_user()
    await _setup(hass, entry_factory(reader, smtp_security=None))
    await _setup(
        hass,
        entry_factory(
            reader,
            protocol="pop3",
            smtp_security=None,
            options={CONF_POLL_INTERVAL: 60},
        ),
    )
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    await hass.services.async_call(
        DOMAIN,
        "send_mail",
        {
            "config_entry_id": sender.entry_id,
            "to": [reader.address],
            "subject": FRENCH_SUBJECT,
            "text": FRENCH_TEXT,
        },
        blocking=True,
    )
    await wait_for(hass, lambda: len(events) == 1, timeout=15)  # IMAP: pushed
    # POP3 is polled: the next poll (the IMAP watcher runs on, so no waiting
    # for every background task here).
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=60))
    await wait_for(hass, lambda: len(events) == 2, timeout=15)
    by = {event.data["protocol"]: event.data for event in events}
    assert set(by) == {"imap", "pop3"}
    for data in by.values():
        assert data["subject"] == FRENCH_SUBJECT
        assert data["sender_name"] == FRENCH_NAME
        assert data["sender"] == mail_user.address
        assert data["text"].strip() == FRENCH_TEXT
    transport = {"entry_id", "protocol", "folder", "uid", "uidvalidity", "size"}
    imap_data, pop3_data = (
        {k: v for k, v in by[p].items() if k not in transport} for p in ("imap", "pop3")
    )
    assert imap_data == pop3_data
