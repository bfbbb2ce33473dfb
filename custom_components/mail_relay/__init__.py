"""Mail Relay: IMAP/POP3 mailboxes as automation events, SMTP as notifications."""

from __future__ import annotations

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .const import CONF_EMAIL, CONF_PROTOCOL, DOMAIN
from .data import MailRelayConfigEntry, MailRelayData
from .mail.models import Protocol
from .mail.smtp import SmtpSender
from .services import async_setup_services
from .settings import incoming_settings, smtp_settings

# notify.py adds no entity for an account without SMTP.
PLATFORMS: list[Platform] = [Platform.NOTIFY]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions once, whether or not an account is loaded."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: MailRelayConfigEntry) -> bool:
    """Set up one mail account from its config entry."""
    smtp = smtp_settings(entry.data)
    entry.runtime_data = MailRelayData(
        email=entry.data[CONF_EMAIL],
        protocol=Protocol(entry.data[CONF_PROTOCOL]),
        incoming=incoming_settings(entry.data),
        smtp=smtp,
        sender=SmtpSender(smtp) if smtp is not None else None,
    )
    if (sender := entry.runtime_data.sender) is not None:

        async def _close_sender(_event: Event) -> None:
            await sender.close()

        # Say QUIT on shutdown too, not only on unload.
        entry.async_on_unload(
            hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _close_sender)
        )
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: MailRelayConfigEntry) -> bool:
    """Unload an account; its connections close with it."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded and (sender := entry.runtime_data.sender) is not None:
        await sender.close()
    return unloaded
