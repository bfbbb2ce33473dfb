"""Turn a config entry's data into the mail core's typed settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from homeassistant.const import CONF_PASSWORD

from .const import (
    CONF_ATTACHMENTS,
    CONF_ATTACHMENTS_DIRECTORY,
    CONF_ATTACHMENTS_ENABLED,
    CONF_ATTACHMENTS_MAX_SIZE_MB,
    CONF_ATTACHMENTS_TYPES,
    CONF_CATCHUP_HOURS,
    CONF_FILTER_SENDERS,
    CONF_FILTER_SUBJECT,
    CONF_FILTER_UNSEEN,
    CONF_FOLDER,
    CONF_FOLDERS,
    CONF_INCLUDE_HEADERS,
    CONF_INCOMING_HOST,
    CONF_INCOMING_PORT,
    CONF_INCOMING_SECURITY,
    CONF_INCOMING_USERNAME,
    CONF_MARK_SEEN,
    CONF_POLL_INTERVAL,
    CONF_PUSH,
    CONF_RECIPIENTS,
    CONF_RETENTION,
    CONF_RETENTION_DAYS,
    CONF_SAVE_SENT,
    CONF_SENDER_NAME,
    CONF_SMTP_HOST,
    CONF_SMTP_PORT,
    CONF_SMTP_SECURITY,
    CONF_SMTP_USERNAME,
    CONF_TEXT_LIMIT,
    CONF_VERIFY_SSL,
)
from .mail.attachments import mime_patterns
from .mail.models import DEFAULT_PORTS, Protocol, Security, ServerSettings
from .mail.oauth import TokenSource
from .mail.options import (
    MIN_POLL_INTERVAL,
    AttachmentSaveOptions,
    EventOptions,
    FilterOptions,
    HealthOptions,
    ImapWatchOptions,
    Pop3PollOptions,
    Retention,
)


def incoming_settings(
    data: Mapping[str, Any], token_source: TokenSource | None = None
) -> ServerSettings:
    """Return the IMAP/POP3 server settings of an entry.

    An OAuth2 entry has no password: its clients log in with ``token_source``.
    """
    return ServerSettings(
        host=data[CONF_INCOMING_HOST],
        port=int(data[CONF_INCOMING_PORT]),
        security=Security(data[CONF_INCOMING_SECURITY]),
        username=data[CONF_INCOMING_USERNAME],
        password=data.get(CONF_PASSWORD) or "",
        verify_tls=data.get(CONF_VERIFY_SSL, True),
        token_source=token_source,
    )


def smtp_settings(
    data: Mapping[str, Any], token_source: TokenSource | None = None
) -> ServerSettings | None:
    """Return the SMTP settings of an entry, or None when it sends no mail."""
    if not data.get(CONF_SMTP_HOST):
        return None
    username = data.get(CONF_SMTP_USERNAME) or ""
    return ServerSettings(
        host=data[CONF_SMTP_HOST],
        port=int(data[CONF_SMTP_PORT]),
        security=Security(data[CONF_SMTP_SECURITY]),
        username=username,
        password=(data.get(CONF_PASSWORD) or "") if username else "",
        verify_tls=data.get(CONF_VERIFY_SSL, True),
        token_source=token_source if username else None,
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


@dataclass(frozen=True, slots=True)
class AccountOptions:
    """An entry's options, typed, with the mail core's defaults for any unset.

    The options flow shows these as its defaults and the coordinators hand
    them to the watcher or poller: no other module reads ``entry.options``.
    """

    event: EventOptions = field(default_factory=EventOptions)
    imap: ImapWatchOptions = field(default_factory=ImapWatchOptions)
    pop3: Pop3PollOptions = field(default_factory=Pop3PollOptions)
    recipients: tuple[str, ...] = ()  # notify's default; empty: the account
    sender_name: str = ""
    save_sent: bool = False  # IMAP: a copy of each sent mail in Sent
    filter: FilterOptions = field(default_factory=FilterOptions)
    health: HealthOptions = field(default_factory=HealthOptions)
    # Attachments of new mail saved to a folder (and the action's defaults).
    attachments: AttachmentSaveOptions = field(default_factory=AttachmentSaveOptions)


def account_options(options: Mapping[str, Any]) -> AccountOptions:
    """Read an entry's options; what is missing keeps the core's default."""
    event, imap, pop3 = EventOptions(), ImapWatchOptions(), Pop3PollOptions()
    interval = options.get(CONF_POLL_INTERVAL)
    if interval is not None:
        interval = max(float(interval), MIN_POLL_INTERVAL)
    return AccountOptions(
        event=EventOptions(
            text_limit=int(options.get(CONF_TEXT_LIMIT, event.text_limit)),
            include_headers=bool(
                options.get(CONF_INCLUDE_HEADERS, event.include_headers)
            ),
        ),
        imap=ImapWatchOptions(
            folders=_folders(options) or imap.folders,
            push=bool(options.get(CONF_PUSH, imap.push)),
            poll_interval=imap.poll_interval if interval is None else interval,
            mark_seen=bool(options.get(CONF_MARK_SEEN, imap.mark_seen)),
            catchup_hours=float(options.get(CONF_CATCHUP_HOURS, imap.catchup_hours)),
        ),
        pop3=Pop3PollOptions(
            poll_interval=pop3.poll_interval if interval is None else interval,
            retention=Retention(options.get(CONF_RETENTION, pop3.retention)),
            retention_days=int(options.get(CONF_RETENTION_DAYS, pop3.retention_days)),
        ),
        recipients=_items(options.get(CONF_RECIPIENTS)),
        sender_name=str(options.get(CONF_SENDER_NAME) or ""),
        save_sent=bool(options.get(CONF_SAVE_SENT, False)),
        filter=FilterOptions(
            senders=_items(options.get(CONF_FILTER_SENDERS)),
            subject_contains=str(options.get(CONF_FILTER_SUBJECT) or "").strip(),
            unseen_only=bool(options.get(CONF_FILTER_UNSEEN, False)),
        ),
        # Not in the options form yet: every account waits the default.
        health=HealthOptions(),
        attachments=_attachment_options(options.get(CONF_ATTACHMENTS) or {}),
    )


def _attachment_options(saved: Mapping[str, Any]) -> AttachmentSaveOptions:
    """Read the auto-save block; the size is kept in MB, the core counts bytes."""
    default = AttachmentSaveOptions()
    size_mb = saved.get(CONF_ATTACHMENTS_MAX_SIZE_MB)
    return AttachmentSaveOptions(
        enabled=bool(saved.get(CONF_ATTACHMENTS_ENABLED, default.enabled)),
        types=mime_patterns(saved.get(CONF_ATTACHMENTS_TYPES) or ()),
        max_size=default.max_size
        if size_mb is None
        else min(int(float(size_mb) * 2**20), default.max_size),
        directory=str(saved.get(CONF_ATTACHMENTS_DIRECTORY) or default.directory),
    )


def _folders(options: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the watched folders (older entries hold one ``folder``)."""
    chosen = options.get(CONF_FOLDERS)
    if not chosen and options.get(CONF_FOLDER):
        chosen = [options[CONF_FOLDER]]
    return tuple(dict.fromkeys(str(f) for f in chosen or () if str(f).strip()))


def _items(configured: str | list[str] | None) -> tuple[str, ...]:
    """Clean a list option (recipients made before the list selector hold a string)."""
    if isinstance(configured, str):
        configured = configured.split(",")
    return tuple(r.strip() for r in configured or () if r and r.strip())
