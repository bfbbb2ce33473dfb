"""POP3 accounts through Home Assistant: polled with HA's scheduler, state in Store."""

from __future__ import annotations

import asyncio
import mimetypes
import os
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.mail_relay.const import (
    CONF_INCOMING_PORT,
    CONF_POLL_INTERVAL,
    CONF_RETENTION,
    DOMAIN,
    EVENT_NEW_MAIL,
)
from custom_components.mail_relay.mail import options as options_module
from tests.ha.helpers import wait_for
from tests.mailserver import DovecotServer, MailUser
from tests.mailserver.dovecot import make_message
from tests.mailserver.proxy import FaultyProxy, Mode

pytestmark = pytest.mark.usefixtures("trust_test_cert")


async def poll(hass: HomeAssistant, seconds: int = 60) -> None:
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    # Scheduled polls run as background tasks.
    await hass.async_block_till_done(wait_background_tasks=True)


@pytest.mark.parametrize("security", ["ssl", "starttls"])
async def test_new_messages_fire_once_each(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    security: str,
) -> None:
    dovecot.deliver(mail_user, make_message("already there"))
    entry = entry_factory(
        mail_user, protocol="pop3", security=security, options={CONF_POLL_INTERVAL: 60}
    )
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert events == []  # old mail is not flooded in at first setup

    await hass.async_add_executor_job(
        dovecot.deliver, mail_user, [make_message(f"m{i}") for i in range(3)]
    )
    await poll(hass)
    await wait_for(hass, lambda: len(events) == 3)
    assert [e.data["subject"] for e in events] == ["m0", "m1", "m2"]
    assert {e.data["protocol"] for e in events} == {"pop3"}
    assert len({e.data["uid"] for e in events}) == 3
    await poll(hass, 120)
    assert len(events) == 3

    registry = er.async_get(hass)
    waiting = registry.async_get_entity_id(
        "sensor", DOMAIN, f"{entry.entry_id}_waiting"
    )
    assert hass.states.get(waiting).state == "4"

    # Restart with the same storage: nothing repeats, new mail still arrives.
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await hass.async_add_executor_job(
        dovecot.deliver, mail_user, make_message("while down")
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: len(events) == 4)
    assert events[-1].data["subject"] == "while down"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_delete_after_download(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(
        mail_user,
        protocol="pop3",
        options={CONF_POLL_INTERVAL: 60, CONF_RETENTION: "delete"},
    )
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_add_executor_job(
        dovecot.deliver, mail_user, [make_message("a"), make_message("b")]
    )
    await poll(hass)
    await wait_for(hass, lambda: len(events) == 2)
    await wait_for(hass, lambda: dovecot.message_count(mail_user) == 0)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_pop3_wrong_password_starts_reauth(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(MailUser(mail_user.address, "bad"), protocol="pop3")
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert [
        f["context"]["source"]
        for f in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    ] == ["reauth"]


async def test_outage_backoff_and_password_change(
    hass: HomeAssistant,
    own_dovecot: DovecotServer,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    user = own_dovecot.add_user()
    entry = entry_factory(
        user,
        protocol="pop3",
        server=own_dovecot,
        smtp_security=None,
        options={CONF_POLL_INTERVAL: 60},
    )
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    registry = er.async_get(hass)
    connection = registry.async_get_entity_id(
        "binary_sensor", DOMAIN, f"{entry.entry_id}_connection"
    )
    waiting = registry.async_get_entity_id(
        "sensor", DOMAIN, f"{entry.entry_id}_waiting"
    )
    assert hass.states.get(connection).state == "on"
    assert hass.states.get(connection).attributes["push_mode"] == "polling"

    await hass.async_add_executor_job(own_dovecot.deliver, user, make_message("before"))
    await hass.async_add_executor_job(own_dovecot.stop)
    await poll(hass)
    assert hass.states.get(connection).state == "off"
    assert hass.states.get(waiting).state == "unavailable"

    # Back up: the retry comes after a short backoff, not a whole interval.
    await hass.async_add_executor_job(own_dovecot.start)
    await poll(hass, 2)
    await wait_for(hass, lambda: hass.states.get(connection).state == "on")
    assert [e.data["subject"] for e in events] == ["before"]

    # The password changes on the server: the next poll asks the user again.
    own_dovecot.set_password(user, "a-new-password")
    await asyncio.sleep(1.1)  # Dovecot checks a passwd-file at most once a second
    await poll(hass, 120)
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == ["reauth"]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_attachment_sizes_are_the_same_over_imap_and_pop3(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    files = {"note.bin": os.urandom(17), "photo.png": os.urandom(70)}
    msg = EmailMessage()
    msg["From"] = "camera@example.org"
    msg["To"] = mail_user.address
    msg["Subject"] = "Deux pièces jointes"
    msg.set_content("Voir les pièces jointes.")
    for name, content in files.items():
        maintype, subtype = mimetypes.guess_type(name)[0].split("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    imap = entry_factory(mail_user, smtp_security=None)
    pop3 = entry_factory(
        mail_user,
        protocol="pop3",
        smtp_security=None,
        options={CONF_POLL_INTERVAL: 60},
    )
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    for entry in (imap, pop3):
        entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(imap.entry_id)  # sets up both
    await hass.async_block_till_done()

    await hass.async_add_executor_job(dovecot.deliver, mail_user, msg.as_bytes())
    # Not poll(): the IMAP watcher is a background task that never ends.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=60))
    await wait_for(hass, lambda: len(events) == 2)
    sizes = {
        e.data["protocol"]: {a["filename"]: a["size"] for a in e.data["attachments"]}
        for e in events
    }
    real = {name: len(content) for name, content in files.items()}
    assert sizes == {"imap": real, "pop3": real}
    for entry in (imap, pop3):
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_slow_server_shows_as_lost_and_is_retried(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server dripping one byte every 0.5 s: the poll ends, the state says so.

    The retry comes with the backoff, and the mail that waited arrives once.
    """
    monkeypatch.setattr(options_module, "POP3_SESSION_DEADLINE", 3.0)
    async with FaultyProxy(dovecot.host, dovecot.pop3_port, drip=0.5) as proxy:
        base = entry_factory(
            mail_user,
            protocol="pop3",
            security="none",
            smtp_security=None,
            options={CONF_POLL_INTERVAL: 60},
        )
        entry = MockConfigEntry(
            domain=DOMAIN,
            title=base.title,
            data={**base.data, CONF_INCOMING_PORT: proxy.port},
            options=base.options,
            unique_id=base.unique_id,
        )
        events = async_capture_events(hass, EVENT_NEW_MAIL)
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        connection = er.async_get(hass).async_get_entity_id(
            "binary_sensor", DOMAIN, f"{entry.entry_id}_connection"
        )
        assert hass.states.get(connection).state == "on"

        await hass.async_add_executor_job(
            dovecot.deliver, mail_user, make_message("during the slow spell")
        )
        proxy.set_mode(Mode.DRIP)
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=60))
        # After firing: that helper runs every timer due by then, a guard too.
        async with asyncio.timeout(60):  # only to catch a hang
            await hass.async_block_till_done(wait_background_tasks=True)
        assert hass.states.get(connection).state == "off"
        coordinator = entry.runtime_data.coordinator
        assert coordinator is not None
        assert "longer than 3 s" in (coordinator.last_error or "")
        assert events == []

        proxy.set_mode(Mode.PASS)
        await poll(hass, 2)  # the backoff's first retry, not the next interval
        await wait_for(hass, lambda: hass.states.get(connection).state == "on")
        await poll(hass, 120)
        assert [e.data["subject"] for e in events] == ["during the slow spell"]
        assert coordinator.last_error is None
        assert await hass.config_entries.async_unload(entry.entry_id)
