"""Diagnostics: settings and live state, with credentials and addresses redacted."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from homeassistant.components.diagnostics import REDACTED, async_redact_data
from homeassistant.const import CONF_PASSWORD
from homeassistant.core import HomeAssistant

from .const import (
    CONF_EMAIL,
    CONF_FILTER_SENDERS,
    CONF_FILTER_SUBJECT,
    CONF_INCOMING_USERNAME,
    CONF_RECIPIENTS,
    CONF_SENDER_NAME,
    CONF_SMTP_USERNAME,
    CONF_TOKEN,
)
from .data import MailRelayConfigEntry

# The OAuth2 token dict (access, refresh and ID tokens) goes as a whole.
TO_REDACT = {
    CONF_PASSWORD,
    CONF_TOKEN,
    CONF_EMAIL,
    CONF_INCOMING_USERNAME,
    CONF_SMTP_USERNAME,
}
# Options that name people: the default recipients and the sender's name.
OPTIONS_TO_REDACT = {
    CONF_RECIPIENTS,
    CONF_SENDER_NAME,
    CONF_FILTER_SENDERS,
    CONF_FILTER_SUBJECT,
}
# An address inside free text (a server's error message, say).
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"'@]+@[^\s<>()\[\],;:\"'@]+")
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
        "last_error": _without_addresses(coordinator.last_error),
        "folder": coordinator.folder,
        "folders": list(coordinator.folders),
        "other_folders_by_notify": coordinator.notify,
        "last_event": async_redact_data(coordinator.last_event or {}, EVENT_TO_REDACT),
        "last_check": _iso(coordinator.last_check),
        "down_since": _iso(coordinator.health.down_since),
        "repair_issue": coordinator.health.raised,
    }
    return {
        "entry": {
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": async_redact_data(dict(entry.options), OPTIONS_TO_REDACT),
        },
        "state": state,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _without_addresses(text: str | None) -> str | None:
    return None if text is None else _ADDRESS.sub(REDACTED, text)
