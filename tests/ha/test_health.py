"""Health: the last check sensor moves on every check; a long outage raises a repair.

Time jumps with Home Assistant's ``async_fire_time_changed`` (the IDLE
renewal, the NOOP interval, the POP3 interval, the 30 minutes), while the
servers and the outage are real: Dovecot is stopped and started again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from homeassistant.config_entries import ConfigEntryDisabler, ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.mail_relay.const import CONF_POLL_INTERVAL, CONF_PUSH, DOMAIN
from custom_components.mail_relay.diagnostics import async_get_config_entry_diagnostics
from tests.ha.helpers import wait_for
from tests.ha.test_imap_account import entity_id, setup
from tests.mailserver import DovecotServer, MailUser
from tests.mailserver.dovecot import make_message

pytestmark = pytest.mark.usefixtures("trust_test_cert")

THIRTY_MINUTES = 1800


def later(hass: HomeAssistant, seconds: float) -> None:
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))


async def next_second() -> None:
    """Let the clock pass a second: the sensor's state shows whole seconds."""
    await asyncio.sleep(1.02 - time.time() % 1)


def last_check(hass: HomeAssistant, sensor: str) -> datetime | None:
    state = hass.states.get(sensor)
    assert state is not None
    if state.state == STATE_UNKNOWN:
        return None
    return dt_util.parse_datetime(state.state)


async def moved(hass: HomeAssistant, sensor: str, since: datetime | None) -> datetime:
    """Wait until the sensor shows a later check than ``since``; return it."""

    def later_check() -> bool:
        now = last_check(hass, sensor)
        return now is not None and (since is None or now > since)

    await wait_for(hass, later_check, timeout=15)
    shown = last_check(hass, sensor)
    assert shown is not None
    return shown


def issue(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(
        DOMAIN, f"cannot_connect_{entry.entry_id}"
    )


async def test_imap_last_check_moves_on_idle_answer_renewal_and_noop(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(mail_user, smtp_security=None)
    await setup(hass, entry)
    sensor = entity_id(hass, entry, "sensor", "last_check")
    assert hass.states.get(sensor).attributes["device_class"] == "timestamp"
    first = await moved(hass, sensor, None)  # the login and first sync

    # An IDLE answer: new mail.
    await next_second()
    await hass.async_add_executor_job(dovecot.deliver, mail_user, make_message("a"))
    answered = await moved(hass, sensor, first)
    # An IDLE renewal a minute later, with no mail.
    await next_second()
    later(hass, 61)
    await moved(hass, sensor, answered)
    assert await hass.config_entries.async_unload(entry.entry_id)

    # Without push: each NOOP round.
    polling = entry_factory(
        mail_user,
        smtp_security=None,
        options={CONF_PUSH: False, CONF_POLL_INTERVAL: 30},
    )
    await setup(hass, polling)
    sensor = entity_id(hass, polling, "sensor", "last_check")
    first = await moved(hass, sensor, None)
    await next_second()
    later(hass, 31)
    second = await moved(hass, sensor, first)
    await next_second()
    later(hass, 31)
    await moved(hass, sensor, second)
    assert await hass.config_entries.async_unload(polling.entry_id)


async def test_pop3_last_check_moves_on_every_poll(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(
        mail_user, protocol="pop3", smtp_security=None, options={CONF_POLL_INTERVAL: 60}
    )
    await setup(hass, entry)
    sensor = entity_id(hass, entry, "sensor", "last_check")
    checked = await moved(hass, sensor, None)
    for _ in range(2):
        await next_second()
        later(hass, 61)
        checked = await moved(hass, sensor, checked)
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
async def test_a_long_outage_raises_a_repair_issue_cleared_on_recovery(
    hass: HomeAssistant,
    own_dovecot: DovecotServer,
    entry_factory: Callable[..., MockConfigEntry],
    protocol: str,
) -> None:
    user = own_dovecot.add_user()
    entry = entry_factory(
        user,
        protocol=protocol,
        server=own_dovecot,
        smtp_security=None,
        options={CONF_POLL_INTERVAL: 60},
    )
    await setup(hass, entry)
    connection = entity_id(hass, entry, "binary_sensor", "connection")
    sensor = entity_id(hass, entry, "sensor", "last_check")
    before = await moved(hass, sensor, None)

    await hass.async_add_executor_job(own_dovecot.stop)
    if protocol == "pop3":
        later(hass, 61)  # the next poll finds the server gone
    await wait_for(hass, lambda: hass.states.get(connection).state == STATE_OFF)
    # The sensor stays available in the outage and keeps the last good check.
    assert last_check(hass, sensor) == before

    # Well within the threshold: no issue yet (failed retries meanwhile).
    later(hass, THIRTY_MINUTES - 300)
    await hass.async_block_till_done()
    assert issue(hass, entry) is None
    later(hass, THIRTY_MINUTES + 1)
    await hass.async_block_till_done()
    raised = issue(hass, entry)
    assert raised is not None
    assert raised.severity is ir.IssueSeverity.ERROR
    assert raised.translation_key == "cannot_connect"
    assert raised.translation_placeholders["account"] == user.address
    assert raised.translation_placeholders["minutes"] == "30"
    assert hass.states.get(connection).state == STATE_OFF
    assert last_check(hass, sensor) == before
    diag = (await async_get_config_entry_diagnostics(hass, entry))["state"]
    assert diag["repair_issue"] is True
    assert diag["down_since"] is not None
    assert diag["last_check"].startswith(before.isoformat()[:19])

    await next_second()
    await hass.async_add_executor_job(own_dovecot.start)
    later(hass, 301)  # the longest backoff between reconnections
    await wait_for(hass, lambda: hass.states.get(connection).state == STATE_ON, 15)
    assert issue(hass, entry) is None
    await moved(hass, sensor, before)
    diag = (await async_get_config_entry_diagnostics(hass, entry))["state"]
    assert (diag["repair_issue"], diag["down_since"]) == (False, None)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_issue_outlives_a_reload_during_the_outage(
    hass: HomeAssistant,
    own_dovecot: DovecotServer,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    user = own_dovecot.add_user()
    entry = entry_factory(user, server=own_dovecot, smtp_security=None)
    await setup(hass, entry)
    connection = entity_id(hass, entry, "binary_sensor", "connection")
    await hass.async_add_executor_job(own_dovecot.stop)
    await wait_for(hass, lambda: hass.states.get(connection).state == STATE_OFF)
    later(hass, THIRTY_MINUTES + 1)
    await hass.async_block_till_done()
    assert issue(hass, entry) is not None

    # Reloaded while the server is still down: the setup is retried, and the
    # issue stays, as the outage goes on.
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert issue(hass, entry) is not None

    await hass.async_add_executor_job(own_dovecot.start)
    later(hass, 301)  # Home Assistant's setup retry
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED, 15)
    await wait_for(hass, lambda: issue(hass, entry) is None)

    # Disabling the account clears an issue it had.
    await hass.async_add_executor_job(own_dovecot.stop)
    await wait_for(hass, lambda: hass.states.get(connection).state == STATE_OFF)
    later(hass, THIRTY_MINUTES + 1)
    await hass.async_block_till_done()
    assert issue(hass, entry) is not None
    await hass.config_entries.async_set_disabled_by(
        entry.entry_id, ConfigEntryDisabler.USER
    )
    await hass.async_block_till_done()
    assert issue(hass, entry) is None


async def test_a_server_down_since_start_raises_the_issue_too(
    hass: HomeAssistant,
    own_dovecot: DovecotServer,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    user = own_dovecot.add_user()
    entry = entry_factory(user, server=own_dovecot, smtp_security=None)
    await hass.async_add_executor_job(own_dovecot.stop)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    later(hass, THIRTY_MINUTES - 300)  # Home Assistant retries meanwhile
    await hass.async_block_till_done()
    assert issue(hass, entry) is None
    later(hass, THIRTY_MINUTES + 1)
    await hass.async_block_till_done()
    assert issue(hass, entry) is not None

    await hass.async_add_executor_job(own_dovecot.start)
    later(hass, THIRTY_MINUTES + 600)  # the next setup retry
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED, 15)
    assert issue(hass, entry) is None
    assert await hass.config_entries.async_unload(entry.entry_id)
