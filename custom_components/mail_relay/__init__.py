"""Mail Relay: IMAP/POP3 mailboxes as automation events, SMTP as notifications."""

from __future__ import annotations

from homeassistant.core import HomeAssistant

from .const import CONF_EMAIL, CONF_PROTOCOL
from .data import MailRelayConfigEntry, MailRelayData
from .mail.models import Protocol
from .settings import incoming_settings, smtp_settings

PLATFORMS: list[str] = []


async def async_setup_entry(hass: HomeAssistant, entry: MailRelayConfigEntry) -> bool:
    """Set up one mail account from its config entry."""
    entry.runtime_data = MailRelayData(
        email=entry.data[CONF_EMAIL],
        protocol=Protocol(entry.data[CONF_PROTOCOL]),
        incoming=incoming_settings(entry.data),
        smtp=smtp_settings(entry.data),
    )
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: MailRelayConfigEntry) -> bool:
    """Unload an account; its connections close with it."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
