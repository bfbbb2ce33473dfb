"""The integration sets up from a config entry and unloads cleanly."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.mail_relay.mail.models import Protocol, Security
from tests.mailserver import MailUser


@pytest.mark.usefixtures("trust_test_cert")
async def test_setup_and_unload(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(mail_user)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    data = entry.runtime_data
    assert data.protocol is Protocol.IMAP
    assert data.incoming.security is Security.SSL
    assert data.smtp is not None
    assert data.smtp.security is Security.STARTTLS
    assert "password" not in repr(data.incoming)

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
