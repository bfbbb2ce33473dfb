"""Config flow for Mail Relay.

Foundation version: manual settings only. Presets, autodetection, the connection
test, options, reauth and reconfigure come with the setup-flow issue.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_PASSWORD

from .const import (
    CONF_EMAIL,
    CONF_INCOMING_HOST,
    CONF_INCOMING_PORT,
    CONF_INCOMING_SECURITY,
    CONF_INCOMING_USERNAME,
    CONF_PROTOCOL,
    DOMAIN,
)
from .mail.models import Protocol, Security

USER_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_EMAIL): str,
        vol.Required(CONF_PASSWORD): str,
        vol.Required(CONF_PROTOCOL, default=Protocol.IMAP.value): vol.In(
            [Protocol.IMAP.value, Protocol.POP3.value]
        ),
        vol.Required(CONF_INCOMING_HOST): str,
        vol.Required(CONF_INCOMING_PORT, default=993): int,
        vol.Required(CONF_INCOMING_SECURITY, default=Security.SSL.value): vol.In(
            [s.value for s in Security]
        ),
    }
)


class MailRelayConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a mail account."""

    VERSION = 1

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the address, password and incoming server."""
        if user_input is not None:
            email = user_input[CONF_EMAIL].strip().lower()
            await self.async_set_unique_id(f"{email}:{user_input[CONF_PROTOCOL]}")
            self._abort_if_unique_id_configured()
            data = {**user_input, CONF_EMAIL: email, CONF_INCOMING_USERNAME: email}
            return self.async_create_entry(title=email, data=data)
        return self.async_show_form(step_id="user", data_schema=USER_SCHEMA)
