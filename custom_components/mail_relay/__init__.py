"""Mail Relay: IMAP/POP3 mailboxes as automation events, SMTP as notifications."""

from __future__ import annotations

import voluptuous as vol
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .compat import async_reload_on_options_change
from .const import (
    CONF_EMAIL,
    CONF_ISPDB_URL,
    CONF_OAUTH_PROVIDERS,
    CONF_PROTOCOL,
    DATA_DECLARED,
    DATA_ISPDB_URL,
    DOMAIN,
)
from .coordinator import create_coordinator
from .data import MailRelayConfigEntry, MailRelayData
from .health import forget_health
from .mail.models import Protocol
from .mail.smtp import SmtpSender
from .oauth import (
    DECLARED_SCHEMA,
    async_entry_implementation,
    async_register_declared,
    is_oauth_entry,
)
from .saving import async_setup_save_action
from .services import async_setup_services
from .settings import account_name, incoming_settings, smtp_settings
from .token_source import EntryTokenSource

# notify.py adds no entity for an account without SMTP.
PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.EVENT,
    Platform.NOTIFY,
    Platform.SENSOR,
]

# Accounts come from the UI; YAML only holds installation-wide settings.
CONFIG_SCHEMA = vol.Schema(
    {
        vol.Optional(DOMAIN): vol.Any(
            None,
            vol.Schema(
                {
                    vol.Optional(CONF_ISPDB_URL): cv.url,
                    vol.Optional(CONF_OAUTH_PROVIDERS): [DECLARED_SCHEMA],
                }
            ),
        )
    },
    extra=vol.ALLOW_EXTRA,
)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions once, whatever the number of accounts."""
    conf = config.get(DOMAIN) or {}
    if ispdb_url := conf.get(CONF_ISPDB_URL):
        # Like Thunderbird's mailnews.auto_config_url: an organisation's ISPDB.
        hass.data[DATA_ISPDB_URL] = ispdb_url
    # Self-hosted authorization servers (Keycloak before Dovecot, say).
    hass.data[DATA_DECLARED] = async_register_declared(
        hass, conf.get(CONF_OAUTH_PROVIDERS) or []
    )
    async_setup_services(hass)
    async_setup_save_action(hass)
    return True


async def async_migrate_entry(hass: HomeAssistant, entry: MailRelayConfigEntry) -> bool:
    """1.1 -> 1.2: a title that is the bare address gets the protocol too.

    A title the user chose is kept. Entity ids stay: the entity registry keeps
    those of existing entities, only new accounts' ids contain the protocol.
    """
    if entry.version > 1:
        return False  # written by a newer Mail Relay
    if entry.minor_version < 2:
        email = entry.data[CONF_EMAIL]
        title = entry.title
        if title == email:
            title = account_name(email, Protocol(entry.data[CONF_PROTOCOL]))
        hass.config_entries.async_update_entry(entry, title=title, minor_version=2)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: MailRelayConfigEntry) -> bool:
    """Set up one mail account: connect, then add its entities."""
    token_source = await _async_token_source(hass, entry)
    smtp = smtp_settings(entry.data, token_source)
    coordinator = create_coordinator(
        hass, entry, incoming_settings(entry.data, token_source)
    )
    entry.runtime_data = MailRelayData(
        email=entry.data[CONF_EMAIL],
        protocol=coordinator.protocol,
        incoming=coordinator.incoming,
        smtp=smtp,
        options=coordinator.options,
        coordinator=coordinator,
        sender=SmtpSender(smtp) if smtp is not None else None,
    )
    await coordinator.async_start()
    if (sender := entry.runtime_data.sender) is not None:

        async def _close_sender(_event: Event) -> None:
            await sender.close()

        # Say QUIT on shutdown too, not only on unload.
        entry.async_on_unload(
            hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _close_sender)
        )
    # New options reload the entry: the options flow does it, or before HA 2025.8
    # a listener that ignores the updates reconfigure and reauth reload for.
    async_reload_on_options_change(entry)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def _async_token_source(
    hass: HomeAssistant, entry: MailRelayConfigEntry
) -> EntryTokenSource | None:
    """Return an OAuth2 entry's token source; None for a password entry."""
    if not is_oauth_entry(entry.data):
        return None
    try:
        implementation = await async_entry_implementation(hass, entry)
    except ValueError as err:
        # The application credential or the declared provider is gone: signing
        # in again lets the user add it back.
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="oauth_app_missing"
        ) from err
    return EntryTokenSource(hass, entry, implementation)


async def async_unload_entry(hass: HomeAssistant, entry: MailRelayConfigEntry) -> bool:
    """Unload an account; its connections close and its state is written."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.coordinator.async_stop()
        if (sender := entry.runtime_data.sender) is not None:
            await sender.close()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: MailRelayConfigEntry) -> None:
    """Drop a deleted account's outage clock and repair issue."""
    forget_health(hass, entry.entry_id)
