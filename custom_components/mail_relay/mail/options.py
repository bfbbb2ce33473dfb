"""What a host may choose about an account, each default written once.

The Home Assistant adapter builds these from a config entry's options
(``settings.account_options``), the command line from its flags and config
file; the IMAP watcher and the POP3 poller take them as they are. Frozen, so
that a running watcher never sees an option change under it: new options
mean a new watcher (Home Assistant reloads the entry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .backoff import Backoff
from .bounds import MAX_ATTACHMENT_BYTES

# A shorter interval than this only gets an account throttled or banned by
# its provider; hosts refuse it.
MIN_POLL_INTERVAL = 30.0
POP3_SESSION_DEADLINE = 120.0  # seconds; see Timeouts.session


class Retention(StrEnum):
    """What happens on a POP3 server to messages once they were reported."""

    KEEP = "keep"  # leave on the server (default)
    DELETE = "delete"  # delete after the event was fired
    DAYS = "days"  # delete N days after the message was first seen


@dataclass(frozen=True, slots=True)
class EventOptions:
    """What one new-mail event carries, for every protocol."""

    text_limit: int = 2048  # characters of body text
    include_headers: bool = False  # all headers as a mapping, besides the usual


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long to wait for a server, and how to wait before trying again."""

    io: float = 30.0  # one connect, command or reply
    # The longest one POP3 session may take: a poll of a hundred new messages
    # takes seconds; a server that drips its answers, each byte within ``io``,
    # is cut after two minutes instead of holding the poll for hours. Read
    # when the object is built, so a test can shorten it.
    session: float = field(default_factory=lambda: POP3_SESSION_DEADLINE)
    # 1 s doubling up to 5 minutes between reconnections after failures.
    reconnect: Backoff = field(default_factory=Backoff)


@dataclass(frozen=True, slots=True)
class FilterOptions:
    """Which new mail becomes an event; the rest is passed over (the mark moves on).

    ``senders``: addresses (``alarm@example.org``) or domains (``example.org``
    or ``@example.org``, subdomains included); any one matches. Empty: every
    sender. ``subject_contains``: a case-insensitive piece of the subject.
    The rule is ``mail.filtering.accepts``.
    """

    senders: tuple[str, ...] = ()
    subject_contains: str = ""
    unseen_only: bool = False

    @property
    def active(self) -> bool:
        """Whether any mail can be passed over."""
        return bool(self.senders or self.subject_contains or self.unseen_only)


@dataclass(frozen=True, slots=True)
class ImapWatchOptions:
    """How the folders of one IMAP account are watched (on one connection)."""

    # The first is the one kept selected (IDLE there); the others are pushed
    # by NOTIFY when the server offers it, else looked at (STATUS) on each
    # IDLE renewal or poll.
    folders: tuple[str, ...] = ("INBOX",)
    push: bool = True  # IDLE when the server offers it, else poll
    poll_interval: float = 300.0  # seconds between NOOPs without IDLE
    # Seconds in IDLE before DONE and a new IDLE: how a dead link is found. A
    # link that dies silently (Wi-Fi gone, a NAT or firewall that forgot the
    # connection) brings no FIN and no RST, and in IDLE the client only
    # listens. Each renewal speaks (DONE), and a DONE unanswered within
    # Timeouts.io declares the connection dead: 60 + 30 = 90 s with the
    # defaults, under two minutes (the CLI's 15 s timeout gives 75 s).
    # Chosen over TCP keepalive, which needs per-OS options on aioimaplib's
    # socket, proves only that the peer's kernel is alive (a hung server
    # passes it) and by default waits two hours. A renewal proves the server
    # answers, and its traffic each minute keeps NAT mappings alive. The cost:
    # DONE, IDLE, a STATUS and an unread count a minute, a few hundred bytes.
    # RFC 2177 only asks for a renewal at least every 29 minutes.
    idle_renew: float = 60.0
    mark_seen: bool = False  # flag reported mail \Seen
    # After a restart, mail older than this (by INTERNALDATE) that arrived
    # while we were away is skipped rather than reported hours late.
    catchup_hours: float = 24.0

    @property
    def folder(self) -> str:
        """The first folder: the one kept selected, the actions' default."""
        return self.folders[0] if self.folders else "INBOX"


@dataclass(frozen=True, slots=True)
class Pop3PollOptions:
    """How one POP3 maildrop is polled and what is left on the server."""

    poll_interval: float = 300.0
    retention: Retention = Retention.KEEP
    retention_days: int = 14  # with Retention.DAYS
    top_lines: int = 100  # body lines read with TOP
    # Without TOP (or with use_top=False) RETR reads the message; only this
    # many bytes of it are kept.
    retr_cap: int = 256 * 1024
    use_top: bool = True  # False for servers whose TOP is broken


@dataclass(frozen=True, slots=True)
class HealthOptions:
    """When a host tells the user that an account stopped working."""

    # Seconds an account may fail to connect or log in before the host raises
    # a problem the user sees (Home Assistant: a repair issue). Outages of a
    # few minutes (a server restart, a router reboot) heal by themselves; half
    # an hour without mail is worth a look.
    repair_after: float = 1800.0


@dataclass(frozen=True, slots=True)
class AttachmentSaveOptions:
    """Which attachments of new mail are saved to disk, and where.

    Also the rules of one ``save_attachments`` call (the host fills them from
    the call's fields). ``types`` are MIME patterns (``application/pdf``,
    ``image/*``); empty means every type.
    """

    enabled: bool = False  # new mail; an action call ignores it
    types: tuple[str, ...] = ()
    max_size: int = MAX_ATTACHMENT_BYTES  # bytes per file, decoded; at most this
    directory: str = "/media/mail_relay"
