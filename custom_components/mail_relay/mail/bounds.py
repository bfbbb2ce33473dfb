"""How much of a mail we read, decode and keep: every limit, with its reason.

Mail is hostile input. Each figure here bounds the work one message can cost
(so that no mail holds the event loop) and the size of what it leaves behind
(so that every event stays under Home Assistant's 32 KB, for any input).
``fit_event`` is the last word: whatever the fields hold, the event fits.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .message import MailEvent

# Home Assistant refuses events whose JSON is larger than this.
MAX_EVENT_BYTES = 32 * 1024
# Room left for the fields the integration adds (entry_id, ...).
EVENT_HEADROOM = 512

# A header block larger than this is cut before parsing. Real ones are a few
# KB (a long Received chain, DKIM signatures: under 64 KB); a 1.7 MB subject
# is an attack, and parsing it costs time in proportion.
MAX_HEADER_BYTES = 256 * 1024
# A header value is cut to this many characters before RFC 2047 decoding:
# RFC 5322 limits a line to 998 characters, real subjects fold to a few
# lines, and the standard library's decoder is quadratic in encoded words
# (100,000 of them took 22 s).
MAX_HEADER_VALUE = 4096
# Decoded fields kept in an event (characters).
MAX_SUBJECT = 998  # one RFC 5322 line
MAX_NAME = 256  # a display name
MAX_ADDRESS = 320  # RFC 3696: 64 local part + @ + 255 domain
MAX_MESSAGE_ID = 998
MAX_FILENAME = 255  # what file systems accept
MAX_CONTENT_TYPE = 127  # RFC 6838: 127 each for type and subtype
# Addresses kept per list (To, Cc) and attachments listed per mail.
MAX_ADDRESSES = 50
MAX_ATTACHMENTS = 50
# With include_headers: header fields kept, and characters per value.
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD_VALUE = 1024
# Authentication-Results: characters of the topmost header read, DKIM
# domains kept.
MAX_AUTH_RESULTS = 8192
MAX_DKIM_DOMAINS = 10
# MIME parts looked at per message: a mail of 100,000 empty parts costs
# nothing more than its first thousand.
MAX_MIME_PARTS = 1000
# One file attached to or saved from a mail, decoded: most providers refuse
# messages over 20-25 MB once base64 adds its third. Also the most a
# ``send_mail`` call attaches in all.
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
# A POP3 message read whole (RETR) to save its attachments: the largest
# attachment in base64 (4/3, plus line ends) and room for the rest.
MAX_SAVED_MESSAGE_BYTES = MAX_ATTACHMENT_BYTES * 3 // 2


def cap(value: str, limit: int) -> str:
    """Return ``value`` cut to ``limit`` characters."""
    return value if len(value) <= limit else value[:limit]


def _json_size(data: dict[str, Any]) -> int:
    return len(json.dumps(data, ensure_ascii=False, default=str).encode())


def fit_event(
    event: MailEvent, limit: int = MAX_EVENT_BYTES - EVENT_HEADROOM
) -> MailEvent:
    """Keep the event under Home Assistant's limit, whatever its fields hold.

    ``text`` is shortened first, then the optional header mapping goes, then
    the lists are halved, and last the strings are cut; the event itself is
    never dropped.
    """
    if _json_size(event.as_dict()) <= limit:
        return event
    excess = _json_size(event.as_dict()) - limit
    encoded = event.text.encode()
    event.text = encoded[: max(0, len(encoded) - excess - 16)].decode(errors="ignore")
    while _json_size(event.as_dict()) > limit and event.text:
        event.text = event.text[: len(event.text) * 3 // 4]
    if _json_size(event.as_dict()) > limit and event.headers:
        event.headers = {}
    while _json_size(event.as_dict()) > limit and (
        event.to or event.cc or event.attachments or event.authentication
    ):
        for seq in (event.attachments, event.cc, event.to):
            if seq:
                del seq[len(seq) // 2 :]
        if not (event.to or event.cc or event.attachments):
            event.authentication = {}
    for size in (256, 64):
        if _json_size(event.as_dict()) <= limit:
            break
        event.subject = cap(event.subject, size)
        event.sender_name = event.sender_name and cap(event.sender_name, size)
        event.sender = event.sender and cap(event.sender, size)
        event.reply_to = event.reply_to and cap(event.reply_to, size)
        event.message_id = event.message_id and cap(event.message_id, size)
    return event
