"""Turn a config entry's data into the mail core's typed settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.const import CONF_PASSWORD

from .const import (
    CONF_INCOMING_HOST,
    CONF_INCOMING_PORT,
    CONF_INCOMING_SECURITY,
    CONF_INCOMING_USERNAME,
    CONF_SMTP_HOST,
    CONF_SMTP_PORT,
    CONF_SMTP_SECURITY,
    CONF_SMTP_USERNAME,
    CONF_VERIFY_SSL,
)
from .mail.models import DEFAULT_PORTS, Protocol, Security, ServerSettings


def incoming_settings(data: Mapping[str, Any]) -> ServerSettings:
    """Return the IMAP/POP3 server settings of an entry."""
    return ServerSettings(
        host=data[CONF_INCOMING_HOST],
        port=int(data[CONF_INCOMING_PORT]),
        security=Security(data[CONF_INCOMING_SECURITY]),
        username=data[CONF_INCOMING_USERNAME],
        password=data[CONF_PASSWORD],
        verify_tls=data.get(CONF_VERIFY_SSL, True),
    )


def smtp_settings(data: Mapping[str, Any]) -> ServerSettings | None:
    """Return the SMTP settings of an entry, or None when it sends no mail."""
    if not data.get(CONF_SMTP_HOST):
        return None
    username = data.get(CONF_SMTP_USERNAME) or ""
    return ServerSettings(
        host=data[CONF_SMTP_HOST],
        port=int(data[CONF_SMTP_PORT]),
        security=Security(data[CONF_SMTP_SECURITY]),
        username=username,
        password=data[CONF_PASSWORD] if username else "",
        verify_tls=data.get(CONF_VERIFY_SSL, True),
    )


def account_name(email: str, protocol: Protocol) -> str:
    """Name an account by address and protocol (entry title, device name).

    The same address may be added once over IMAP and once over POP3; the two
    must not look the same in the account picker or the delete dialog.
    """
    return f"{email} ({protocol.value.upper()})"


def usual_port(protocol: Protocol, security: str | None) -> int:
    """Return the well-known port of ``protocol`` under ``security``."""
    return DEFAULT_PORTS[(protocol, Security(security or Security.SSL))]
