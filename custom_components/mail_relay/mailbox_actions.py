"""The IMAP actions: ``mark_seen``, ``move``, ``delete`` and ``fetch``.

Each call uses a short-lived connection that always logs out, so an action never
disturbs the watcher's IDLE session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .const import CONF_FOLDER, DEFAULT_FOLDER, DOMAIN
from .data import MailRelayConfigEntry
from .mail.errors import AuthError, MailError
from .mail.imap import ImapClient
from .mail.models import Protocol
from .mail.tls import create_ssl_context

ATTR_ENTRY = "config_entry_id"
ATTR_UID = "uid"
ATTR_FOLDER = "folder"
ATTR_TARGET = "target_folder"

_BASE = {
    vol.Required(ATTR_ENTRY): cv.string,
    vol.Required(ATTR_UID): vol.All(cv.ensure_list, [vol.Coerce(int)]),
    vol.Optional(ATTR_FOLDER): cv.string,
}
SCHEMA_UIDS = vol.Schema(_BASE)
SCHEMA_MOVE = vol.Schema({**_BASE, vol.Required(ATTR_TARGET): cv.string})
SCHEMA_FETCH = vol.Schema(
    {
        vol.Required(ATTR_ENTRY): cv.string,
        vol.Required(ATTR_UID): vol.Coerce(int),
        vol.Optional(ATTR_FOLDER): cv.string,
    }
)


def _imap_entry(hass: HomeAssistant, entry_id: str) -> MailRelayConfigEntry:
    """Return a loaded IMAP entry, or a translated validation error."""
    entry: MailRelayConfigEntry | None = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_found",
            translation_placeholders={"entry_id": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"account": entry.title},
        )
    if entry.runtime_data.protocol is not Protocol.IMAP:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="imap_only",
            translation_placeholders={"account": entry.title},
        )
    return entry


@asynccontextmanager
async def _session(
    hass: HomeAssistant, entry: MailRelayConfigEntry, folder: str | None
) -> AsyncIterator[ImapClient]:
    """Connect, select the folder, and always log out."""
    settings = entry.runtime_data.incoming
    context = await hass.async_add_executor_job(
        lambda: create_ssl_context(verify=settings.verify_tls)
    )
    client = ImapClient(settings, ssl_context=context)
    try:
        await client.connect()
        await client.select(folder or entry.options.get(CONF_FOLDER, DEFAULT_FOLDER))
        yield client
    except AuthError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN, translation_key="auth_failed"
        ) from err
    except MailError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="action_failed",
            translation_placeholders={"error": str(err) or type(err).__name__},
        ) from err
    finally:
        await client.logout()


async def _mark_seen(call: ServiceCall) -> None:
    entry = _imap_entry(call.hass, call.data[ATTR_ENTRY])
    async with _session(call.hass, entry, call.data.get(ATTR_FOLDER)) as client:
        await client.mark_seen(call.data[ATTR_UID])


async def _move(call: ServiceCall) -> None:
    entry = _imap_entry(call.hass, call.data[ATTR_ENTRY])
    async with _session(call.hass, entry, call.data.get(ATTR_FOLDER)) as client:
        await client.move(call.data[ATTR_UID], call.data[ATTR_TARGET])


async def _delete(call: ServiceCall) -> None:
    entry = _imap_entry(call.hass, call.data[ATTR_ENTRY])
    async with _session(call.hass, entry, call.data.get(ATTR_FOLDER)) as client:
        await client.delete(call.data[ATTR_UID])


async def _fetch(call: ServiceCall) -> ServiceResponse:
    entry = _imap_entry(call.hass, call.data[ATTR_ENTRY])
    async with _session(call.hass, entry, call.data.get(ATTR_FOLDER)) as client:
        message: dict[str, Any] = await client.fetch_full(call.data[ATTR_UID])
    return message


def async_setup_mailbox_actions(hass: HomeAssistant) -> None:
    """Register the IMAP actions (once, from ``async_setup``)."""
    hass.services.async_register(DOMAIN, "mark_seen", _mark_seen, schema=SCHEMA_UIDS)
    hass.services.async_register(DOMAIN, "move", _move, schema=SCHEMA_MOVE)
    hass.services.async_register(DOMAIN, "delete", _delete, schema=SCHEMA_UIDS)
    hass.services.async_register(
        DOMAIN,
        "fetch",
        _fetch,
        schema=SCHEMA_FETCH,
        supports_response=SupportsResponse.ONLY,
    )
