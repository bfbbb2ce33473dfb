"""Mail Relay: IMAP/POP3 mailboxes as automation events, SMTP as notifications."""

from __future__ import annotations

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .const import CONF_EMAIL, CONF_PROTOCOL, DOMAIN
from .coordinator import MailRelayCoordinator
from .data import MailRelayConfigEntry, MailRelayData
from .mail.models import Protocol
from .mail.smtp import SmtpSender
from .services import async_setup_services
from .settings import incoming_settings, smtp_settings

# notify.py adds no entity for an account without SMTP.
PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.EVENT,
    Platform.NOTIFY,
    Platform.SENSOR,
]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions once, whatever the number of accounts."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: MailRelayConfigEntry) -> bool:
    """Set up one mail account: connect, then add its entities."""
    protocol = Protocol(entry.data[CONF_PROTOCOL])
    incoming = incoming_settings(entry.data)
    smtp = smtp_settings(entry.data)
    coordinator = MailRelayCoordinator(hass, entry, protocol, incoming)
    entry.runtime_data = MailRelayData(
        email=entry.data[CONF_EMAIL],
        protocol=protocol,
        incoming=incoming,
        smtp=smtp,
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
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: MailRelayConfigEntry) -> bool:
    """Unload an account; its connections close and its state is written."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        if entry.runtime_data.coordinator is not None:
            await entry.runtime_data.coordinator.async_stop()
        if (sender := entry.runtime_data.sender) is not None:
            await sender.close()
    return unloaded


async def _async_options_updated(
    hass: HomeAssistant, entry: MailRelayConfigEntry
) -> None:
    """Apply new options by reloading the entry."""
    await hass.config_entries.async_reload(entry.entry_id)
