"""Saving attachments of received mail: ``mail_relay.save_attachments`` and auto-save.

IMAP downloads each wanted part alone; POP3, which has no parts, reads the
message whole (``RETR``, bounded) while it is still on the server. The target
folder follows the one path rule (``files.require_allowed_path``), each file
the one size rule, and the core names and writes the files
(``mail/attachments.py``). Auto-save of new mail runs before its event fires,
within ``AUTO_SAVE_DEADLINE``; whatever goes wrong, the event still fires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import voluptuous as vol
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
from .errors import Where, ha_error
from .files import require_allowed_path
from .mail.attachments import (
    SaveOutcome,
    SkipReason,
    message_candidates,
    mime_patterns,
    save_all,
    type_wanted,
)
from .mail.bounds import (
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    MAX_SAVED_MESSAGE_BYTES,
    fit_event,
)
from .mail.errors import MailError
from .mail.message import MailEvent
from .mail.models import Protocol
from .mail.options import AttachmentSaveOptions
from .services import ATTR_CONFIG_ENTRY_ID, ATTR_FOLDER, imap_session, loaded_entry

SERVICE_SAVE_ATTACHMENTS = "save_attachments"
ATTR_UID = "uid"
ATTR_DIRECTORY = "directory"
ATTR_TYPES = "types"
ATTR_MAX_SIZE_MB = "max_size_mb"

# POP3 auto-save reads whole a new message larger than this even when its
# ``TOP`` lists no wanted attachment: 100 lines of text rarely pass it.
POP3_WHOLE_ABOVE = 64 * 1024
# Reads the message whole, up to a limit (bytes); None when it is larger.
type WholeReader = Callable[[int], Awaitable[bytes | None]]

# Seconds auto-save may hold a new mail's event: then it fires without the
# files still missing (a slow server, a huge part).
AUTO_SAVE_DEADLINE = 60.0

SAVE_ATTACHMENTS_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Required(ATTR_UID): vol.All(vol.Coerce(str), vol.Length(min=1, max=70)),
        vol.Optional(ATTR_FOLDER): cv.string,
        vol.Optional(ATTR_DIRECTORY): cv.string,
        vol.Optional(ATTR_TYPES): vol.All(cv.ensure_list, [cv.string]),
        vol.Optional(ATTR_MAX_SIZE_MB): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=MAX_ATTACHMENT_BYTES / 2**20)
        ),
    }
)


def _target_directory(hass: HomeAssistant, directory: str) -> Path:
    """Create the folder if needed and return it, only inside the allow list.

    Checked before and after creating it (resolved, so a symbolic link that
    leads out of the allowed folders is refused). Runs in the executor.
    """
    require_allowed_path(hass, directory)
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="directory_unusable",
            translation_placeholders={"path": directory, "error": str(err)},
        ) from err
    resolved = path.resolve()
    require_allowed_path(hass, str(resolved))
    return resolved


async def async_save_attachments(
    hass: HomeAssistant,
    entry: MailRelayConfigEntry,
    *,
    uid: str,
    folder: str | None,
    rules: AttachmentSaveOptions,
    read_whole: WholeReader | None = None,
) -> list[SaveOutcome]:
    """Save one message's wanted attachments; errors are translated HA errors.

    POP3 reads the message whole: with ``read_whole`` inside the poll's
    session (auto-save), else in a session of its own, between polls.
    """
    directory = await hass.async_add_executor_job(
        _target_directory, hass, rules.directory
    )
    if entry.runtime_data.protocol is Protocol.IMAP:
        if not uid.isdigit():
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="invalid_uid",
                translation_placeholders={"uid": uid},
            )
        # The session turns core errors into translated ones.
        async with imap_session(hass, entry, folder) as client:
            candidates = await client.attachment_candidates(int(uid))
            return await save_all(candidates, rules, directory)
    try:
        if read_whole is None:
            raw = await entry.runtime_data.coordinator.async_retrieve(
                uid, MAX_SAVED_MESSAGE_BYTES
            )
        else:
            raw = await read_whole(MAX_SAVED_MESSAGE_BYTES)
    except MailError as err:
        raise ha_error(err, Where.ACTION) from err
    if raw is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="message_too_large",
            translation_placeholders={
                "limit": f"{MAX_SAVED_MESSAGE_BYTES / 2**20:g}",
            },
        )
    try:
        candidates = await message_candidates(raw)
    except ValueError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="message_unreadable",
            translation_placeholders={"error": str(err)},
        ) from err
    return await save_all(candidates, rules, directory)


def _call_rules(
    call: ServiceCall, entry: MailRelayConfigEntry
) -> AttachmentSaveOptions:
    """Return the account's auto-save rules, with what the call sets instead."""
    rules = entry.runtime_data.options.attachments
    data = call.data
    return AttachmentSaveOptions(
        enabled=True,
        types=mime_patterns(data[ATTR_TYPES]) if ATTR_TYPES in data else rules.types,
        max_size=int(data[ATTR_MAX_SIZE_MB] * 2**20)
        if ATTR_MAX_SIZE_MB in data
        else rules.max_size,
        directory=data.get(ATTR_DIRECTORY, rules.directory),
    )


def response(outcomes: list[SaveOutcome]) -> dict[str, Any]:
    """Return the action's answer: where each file went, what was skipped and why."""
    return {
        "saved": [o.as_dict() for o in outcomes if o.reason is None],
        "skipped": [o.as_dict() for o in outcomes if o.reason is not None],
    }


async def _async_save_attachments_service(call: ServiceCall) -> ServiceResponse:
    """Handle ``mail_relay.save_attachments``."""
    entry = loaded_entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    outcomes = await async_save_attachments(
        call.hass,
        entry,
        uid=call.data[ATTR_UID],
        folder=call.data.get(ATTR_FOLDER),
        rules=_call_rules(call, entry),
    )
    return response(outcomes)


def async_setup_save_action(hass: HomeAssistant) -> None:
    """Register ``mail_relay.save_attachments`` (once, from async_setup)."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_SAVE_ATTACHMENTS,
        _async_save_attachments_service,
        schema=SAVE_ATTACHMENTS_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )


def _worth_saving(
    event: MailEvent, rules: AttachmentSaveOptions, protocol: Protocol
) -> bool:
    """Whether a new mail may have a wanted attachment, before downloading any.

    IMAP lists every attachment in the event. POP3's event comes from
    ``TOP`` (the first lines): a message larger than it reads may hold
    attachments further down, so it is read whole too.
    """
    if any(type_wanted(a.content_type, rules.types) for a in event.attachments):
        return True
    return protocol is Protocol.POP3 and (event.size or 0) > POP3_WHOLE_ABOVE


async def async_auto_save(
    hass: HomeAssistant,
    entry: MailRelayConfigEntry,
    event: MailEvent,
    read_whole: WholeReader | None = None,
) -> MailEvent:
    """Save a new mail's wanted attachments; return the event saying where they went.

    Never raises and never takes more than ``AUTO_SAVE_DEADLINE``: the event
    matters more than the files, and a failure is logged, not fatal.
    """
    rules = entry.runtime_data.options.attachments
    protocol = entry.runtime_data.protocol
    if not rules.enabled or not _worth_saving(event, rules, protocol):
        return event
    if protocol is Protocol.POP3 and read_whole is None:
        return event  # only within the poll's session, which holds the maildrop
    try:
        async with asyncio.timeout(AUTO_SAVE_DEADLINE):
            outcomes = await async_save_attachments(
                hass,
                entry,
                uid=event.uid,
                folder=event.folder,
                rules=rules,
                read_whole=read_whole,
            )
    except (HomeAssistantError, TimeoutError) as err:
        LOGGER.warning(
            "%s: attachments of message %s not saved to %s: %s",
            entry.runtime_data.email,
            event.uid,
            rules.directory,
            str(err) or type(err).__name__,
        )
        return event
    except Exception:  # a bug must not cost the event or stop the account
        LOGGER.exception(
            "%s: attachments of message %s not saved",
            entry.runtime_data.email,
            event.uid,
        )
        return event
    for outcome in outcomes:
        if outcome.reason is not None and outcome.reason is not SkipReason.TYPE:
            LOGGER.warning(
                "%s: attachment %s of message %s not saved: %s %s",
                entry.runtime_data.email,
                outcome.attachment.filename,
                event.uid,
                outcome.reason.value,
                outcome.error or "",
            )
    return _with_saved_paths(event, outcomes)


def _with_saved_paths(event: MailEvent, outcomes: list[SaveOutcome]) -> MailEvent:
    """List the attachments as the save found them, each saved one with its path.

    The save read the whole structure (IMAP) or message (POP3), so its list
    is complete where a POP3 event's, from ``TOP``, may not be.
    """
    if outcomes:
        event.attachments = [o.attachment for o in outcomes[:MAX_ATTACHMENTS]]
    return fit_event(event)  # the paths take room: the event stays under 32 KB
