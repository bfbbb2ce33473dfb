"""IMAP syntax: quoted strings, folder names (modified UTF-7), UID sets."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import date


def quote(value: str) -> str:
    """Return an IMAP quoted string.

    CR, LF and NUL would end the command line and let the rest run as a
    command of its own (aioimaplib 2.0.1 does not check): refused.
    """
    if any(c in value for c in "\r\n\0"):
        raise ValueError("line breaks and NUL are not allowed in IMAP strings")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_mailbox(name: str) -> str:
    """Encode a folder name in IMAP's modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            b64 = base64.b64encode(raw).decode().rstrip("=").replace("/", ",")
            out.append("&" + b64 + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def decode_mailbox(name: str) -> str:
    """Decode modified UTF-7; a malformed name is returned as it is."""

    def one(match: re.Match[str]) -> str:
        body = match.group(1)
        if not body:
            return "&"
        data = body.replace(",", "/")
        data += "=" * (-len(data) % 4)
        try:
            return base64.b64decode(data).decode("utf-16-be")
        except ValueError:
            return match.group(0)

    return re.sub(r"&([A-Za-z0-9+,]*)-", one, name)


def mailbox_arg(name: str) -> str:
    """Return a folder name ready for a command line."""
    return quote(encode_mailbox(name))


def uid_set(uids: list[int]) -> str:
    """Compress UIDs into an IMAP sequence set (``1:3,7``)."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("empty UID set")
    ranges: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        ranges.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    ranges.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(ranges)


_MONTHS = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


def imap_date(day: date) -> str:
    """RFC 3501's date for SEARCH (``1-Dec-2026``): English months, whatever the locale."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def search_criteria(
    senders: tuple[str, ...], subject_contains: str, unseen_only: bool
) -> str | None:
    """SEARCH keys that narrow new mail to what may pass the filter; None: no narrowing.

    Each value is user text, quoted (``quote``). Values a quoted string
    cannot carry (non-ASCII would need a literal and a CHARSET; control
    characters none) are left to the client's check (``filtering.accepts``),
    which applies to whatever the server lets through.
    """
    keys: list[str] = []
    if unseen_only:
        keys.append("UNSEEN")
    usable = [s.strip().lstrip("@") for s in senders]
    if senders and all(_searchable(s) for s in usable):
        terms = [f"FROM {quote(s)}" for s in usable]
        while len(terms) > 1:  # OR takes two keys: fold pairwise
            terms = [*terms[:-2], f"OR {terms[-2]} {terms[-1]}"]
        keys.append(terms[0])
    subject = subject_contains.strip()
    if _searchable(subject):
        keys.append(f"SUBJECT {quote(subject)}")
    return " ".join(keys) or None


def _searchable(value: str) -> bool:
    """Whether a quoted string carries ``value`` to SEARCH as it is."""
    return bool(value) and value.isascii() and value.isprintable()
