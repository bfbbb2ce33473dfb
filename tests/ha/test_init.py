"""The integration sets up from a config entry and unloads cleanly."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.mail_relay.const import DOMAIN
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


@pytest.mark.usefixtures("trust_test_cert")
async def test_existing_accounts_get_the_protocol_in_their_name_not_new_entity_ids(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    # An account added before titles named the protocol (entry version 1.1),
    # whose entities were registered under the bare address.
    entry = entry_factory(mail_user, protocol="pop3", smtp_security=None)
    assert (entry.title, entry.minor_version) == (mail_user.address, 1)
    entry.add_to_hass(hass)
    old_id = (
        er.async_get(hass)
        .async_get_or_create(
            "sensor",
            DOMAIN,
            f"{entry.entry_id}_last_message",
            config_entry=entry,
            suggested_object_id=f"{mail_user.address} last message",
        )
        .entity_id
    )
    renamed = entry_factory(mail_user, smtp_security=None)
    renamed = MockConfigEntry(
        domain=DOMAIN, title="Alarm box", data=renamed.data, unique_id="other"
    )
    renamed.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)  # sets up both
    await hass.async_block_till_done()
    assert renamed.state is ConfigEntryState.LOADED

    assert entry.title == f"{mail_user.address} (POP3)"
    assert renamed.title == "Alarm box"  # the user's own title stays
    assert (entry.minor_version, renamed.minor_version) == (2, 2)
    device = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)[0]
    assert device.name == f"{mail_user.address} (POP3)"
    # Automations keep working: the entity id did not change.
    assert hass.states.get(old_id) is not None
    assert "pop3" not in old_id
    for each in (entry, renamed):
        assert await hass.config_entries.async_unload(each.entry_id)
