"""Actions: ``mail_relay.send_mail``; shared sending helpers for notify."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .const import DOMAIN, LOGGER
from .data import MailRelayConfigEntry
from .errors import Where, ha_error, needs_reauth
from .files import async_read_attachments, is_media_source
from .mail.compose import OutgoingMail, compose
from .mail.errors import MailError
from .mail.imap import ImapClient
from .mail.models import Protocol
from .mail.smtp import SendResult
from .mail.tls import create_ssl_context

SERVICE_SEND_MAIL = "send_mail"
ATTR_CONFIG_ENTRY_ID = "config_entry_id"
ATTR_TO = "to"
ATTR_CC = "cc"
ATTR_BCC = "bcc"
ATTR_SUBJECT = "subject"
ATTR_TEXT = "text"
ATTR_HTML = "html"
ATTR_ATTACHMENTS = "attachments"
ATTR_IMAGES = "images"
ATTR_REPLY_TO = "reply_to"
ATTR_MEDIA = "media"  # attachments picked with the Media selector


def _media_sources(value: Any) -> list[str]:  # noqa: ANN401 (any call data)
    """Accept media-source URIs, or what the Media selector gives (its mappings)."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        uri = item.get("media_content_id") if isinstance(item, dict) else item
        text = cv.string(uri)
        if not is_media_source(text):
            raise vol.Invalid(f"not a media source: {text}")
        out.append(text)
    return out


_ADDRESS_LIST = vol.All(cv.ensure_list, [cv.string])

SEND_MAIL_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Optional(ATTR_TO, default=list): _ADDRESS_LIST,
        vol.Optional(ATTR_CC, default=list): _ADDRESS_LIST,
        vol.Optional(ATTR_BCC, default=list): _ADDRESS_LIST,
        vol.Optional(ATTR_SUBJECT, default=""): cv.string,
        vol.Optional(ATTR_TEXT): cv.string,
        vol.Optional(ATTR_HTML): cv.string,
        vol.Optional(ATTR_ATTACHMENTS, default=list): vol.All(
            cv.ensure_list, [cv.string]
        ),
        vol.Optional(ATTR_IMAGES, default=list): vol.All(cv.ensure_list, [cv.string]),
        vol.Optional(ATTR_REPLY_TO, default=list): _ADDRESS_LIST,
        vol.Optional(ATTR_MEDIA, default=list): _media_sources,
    }
)


def default_recipients(entry: MailRelayConfigEntry) -> list[str]:
    """Return the options' default recipients, else the account's own address."""
    return list(entry.runtime_data.options.recipients) or [entry.runtime_data.email]


def sender_name(entry: MailRelayConfigEntry) -> str | None:
    """Return the display name for From, if the user set one."""
    return entry.runtime_data.options.sender_name or None


async def async_send_mail(
    hass: HomeAssistant, entry: MailRelayConfigEntry, mail: OutgoingMail
) -> SendResult:
    """Send through the entry's sender; core errors become HA errors."""
    sender = entry.runtime_data.sender
    if sender is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="smtp_not_configured",
            translation_placeholders={"account": entry.runtime_data.email},
        )
    try:
        composed = compose(mail)
        # Before sending: the copy may arrive before the send returns.
        entry.runtime_data.coordinator.async_note_sent(
            str(composed.message["Message-ID"])
        )
        result = await sender.send_composed(composed)
    except MailError as err:
        if needs_reauth(err):
            # The password changed: ask the user for the new one.
            entry.async_start_reauth(hass)
        raise ha_error(err, Where.SEND) from err
    if result.refused:
        # Accepted for some recipients only: retrying would duplicate it.
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="recipients_refused",
            translation_placeholders={
                "refused": ", ".join(
                    f"{rcpt} ({code} {reply})"
                    for rcpt, (code, reply) in result.refused.items()
                ),
                "accepted": ", ".join(result.accepted),
            },
        )
    if (
        entry.runtime_data.protocol is Protocol.IMAP
        and entry.runtime_data.options.save_sent
    ):
        # In the background: the message is sent; the copy must not slow or
        # fail the notification.
        entry.async_create_background_task(
            hass,
            _async_save_sent_copy(hass, entry, composed.as_bytes()),
            f"{DOMAIN} save sent copy",
        )
    return result


async def _async_save_sent_copy(
    hass: HomeAssistant, entry: MailRelayConfigEntry, message: bytes
) -> None:
    """APPEND a sent message to the account's Sent folder (the user keeps a copy)."""
    try:
        async with imap_session(hass, entry, None) as client:
            await client.append(await client.sent_folder(), message)
    except HomeAssistantError as err:
        LOGGER.warning(
            "%s: mail sent, but its copy could not be saved in Sent: %s",
            entry.runtime_data.email,
            err,
        )


def loaded_entry(hass: HomeAssistant, entry_id: str) -> MailRelayConfigEntry:
    """Return a loaded entry of ours, or a translated validation error."""
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
    return entry


async def _async_send_mail_service(call: ServiceCall) -> ServiceResponse:
    """Handle ``mail_relay.send_mail``."""
    hass = call.hass
    entry = loaded_entry(hass, call.data[ATTR_CONFIG_ENTRY_ID])
    if entry.runtime_data.sender is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="smtp_not_configured",
            translation_placeholders={"account": entry.runtime_data.email},
        )
    # Paths and media sources alike; the size rule counts them all together.
    attached = [*call.data[ATTR_ATTACHMENTS], *call.data[ATTR_MEDIA]]
    files = await async_read_attachments(hass, [*attached, *call.data[ATTR_IMAGES]])
    attachments, images = files[: len(attached)], files[len(attached) :]
    to: list[str] = call.data[ATTR_TO]
    cc: list[str] = call.data[ATTR_CC]
    bcc: list[str] = call.data[ATTR_BCC]
    if not (to or cc or bcc):
        to = default_recipients(entry)
    mail = OutgoingMail(
        sender=entry.runtime_data.email,
        sender_name=sender_name(entry),
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=call.data[ATTR_REPLY_TO],
        subject=call.data[ATTR_SUBJECT],
        text=call.data.get(ATTR_TEXT),
        html=call.data.get(ATTR_HTML),
        attachments=attachments,
        images=images,
    )
    result = await async_send_mail(hass, entry, mail)
    if not call.return_response:
        return None
    response: dict[str, Any] = {
        "accepted": list(result.accepted),
        "reply": result.reply,
    }
    return response


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions (once, from async_setup)."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_SEND_MAIL,
        _async_send_mail_service,
        schema=SEND_MAIL_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    _async_setup_mailbox_actions(hass)


# -- IMAP actions: mark_seen, move, delete, fetch ----------------------------

ATTR_UID = "uid"
ATTR_FOLDER = "folder"
ATTR_TARGET = "target_folder"

_BASE = {
    vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
    vol.Required(ATTR_UID): vol.All(cv.ensure_list, [vol.Coerce(int)]),
    vol.Optional(ATTR_FOLDER): cv.string,
}
SCHEMA_UIDS = vol.Schema(_BASE)
SCHEMA_MOVE = vol.Schema({**_BASE, vol.Required(ATTR_TARGET): cv.string})
SCHEMA_FETCH = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Required(ATTR_UID): vol.Coerce(int),
        vol.Optional(ATTR_FOLDER): cv.string,
    }
)


def _imap_entry(hass: HomeAssistant, entry_id: str) -> MailRelayConfigEntry:
    """Return a loaded IMAP entry, or a translated validation error."""
    entry = loaded_entry(hass, entry_id)
    if entry.runtime_data.protocol is not Protocol.IMAP:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="imap_only",
            translation_placeholders={"account": entry.title},
        )
    return entry


@asynccontextmanager
async def imap_session(
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
        await client.select(folder or entry.runtime_data.options.imap.folder)
        yield client
    except MailError as err:
        raise ha_error(err, Where.ACTION) from err
    finally:
        await client.logout()


async def _mark_seen(call: ServiceCall) -> None:
    await _on_messages(call, lambda client, uids: client.mark_seen(uids))


async def _move(call: ServiceCall) -> None:
    target = call.data[ATTR_TARGET]
    await _on_messages(call, lambda client, uids: client.move(uids, target))


async def _delete(call: ServiceCall) -> None:
    await _on_messages(call, lambda client, uids: client.delete(uids))


async def _on_messages(
    call: ServiceCall, act: Callable[[ImapClient, list[int]], Awaitable[object]]
) -> None:
    """Run one IMAP action on the messages the call names, in its folder."""
    entry = _imap_entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    async with imap_session(call.hass, entry, call.data.get(ATTR_FOLDER)) as client:
        await act(client, call.data[ATTR_UID])


async def _fetch(call: ServiceCall) -> ServiceResponse:
    entry = _imap_entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    async with imap_session(call.hass, entry, call.data.get(ATTR_FOLDER)) as client:
        message: dict[str, Any] = await client.fetch_full(call.data[ATTR_UID])
    return message


def _async_setup_mailbox_actions(hass: HomeAssistant) -> None:
    """Register the IMAP actions: short-lived connections that always log out."""
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
