"""Diagnostics: settings and live state, with credentials redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_PASSWORD
from homeassistant.core import HomeAssistant

from .const import CONF_EMAIL, CONF_INCOMING_USERNAME, CONF_SMTP_USERNAME
from .data import MailRelayConfigEntry

TO_REDACT = {CONF_PASSWORD, CONF_EMAIL, CONF_INCOMING_USERNAME, CONF_SMTP_USERNAME}
EVENT_TO_REDACT = {
    "account",
    "sender",
    "sender_name",
    "to",
    "cc",
    "reply_to",
    "subject",
    "text",
    "headers",
    "message_id",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: MailRelayConfigEntry
) -> dict[str, Any]:
    """Return what helps debug a connection, never a secret or mail content."""
    coordinator = entry.runtime_data.coordinator
    state: dict[str, Any] = {
        "connected": coordinator.connected,
        "unread": coordinator.unread,
        "last_error": coordinator.last_error,
        "folder": coordinator.folder,
        "last_event": async_redact_data(coordinator.last_event or {}, EVENT_TO_REDACT),
    }
    return {
        "entry": {
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": dict(entry.options),
        },
        "state": state,
    }
