"""Attachments saved to a folder through Home Assistant, against a real Dovecot.

``mail_relay.save_attachments`` over IMAP (part by part) and POP3 (the message
read whole while it is on the server), and auto-save of new mail whose event
says where each file went.
"""

from __future__ import annotations

import base64
import imaplib
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.mail_relay.const import (
    CONF_INCOMING_PORT,
    DOMAIN,
    EVENT_NEW_MAIL,
)
from custom_components.mail_relay.mail.pop3 import Pop3Poller
from tests.ha.helpers import wait_for
from tests.mailserver import DovecotServer, MailUser, TestCertificate
from tests.mailserver.proxy import FaultyProxy

pytestmark = pytest.mark.usefixtures("trust_test_cert")

PDF = b"%PDF-1.4\n" + os.urandom(3000) + b"\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0" + os.urandom(5000) + b"\xff\xd9"
BIG = os.urandom(300 * 1024)  # over the 0.2 MB cap the tests give
RTL = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "invoice\u202efdp.exe" reads "invoiceexe.pdf"


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode()


def hostile_mail(subject: str) -> bytes:
    """A mail as a hostile sender writes it: climbing names, devices, RTL, junk.

    Nested multiparts (an alternative inside a mixed inside a mixed), a part
    whose base64 is junk, a large part and a text file not among the wanted
    types.
    """
    return f"""From: sender@example.org
To: user@mailrelay.test
Subject: {subject}
Message-ID: <{os.urandom(6).hex()}@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/mixed; boundary="inner"

--inner
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

Voici la facture.
--alt
Content-Type: text/html; charset=utf-8

<p>Voici la facture.</p>
--alt--
--inner
Content-Type: application/pdf; name="../../etc/passwd.pdf"
Content-Disposition: attachment; filename="../../etc/passwd.pdf"
Content-Transfer-Encoding: base64

{_b64(PDF)}
--inner--
--outer
Content-Type: image/jpeg
Content-Disposition: attachment; filename*=utf-8''CON.r%C3%A9sum%C3%A9%E2%80%AEgpj.jpg
Content-Transfer-Encoding: base64

{_b64(JPEG)}
--outer
Content-Type: application/pdf
Content-Disposition: attachment; filename="broken.pdf"
Content-Transfer-Encoding: base64

!!!! ???? not base64 at all ****
--outer
Content-Type: application/pdf
Content-Disposition: attachment; filename="big.pdf"
Content-Transfer-Encoding: base64

{_b64(BIG)}
--outer
Content-Type: text/csv
Content-Disposition: attachment; filename="notes.csv"

a,b
--outer--
""".replace("\n", "\r\n").encode()


SAFE_PDF = "etc_passwd.pdf"  # "../../etc/passwd.pdf": the names, not the way up
SAFE_JPEG = "_CON.résumégpj.jpg"  # a device name defused, the override dropped


@pytest.fixture
def media_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A media folder, allowed as Home Assistant allows its media folders."""
    media = tmp_path / "media"
    media.mkdir()
    hass.config.media_dirs = {"local": str(media)}
    hass.config.allowlist_external_dirs = {str(media)}
    return media


async def _setup(
    hass: HomeAssistant, entry: MockConfigEntry
) -> tuple[MockConfigEntry, list[Any]]:
    entry.add_to_hass(hass)
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry, events


async def _deliver_and_wait(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    user: MailUser,
    events: list[Any],
    message: bytes,
) -> dict[str, Any]:
    before = len(events)
    await hass.async_add_executor_job(dovecot.deliver, user, message)
    await wait_for(hass, lambda: len(events) > before, timeout=30)
    data: dict[str, Any] = events[-1].data
    return data


async def _save(hass: HomeAssistant, **data: Any) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN, "save_attachments", data, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    return response


def _reasons(response: dict[str, Any]) -> dict[str, str]:
    return {s["filename"]: s["reason"] for s in response["skipped"]}


def _unseen(dovecot: DovecotServer, user: MailUser, cert: TestCertificate) -> bytes:
    client = imaplib.IMAP4_SSL(
        dovecot.host, dovecot.imaps_port, ssl_context=cert.client_context()
    )
    client.login(user.username, user.password)
    client.select("INBOX", readonly=True)
    found: bytes = client.uid("SEARCH", "UNSEEN")[1][0]
    client.logout()
    return found


async def test_imap_save_by_part_sanitised_and_never_overwritten(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    mail_cert: TestCertificate,
    entry_factory: Callable[..., MockConfigEntry],
    media_dir: Path,
) -> None:
    entry, events = await _setup(hass, entry_factory(mail_user))
    event = await _deliver_and_wait(
        hass, dovecot, mail_user, events, hostile_mail("Facture")
    )
    target = media_dir / "factures"
    call = {
        "config_entry_id": entry.entry_id,
        "uid": event["uid"],
        "directory": str(target),
        "types": ["application/pdf", "image/*"],
        "max_size_mb": 0.2,
    }
    response = await _save(hass, **call)

    saved = {Path(s["saved_path"]).name: s for s in response["saved"]}
    assert set(saved) == {SAFE_PDF, SAFE_JPEG}
    assert (target / SAFE_PDF).read_bytes() == PDF
    assert (target / SAFE_JPEG).read_bytes() == JPEG
    assert saved[SAFE_PDF]["filename"] == "../../etc/passwd.pdf"
    assert saved[SAFE_PDF]["size"] == len(PDF)
    assert _reasons(response) == {
        "broken.pdf": "undecodable",
        "big.pdf": "too_large",
        "notes.csv": "type_not_selected",
    }
    # Nothing written anywhere else, nothing climbed out.
    assert sorted(p.name for p in media_dir.rglob("*") if p.is_file()) == sorted(
        [SAFE_PDF, SAFE_JPEG]
    )
    # BODY.PEEK: saving does not mark the mail read.
    assert (
        event["uid"].encode()
        in (
            await hass.async_add_executor_job(_unseen, dovecot, mail_user, mail_cert)
        ).split()
    )

    # A second save keeps the first files and adds numbered ones.
    again = await _save(hass, **call)
    assert sorted(Path(s["saved_path"]).name for s in again["saved"]) == sorted(
        ["etc_passwd (1).pdf", "_CON.résumégpj (1).jpg"]
    )
    assert (target / SAFE_PDF).read_bytes() == PDF
    assert (target / "etc_passwd (1).pdf").read_bytes() == PDF
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_only_the_wanted_parts_travel(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    media_dir: Path,
) -> None:
    """What the client asks for: the PDF's part, never the big one, never it all."""
    async with FaultyProxy(dovecot.host, dovecot.imap_port) as proxy:
        base = entry_factory(mail_user, security="none", smtp_security=None)
        entry, events = await _setup(
            hass,
            MockConfigEntry(
                domain=DOMAIN,
                title=base.title,
                data={**base.data, CONF_INCOMING_PORT: proxy.port},
                unique_id=base.unique_id,
            ),
        )
        event = await _deliver_and_wait(
            hass, dovecot, mail_user, events, hostile_mail("Par parties")
        )
        proxy.client_bytes.clear()
        response = await _save(
            hass,
            config_entry_id=entry.entry_id,
            uid=event["uid"],
            directory=str(media_dir),
            types=["application/*"],  # the PDFs: 1.2, 3 (broken) and 4 (big)
            max_size_mb=0.2,
        )
        assert [Path(s["saved_path"]).name for s in response["saved"]] == [SAFE_PDF]
        asked = bytes(proxy.client_bytes)
        assert b"BODY.PEEK[1.2]<0." in asked
        assert b"BODY.PEEK[3]<0." in asked
        # big.pdf is over the cap by BODYSTRUCTURE: not downloaded at all;
        # nor is the whole message, nor the image and the CSV not asked for.
        for section in (b"[4]", b"[2]", b"[5]", b"[]"):
            assert b"BODY.PEEK" + section not in asked, section
        assert b"RFC822" not in asked.replace(b"RFC822.SIZE", b"")
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_save_refuses_folders_outside_the_allow_list(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    media_dir: Path,
    tmp_path: Path,
) -> None:
    entry, events = await _setup(hass, entry_factory(mail_user))
    event = await _deliver_and_wait(
        hass, dovecot, mail_user, events, hostile_mail("Ailleurs")
    )
    (media_dir / "escape").symlink_to(tmp_path)
    for directory in (
        str(tmp_path / "elsewhere"),
        str(media_dir / ".." / "elsewhere"),
        str(media_dir / "escape" / "inside"),  # a link that leads out
    ):
        with pytest.raises(ServiceValidationError) as caught:
            await _save(
                hass,
                config_entry_id=entry.entry_id,
                uid=event["uid"],
                directory=directory,
            )
        assert caught.value.translation_key == "path_not_allowed"
        assert "allowlist_external_dirs" in str(caught.value)
    assert not (tmp_path / "elsewhere").exists()
    assert not (tmp_path / "inside").exists()
    with pytest.raises(ServiceValidationError) as caught:
        await _save(
            hass,
            config_entry_id=entry.entry_id,
            uid="not-a-uid",
            directory=str(media_dir),
        )
    assert caught.value.translation_key == "invalid_uid"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_pop3_save_while_the_message_is_on_the_server(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    media_dir: Path,
) -> None:
    entry, events = await _setup(
        hass, entry_factory(mail_user, protocol="pop3", options={"poll_interval": 30})
    )
    await hass.async_add_executor_job(
        dovecot.deliver, mail_user, hostile_mail("Par POP3")
    )
    await entry.runtime_data.coordinator._async_scheduled_poll()
    await wait_for(hass, lambda: len(events) == 1)
    uidl = events[0].data["uid"]
    response = await _save(
        hass,
        config_entry_id=entry.entry_id,
        uid=uidl,
        directory=str(media_dir),
        types=["application/pdf", "image/*"],
        max_size_mb=0.2,
    )
    assert sorted(Path(s["saved_path"]).name for s in response["saved"]) == sorted(
        [SAFE_PDF, SAFE_JPEG]
    )
    assert (media_dir / SAFE_PDF).read_bytes() == PDF
    assert (media_dir / SAFE_JPEG).read_bytes() == JPEG
    assert _reasons(response) == {
        "broken.pdf": "undecodable",
        "big.pdf": "too_large",
        "notes.csv": "type_not_selected",
    }
    # A UIDL no longer (or never) on the server: a clear error.
    with pytest.raises(Exception) as caught:  # noqa: PT011
        await _save(
            hass, config_entry_id=entry.entry_id, uid="gone", directory=str(media_dir)
        )
    assert getattr(caught.value, "translation_key", None) == "action_failed"
    assert "gone" in str(caught.value)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_auto_save_puts_files_there_and_the_event_says_where(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    media_dir: Path,
) -> None:
    options = {
        "attachments": {
            "enabled": True,
            "types": ["application/pdf"],
            "max_size_mb": 0.2,
            "directory": str(media_dir / "courrier"),
        }
    }
    entry, events = await _setup(hass, entry_factory(mail_user, options=options))
    event = await _deliver_and_wait(
        hass, dovecot, mail_user, events, hostile_mail("Auto")
    )
    by_name = {a["filename"]: a for a in event["attachments"]}
    saved = media_dir / "courrier" / SAFE_PDF
    assert by_name["../../etc/passwd.pdf"]["saved_path"] == str(saved)
    assert saved.read_bytes() == PDF
    # Not wanted (type), too large, undecodable: listed, not saved.
    for name in ("big.pdf", "broken.pdf", "notes.csv", "CON.résumé\u202egpj.jpg"):
        assert by_name[name]["saved_path"] is None, name
    # The event entity shows the same.
    state = next(s for s in hass.states.async_all("event") if s.attributes.get("uid"))
    assert [a["saved_path"] for a in state.attributes["attachments"]] == [
        a["saved_path"] for a in event["attachments"]
    ]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_auto_save_failure_still_fires_the_event(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    media_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = {
        "attachments": {"enabled": True, "directory": str(tmp_path / "not-allowed")}
    }
    entry, events = await _setup(hass, entry_factory(mail_user, options=options))
    first = await _deliver_and_wait(
        hass, dovecot, mail_user, events, hostile_mail("Refusé")
    )
    assert all(a["saved_path"] is None for a in first["attachments"])
    assert "not saved" in caplog.text
    # The account goes on: the next mail fires its event too.
    second = await _deliver_and_wait(
        hass, dovecot, mail_user, events, hostile_mail("Suivant")
    )
    assert second["subject"] == "Suivant"
    assert entry.runtime_data.coordinator.connected
    assert not (tmp_path / "not-allowed").exists()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_auto_save_is_a_block_of_the_options(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    media_dir: Path,
    tmp_path: Path,
) -> None:
    entry, events = await _setup(hass, entry_factory(mail_user, smtp_security=None))
    result = await hass.config_entries.options.async_init(entry.entry_id)
    fields = {str(k): v for k, v in result["data_schema"].schema.items()}
    block = fields["attachments"]
    assert block.options["collapsed"] is True  # off by default
    assert block({}) == {
        "enabled": False,
        "types": [],
        "max_size_mb": 20.0,
        "directory": "/media/mail_relay",
    }
    chosen = {
        "enabled": True,
        "types": ["application/pdf"],
        "max_size_mb": 5,
        "directory": str(tmp_path / "outside"),
    }
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"folders": ["INBOX"], "attachments": chosen}
    )
    assert result["errors"] == {"base": "directory_not_allowed"}
    chosen["directory"] = str(media_dir / "pdf")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"folders": ["INBOX"], "attachments": chosen}
    )
    assert result["type"] == "create_entry"
    await hass.async_block_till_done()
    rules = entry.runtime_data.options.attachments
    assert (rules.enabled, rules.types, rules.max_size, rules.directory) == (
        True,
        ("application/pdf",),
        5 * 2**20,
        str(media_dir / "pdf"),
    )
    # The reloaded account saves the next mail's PDF there.
    event = await _deliver_and_wait(
        hass, dovecot, mail_user, events, hostile_mail("Après réglage")
    )
    saved = {Path(a["saved_path"]) for a in event["attachments"] if a["saved_path"]}
    # Under the new 5 MB cap, big.pdf is saved too.
    assert saved == {media_dir / "pdf" / SAFE_PDF, media_dir / "pdf" / "big.pdf"}
    assert (media_dir / "pdf" / "big.pdf").read_bytes() == BIG
    assert await hass.config_entries.async_unload(entry.entry_id)


def test_saved_paths_keep_the_event_under_home_assistants_limit() -> None:
    """Fifty attachments saved under long paths: the event still fits in 32 KB."""
    from custom_components.mail_relay import saving
    from custom_components.mail_relay.mail.attachments import SaveOutcome
    from custom_components.mail_relay.mail.bounds import MAX_EVENT_BYTES
    from custom_components.mail_relay.mail.message import attachment_info
    from tests.reliability.corpus import read_as_pop3
    from tests.reliability.test_hostile_mail import event_size

    event = read_as_pop3(hostile_mail("Beaucoup"), text_limit=2048)
    event.attachments = [
        attachment_info(f"{'n' * 200}{i}.pdf", "application/pdf", 1) for i in range(50)
    ]
    outcomes = [
        SaveOutcome(replace(a, saved_path=f"/media/{'d' * 250}/{a.filename}"))
        for a in event.attachments
    ]
    fitted = saving._with_saved_paths(event, outcomes)
    assert event_size(fitted) < MAX_EVENT_BYTES
    assert fitted.attachments[0].saved_path == outcomes[0].attachment.saved_path


async def test_pop3_auto_save_within_the_poll_even_past_top(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    media_dir: Path,
) -> None:
    """POP3: the message is read whole in the poll; a PDF past TOP's lines is saved.

    With "delete after download" the mail is gone after the poll, and the
    file stays.
    """
    options = {
        "poll_interval": 30,
        "retention": "delete",
        "attachments": {"enabled": True, "types": ["application/pdf"]},
    }
    options["attachments"]["directory"] = str(media_dir / "pop3")
    entry, events = await _setup(
        hass, entry_factory(mail_user, protocol="pop3", options=options)
    )
    long_text = "\r\n".join(f"ligne {n} du relevé" for n in range(5000))
    late_pdf = hostile_mail("Long").replace(b"Voici la facture.", long_text.encode(), 1)
    await hass.async_add_executor_job(dovecot.deliver, mail_user, late_pdf)
    await entry.runtime_data.coordinator._async_scheduled_poll()
    await wait_for(hass, lambda: len(events) == 1)
    by_name = {a["filename"]: a for a in events[0].data["attachments"]}
    assert by_name["../../etc/passwd.pdf"]["saved_path"] == str(
        media_dir / "pop3" / SAFE_PDF
    )
    assert (media_dir / "pop3" / SAFE_PDF).read_bytes() == PDF
    assert (media_dir / "pop3" / "big.pdf").read_bytes() == BIG
    assert by_name["notes.csv"]["saved_path"] is None
    # Deleted from the server by the same poll: the files were saved before.
    assert entry.runtime_data.coordinator.unread == 0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_save_that_hangs_delays_the_event_only_up_to_the_bound(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    media_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The save's own connection never gets a greeting: the event fires at the bound."""
    from custom_components.mail_relay import saving

    monkeypatch.setattr(saving, "AUTO_SAVE_DEADLINE", 2.0)
    async with FaultyProxy(dovecot.host, dovecot.imap_port) as proxy:
        base = entry_factory(
            mail_user,
            security="none",
            smtp_security=None,
            options={"attachments": {"enabled": True, "directory": str(media_dir)}},
        )
        entry, events = await _setup(
            hass,
            MockConfigEntry(
                domain=DOMAIN,
                title=base.title,
                data={**base.data, CONF_INCOMING_PORT: proxy.port},
                options=base.options,
                unique_id=base.unique_id,
            ),
        )
        # The watcher is connected; any new connection's greeting is swallowed.
        proxy.rewrite = lambda data: b"" if data.startswith(b"* OK") else data
        start = time.monotonic()
        event = await _deliver_and_wait(
            hass, dovecot, mail_user, events, hostile_mail("Lent")
        )
        assert time.monotonic() - start < 10
        assert all(a["saved_path"] is None for a in event["attachments"])
        assert "TimeoutError" in caplog.text
        assert list(media_dir.iterdir()) == []
        proxy.rewrite = None
        # The account goes on, and saves again once the server answers.
        second = await _deliver_and_wait(
            hass, dovecot, mail_user, events, hostile_mail("Rapide")
        )
        assert any(a["saved_path"] for a in second["attachments"])
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_pop3_whole_read_given_up_keeps_the_session_sane(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    media_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Auto-save gives up reading a large POP3 mail: its event fires, exactly once.

    The session the reading thread was using is closed, not shared: the poll
    fails at its next command, and the next poll goes on from there.
    """
    from custom_components.mail_relay import saving

    options = {
        "poll_interval": 30,
        "attachments": {"enabled": True, "directory": str(media_dir)},
    }
    entry, events = await _setup(
        hass, entry_factory(mail_user, protocol="pop3", options=options)
    )
    coordinator = entry.runtime_data.coordinator
    # A server slow to start its answer: the read (in its thread) cannot end
    # before the deadline, wherever the load puts the folder check before it.
    read_whole = Pop3Poller._read_whole

    def slow_read(client: Any, number: int, limit: int) -> bytes | None:
        time.sleep(2.5)
        return read_whole(client, number, limit)

    monkeypatch.setattr(Pop3Poller, "_read_whole", staticmethod(slow_read))
    monkeypatch.setattr(saving, "AUTO_SAVE_DEADLINE", 2.0)
    large = hostile_mail("Trop long").replace(
        b"Voici la facture.", b"\r\n".join([b"x" * 76] * 100_000), 1
    )
    await hass.async_add_executor_job(dovecot.deliver, mail_user, large)
    await coordinator._async_scheduled_poll()
    await wait_for(hass, lambda: len(events) == 1)
    assert all(a["saved_path"] is None for a in events[0].data["attachments"])
    assert list(media_dir.iterdir()) == []
    # The session the reading thread held was closed, so the poll failed.
    await wait_for(hass, lambda: "connection to 127.0.0.1 lost" in caplog.text)

    monkeypatch.setattr(saving, "AUTO_SAVE_DEADLINE", 60.0)
    monkeypatch.setattr(Pop3Poller, "_read_whole", staticmethod(read_whole))
    await hass.async_add_executor_job(
        dovecot.deliver, mail_user, hostile_mail("Normal")
    )
    # The failed poll's retry (about a second later, the backoff) finds it.
    await wait_for(hass, lambda: len(events) == 2, timeout=15)
    assert [e.data["subject"] for e in events] == ["Trop long", "Normal"]
    assert any(a["saved_path"] for a in events[1].data["attachments"])
    assert coordinator.connected
    assert await hass.config_entries.async_unload(entry.entry_id)
