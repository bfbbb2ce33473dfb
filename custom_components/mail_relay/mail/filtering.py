"""The account filter's one rule: which new mail becomes an event.

IMAP may narrow the candidates on the server first (``imap.syntax.
search_criteria``), POP3 judges after TOP; both then apply ``accepts``, so
the server's looser matching (SEARCH FROM is a substring of the whole From
header) never decides alone.
"""

from __future__ import annotations

from .message import MailEvent
from .options import FilterOptions


def sender_matches(pattern: str, sender: str | None) -> bool:
    """Whether ``sender`` is the address ``pattern`` or is under its domain."""
    if not sender:
        return False
    pattern = pattern.strip().casefold()
    sender = sender.strip().casefold()
    if "@" in pattern.lstrip("@"):
        return sender == pattern
    domain = pattern.lstrip("@")
    _, _, sender_domain = sender.rpartition("@")
    return bool(domain) and (
        sender_domain == domain or sender_domain.endswith("." + domain)
    )


def accepts(options: FilterOptions, event: MailEvent, *, seen: bool) -> bool:
    """Whether a new message passes the account's filter."""
    if options.unseen_only and seen:
        return False
    if options.senders and not any(
        sender_matches(p, event.sender) for p in options.senders
    ):
        return False
    wanted = options.subject_contains.strip().casefold()
    return not wanted or wanted in (event.subject or "").casefold()
