"""IMAP accounts through Home Assistant: events, entities, restarts and outages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    mock_restore_cache,
)

from custom_components.mail_relay.const import (
    CONF_FILTER_SENDERS,
    CONF_FILTER_SUBJECT,
    CONF_RECIPIENTS,
    CONF_SENDER_NAME,
    DOMAIN,
    EVENT_NEW_MAIL,
)
from custom_components.mail_relay.diagnostics import async_get_config_entry_diagnostics
from tests.ha.helpers import wait_for
from tests.mailserver import DovecotServer, MailUser
from tests.mailserver.dovecot import make_message

pytestmark = pytest.mark.usefixtures("trust_test_cert")


def entity_id(
    hass: HomeAssistant, entry: MockConfigEntry, platform: str, key: str
) -> str:
    registry = er.async_get(hass)
    found = registry.async_get_entity_id(platform, DOMAIN, f"{entry.entry_id}_{key}")
    assert found is not None
    return found


async def setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


@pytest.mark.parametrize("security", ["ssl", "starttls", "none"])
async def test_one_message_one_event(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    security: str,
) -> None:
    dovecot.deliver(
        mail_user, make_message("old mail")
    )  # present before setup: no event
    entry = entry_factory(mail_user, security=security)
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    await setup(hass, entry)
    unread = entity_id(hass, entry, "sensor", "unread")
    # The first count comes from the watcher right after its login.
    await wait_for(hass, lambda: hass.states.get(unread).state == "1")

    raw = make_message(
        "Bonjour la maison",
        body="La porte est ouverte.",
        sender="Alarme <alarm@example.org>",
        to=mail_user.address,
    )
    await hass.async_add_executor_job(dovecot.deliver, mail_user, raw)
    await wait_for(hass, lambda: len(events) == 1)
    await wait_for(hass, lambda: hass.states.get(unread).state == "2")
    data = events[0].data
    assert data["entry_id"] == entry.entry_id
    assert data["account"] == mail_user.address
    assert data["protocol"] == "imap"
    assert data["folder"] == "INBOX"
    assert data["uid"] == "2"
    assert isinstance(data["uidvalidity"], int)
    assert data["subject"] == "Bonjour la maison"
    assert data["sender"] == "alarm@example.org"
    assert data["sender_name"] == "Alarme"
    assert data["text"] == "La porte est ouverte."
    assert data["sender_verified"] is False

    event_state = hass.states.get(entity_id(hass, entry, "event", "mail"))
    assert event_state.attributes["event_type"] == "received"
    assert event_state.attributes["subject"] == "Bonjour la maison"
    last = hass.states.get(entity_id(hass, entry, "sensor", "last_message"))
    assert last.state == "Bonjour la maison"
    assert last.attributes["sender"] == "alarm@example.org"
    connection = hass.states.get(entity_id(hass, entry, "binary_sensor", "connection"))
    assert connection.state == STATE_ON
    assert connection.attributes["push_mode"] == "idle"  # Dovecot offers IDLE

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_burst_of_200_gives_200_events(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(mail_user)
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    await setup(hass, entry)
    messages = [make_message(f"burst {i}") for i in range(200)]
    await hass.async_add_executor_job(dovecot.deliver, mail_user, messages)
    delivered = time.monotonic()
    done = await wait_for(hass, lambda: len(events) >= 200, timeout=20)
    uids = [e.data["uid"] for e in events]
    assert len(uids) == 200
    assert len(set(uids)) == 200
    assert sorted(e.data["subject"] for e in events) == sorted(
        f"burst {i}" for i in range(200)
    )
    assert done - delivered < 5.0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_restart_neither_repeats_nor_loses(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(mail_user)
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    await setup(hass, entry)
    await hass.async_add_executor_job(dovecot.deliver, mail_user, make_message("first"))
    await wait_for(hass, lambda: len(events) == 1)

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await hass.async_add_executor_job(
        dovecot.deliver,
        mail_user,
        [make_message("while down 1"), make_message("while down 2")],
    )

    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: len(events) == 3)
    await hass.async_add_executor_job(dovecot.deliver, mail_user, make_message("after"))
    await wait_for(hass, lambda: len(events) == 4)
    assert [e.data["subject"] for e in events] == [
        "first",
        "while down 1",
        "while down 2",
        "after",
    ]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_last_message_survives_a_reload(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(mail_user, smtp_security=None)
    await setup(hass, entry)
    last = entity_id(hass, entry, "sensor", "last_message")
    raw = make_message("Colis livré", sender="Poste <colis@example.org>")
    await hass.async_add_executor_job(dovecot.deliver, mail_user, raw)
    await wait_for(hass, lambda: hass.states.get(last).state == "Colis livré")
    before = hass.states.get(last).attributes

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(hass, lambda: hass.states.get(last).state != STATE_UNAVAILABLE)
    state = hass.states.get(last)
    assert state.state == "Colis livré"
    assert state.attributes["sender"] == "colis@example.org"
    assert state.attributes["uid"] == before["uid"] == "1"
    assert state.attributes["date"] == before["date"] is not None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_last_message_survives_a_restart(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(mail_user, smtp_security=None)
    entry.add_to_hass(hass)
    # The state Home Assistant wrote when it stopped.
    last = (
        er.async_get(hass)
        .async_get_or_create(
            "sensor", DOMAIN, f"{entry.entry_id}_last_message", config_entry=entry
        )
        .entity_id
    )
    attributes = {
        "sender": "colis@example.org",
        "sender_name": "Poste",
        "date": "2026-11-20T08:00:00+01:00",
        "folder": "INBOX",
        "uid": "7",
        "message_id": "<1@example.org>",
    }
    mock_restore_cache(hass, [State(last, "Colis livré", attributes)])
    await setup(hass, entry)
    await wait_for(hass, lambda: hass.states.get(last).state != STATE_UNAVAILABLE)
    state = hass.states.get(last)
    assert state.state == "Colis livré"
    assert {key: state.attributes.get(key) for key in attributes} == attributes

    # New mail replaces what was restored.
    raw = make_message("Nouveau", sender="ami@example.org")
    await hass.async_add_executor_job(dovecot.deliver, mail_user, raw)
    await wait_for(hass, lambda: hass.states.get(last).state == "Nouveau")
    assert hass.states.get(last).attributes["sender"] == "ami@example.org"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_outage_unavailable_then_back_without_loss(
    hass: HomeAssistant,
    own_dovecot: DovecotServer,
    entry_factory: Callable[..., MockConfigEntry],
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = own_dovecot.add_user()
    entry = entry_factory(user, server=own_dovecot, smtp_security=None)
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    await setup(hass, entry)
    connection = entity_id(hass, entry, "binary_sensor", "connection")
    unread = entity_id(hass, entry, "sensor", "unread")

    await hass.async_add_executor_job(
        own_dovecot.deliver, user, make_message("before outage")
    )
    await hass.async_add_executor_job(own_dovecot.stop)
    await wait_for(hass, lambda: hass.states.get(connection).state == STATE_OFF)
    assert hass.states.get(unread).state == STATE_UNAVAILABLE

    await hass.async_add_executor_job(own_dovecot.start)
    await hass.async_add_executor_job(
        own_dovecot.deliver, user, make_message("after outage")
    )
    await wait_for(
        hass, lambda: hass.states.get(connection).state == STATE_ON, timeout=15
    )
    await wait_for(hass, lambda: len(events) >= 2, timeout=15)
    assert sorted(e.data["subject"] for e in events) == [
        "after outage",
        "before outage",
    ]
    # Logged once each at info level or above, by whichever module.
    ours = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert sum("connection to 127.0.0.1 lost" in m for m in ours) == 1
    assert sum("is back" in m for m in ours) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_wrong_password_starts_reauth(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(MailUser(mail_user.address, "wrong-password"))
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == ["reauth"]


async def test_server_down_at_start_retries(
    hass: HomeAssistant,
    own_dovecot: DovecotServer,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    user = own_dovecot.add_user()
    entry = entry_factory(user, server=own_dovecot)
    own_dovecot.stop()
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_diagnostics_redact_secrets(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(
        mail_user,
        options={
            CONF_RECIPIENTS: ["alice@example.org", "bob@example.net"],
            CONF_SENDER_NAME: "Maison Dupont",
            CONF_FILTER_SENDERS: ["notaire@etude-durand.fr"],
            CONF_FILTER_SUBJECT: "Succession Dupont",
        },
    )
    await setup(hass, entry)
    coordinator = entry.runtime_data.coordinator
    assert coordinator is not None
    coordinator.last_error = "login of carol@example.com refused"
    diag = await async_get_config_entry_diagnostics(hass, entry)
    text = str(diag)
    assert mail_user.password not in text
    assert mail_user.address not in text
    for name in ("alice@example.org", "bob@example.net", "Maison", "carol@"):
        assert name not in text
    assert "durand" not in text  # the filter says whom the user waits mail from
    assert "Succession" not in text
    assert diag["state"]["folders"] == ["INBOX"]
    assert diag["entry"]["options"][CONF_RECIPIENTS] == "**REDACTED**"
    assert diag["state"]["last_error"] == "login of **REDACTED** refused"
    assert diag["state"]["connected"] is True
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_connection_attributes_say_polling_when_push_is_off(
    hass: HomeAssistant, entry_factory, mail_user: MailUser
) -> None:
    entry = entry_factory(mail_user, options={"push": False})
    await setup(hass, entry)
    connection = entity_id(hass, entry, "binary_sensor", "connection")
    await wait_for(hass, lambda: hass.states.get(connection).state == STATE_ON)
    assert hass.states.get(connection).attributes["push_mode"] == "polling"
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
