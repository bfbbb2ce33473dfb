"""Raw mail -> the ``mail_relay_new_mail`` event payload (docs/architecture.md, the event contract).

Everything here is tolerant: broken MIME, unknown charsets and truncated bodies
(IMAP partial fetches, POP3 ``TOP``) still yield an event with what can be read.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import logging
import quopri
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from email import message_from_bytes
from email.header import decode_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from enum import Enum
from functools import partial
from typing import Any

from .bounds import (
    MAX_ADDRESS,
    MAX_ADDRESSES,
    MAX_ATTACHMENTS,
    MAX_AUTH_RESULTS,
    MAX_CONTENT_TYPE,
    MAX_DKIM_DOMAINS,
    MAX_FILENAME,
    MAX_HEADER_BYTES,
    MAX_HEADER_FIELD_VALUE,
    MAX_HEADER_FIELDS,
    MAX_HEADER_VALUE,
    MAX_MESSAGE_ID,
    MAX_MIME_PARTS,
    MAX_NAME,
    MAX_SUBJECT,
    cap,
    fit_event,
)
from .html import html_to_text

_LOGGER = logging.getLogger(__name__)


# A forwarded or bounced mail inside a mail: one attachment, not its parts.
ATTACHED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
UNNAMED_ATTACHMENT = "unnamed"


class PartRole(Enum):
    """What one single MIME part is to an event."""

    PLAIN = "plain"  # a candidate for the event's text
    HTML = "html"  # the text's fallback, turned into text
    ATTACHMENT = "attachment"  # listed with name, type and size
    OTHER = "other"  # neither (calendar data, signatures inline, ...)


def part_role(content_type: str, disposition: str, filename: str | None) -> PartRole:
    """Classify a single part the same way for IMAP's BODYSTRUCTURE and POP3's mail.

    An attachment is what says so, what has a file name and is not text, or a
    whole message inside the message; otherwise text/plain and text/html are
    body candidates (the first of each counts).
    """
    maintype = content_type.partition("/")[0]
    if (
        disposition == "attachment"
        or (filename and maintype != "text")
        or content_type in ATTACHED_MESSAGE_TYPES
    ):
        return PartRole.ATTACHMENT
    if content_type == "text/plain":
        return PartRole.PLAIN
    if content_type == "text/html":
        return PartRole.HTML
    return PartRole.OTHER


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """One attachment of a received mail as automations see it (never its bytes)."""

    filename: str
    content_type: str
    size: int
    # Where the file was saved, when new mail's attachments are saved.
    saved_path: str | None = None


def attachment_info(
    filename: str | None, content_type: str, size: int
) -> AttachmentInfo:
    """Describe an attachment with its name decoded and every field bounded."""
    name = cap(decode_header_value(filename or ""), MAX_FILENAME)
    return AttachmentInfo(
        name or UNNAMED_ATTACHMENT, cap(content_type, MAX_CONTENT_TYPE), size
    )


@dataclass(slots=True)
class MailEvent:
    """The payload of one new message (without ``entry_id``, added by the host)."""

    account: str
    protocol: str
    folder: str
    uid: str
    uidvalidity: int | None
    message_id: str | None
    date: str | None
    sender: str | None
    sender_name: str | None
    to: list[str]
    cc: list[str]
    reply_to: str | None
    subject: str
    text: str
    size: int | None
    attachments: list[AttachmentInfo] = field(default_factory=list)
    sender_verified: bool = False
    authentication: dict[str, Any] = field(default_factory=dict)
    # RFC 3834's Auto-Submitted ("auto-generated", "auto-replied"...); None
    # when absent or "no": mail a person sent.
    auto_submitted: str | None = None
    headers: dict[str, list[str]] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the event data, JSON-serialisable."""
        data = asdict(self)
        if data["headers"] is None:
            del data["headers"]
        return data


# -- headers ---------------------------------------------------------------


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, falling back instead of failing."""
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            codecs.lookup(candidate)
            return data.decode(candidate)
        except UnicodeDecodeError as err:
            # A partial fetch may cut the last character in two: drop it
            # rather than decode everything as Latin-1.
            if err.reason == "unexpected end of data" and err.start >= len(data) - 4:
                with contextlib.suppress(UnicodeDecodeError):
                    return data[: err.start].decode(candidate)
            continue
        except (LookupError, ValueError):  # unknown, or a NUL in the name
            continue
    # Latin-1 never fails; a wrong guess beats losing the text.
    return data.decode("latin-1")


def decode_header_value(value: object, limit: int = MAX_HEADER_VALUE) -> str:
    """Decode RFC 2047 encoded-words; unknown charsets degrade, never raise.

    ``value`` may be a ``Header`` (8-bit bytes in a header make the parser
    return one); at most ``limit`` characters of it are decoded.
    """
    if not value:
        return ""
    # Unfold first: the whitespace of a fold between an encoded word and plain
    # text is part of the text (RFC 2047, 6.2); decode_header would drop it.
    raw = _unfold(_cut_words(str(value), limit))
    try:
        parts = decode_header(raw)
    except (ValueError, binascii.Error, AssertionError):
        return raw
    out: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            out.append(_decode_bytes(chunk, charset))
        else:
            out.append(chunk)
    return "".join(out).strip()


def _cut_words(value: str, limit: int) -> str:
    """Cut to ``limit`` characters, dropping an encoded word cut in half."""
    if len(value) <= limit:
        return value
    head = value[:limit]
    start = head.rfind("=?")
    if start >= 0 and head.count("?", start) < 4:  # =?charset?q?text?= unfinished
        head = head[:start]
    return head


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]*", " ", value).strip()


def _addresses(values: list[Any]) -> list[tuple[str, str]]:
    """Return up to MAX_ADDRESSES (display name, lower-case address) pairs."""
    decoded = [decode_header_value(v) for v in values[:MAX_ADDRESSES] if v]
    pairs = getaddresses(decoded)
    return [
        (cap(name.strip(), MAX_NAME), cap(addr.strip().lower(), MAX_ADDRESS))
        for name, addr in pairs
        if addr.strip()
    ][:MAX_ADDRESSES]


def _iso_date(value: object) -> str | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(cap(str(value), MAX_NAME)).isoformat()
    except (TypeError, ValueError, IndexError):
        return None


# -- Authentication-Results (RFC 8601) -----------------------------------------

_RESULT = re.compile(r"\b(spf|dkim|dmarc)\s*=\s*([a-z]+)", re.IGNORECASE)
_PROP = re.compile(
    r"\b(header\.d|header\.i|header\.from|smtp\.mailfrom)\s*=\s*([^\s;]+)",
    re.IGNORECASE,
)


def _aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment: same domain, or one a subdomain of the other."""
    domain, from_domain = domain.lower().lstrip("@"), from_domain.lower()
    if "@" in domain:
        domain = domain.rsplit("@", 1)[1]
    return (
        domain == from_domain
        or from_domain.endswith("." + domain)
        or domain.endswith("." + from_domain)
    )


def authentication_results(
    value: object, from_domain: str | None
) -> tuple[dict[str, Any], bool]:
    """Read the receiving server's Authentication-Results header.

    Only the topmost header counts (the one our own server added); deeper ones
    may have been written by the sender. Returns the results and whether the
    From domain is verified: DMARC pass, or a DKIM pass aligned with From.
    """
    if not value:
        return {}, False
    text = decode_header_value(value, MAX_AUTH_RESULTS)
    results: dict[str, Any] = {}
    dkim_domains: list[str] = []
    verified = False
    # Each method clause is separated by ';' (the first clause is the authserv-id).
    clauses = text.split(";")
    server = clauses[0].strip().split()[0] if clauses[0].strip() else ""
    results["server"] = cap(server, MAX_NAME)
    for clause in clauses[1:]:
        match = _RESULT.search(clause)
        if not match:
            continue
        method, result = match.group(1).lower(), match.group(2).lower()
        results.setdefault(method, result)
        props = {k.lower(): v.strip("\"'<>") for k, v in _PROP.findall(clause)}
        if method == "dkim" and result == "pass":
            domain = props.get("header.d") or props.get("header.i", "")
            if domain and len(dkim_domains) < MAX_DKIM_DOMAINS:
                dkim_domains.append(cap(domain.lower(), MAX_ADDRESS))
                if from_domain and _aligned(domain, from_domain):
                    verified = True
                    results["dkim"] = "pass"
        if method == "dmarc" and result == "pass":
            verified = True
    if dkim_domains:
        results["dkim_domains"] = dkim_domains
    return results, verified


# -- bodies --------------------------------------------------------------------


def decode_transfer(data: bytes, encoding: str | None) -> bytes:
    """Undo a Content-Transfer-Encoding, accepting truncated input."""
    enc = (encoding or "").strip().lower()
    if enc == "base64":
        compact = re.sub(rb"[^A-Za-z0-9+/=]", b"", data)
        compact = compact[: len(compact) - len(compact) % 4]
        try:
            return base64.b64decode(compact)
        except binascii.Error:
            return b""
    if enc == "quoted-printable":
        return quopri.decodestring(data)
    return data


def body_text(
    data: bytes, *, encoding: str | None, charset: str | None, subtype: str
) -> str:
    """Decode a (possibly partial) text part; HTML is turned into text."""
    text = _decode_bytes(decode_transfer(data, encoding), charset)
    if subtype.lower() == "html":
        return html_to_text(text)
    return text.replace("\r\n", "\n").strip()


def _payload_bytes(part: Message) -> bytes:
    """Return a part's payload as the bytes the server sent, before any decoding.

    Base64 and quoted-printable bodies are ASCII. An 8-bit body comes back from
    the parser already decoded with its declared charset (unknown bytes lost),
    so its bytes are taken from ``get_payload(decode=True)``, which for 8bit and
    binary parts returns them unchanged; the part's charset then decodes them
    (Latin-1 would turn the euro sign, typographic quotes or emoji into '?').
    """
    raw = part.get_payload(decode=False)
    if not isinstance(raw, str):
        return b""
    try:
        return raw.encode("ascii")
    except UnicodeEncodeError:
        pass
    encoding = str(part.get("Content-Transfer-Encoding") or "").strip().lower()
    if encoding in {"base64", "quoted-printable"}:
        # 8-bit bytes have no place in these; what decodes is kept.
        return raw.encode("ascii", "replace")
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else raw.encode("utf-8", "replace")


def _single_parts(msg: Message) -> Iterator[Message]:
    """Yield the single parts in document order, with a stack, not recursion.

    ``Message.walk`` recurses per level; this does not. A message attached
    inside (message/rfc822) is one part: its own parts are not the mail's.
    """
    pending = [msg]
    seen = 0
    while pending and seen < MAX_MIME_PARTS:
        seen += 1
        part = pending.pop()
        children = part.get_payload()
        if (
            part.get_content_type() in ATTACHED_MESSAGE_TYPES
            or not part.is_multipart()
            or not isinstance(children, list)
        ):
            yield part
            continue
        pending.extend(c for c in reversed(children) if isinstance(c, Message))


def _header_text(part: Message, name: str) -> str:
    """Return a header as text; 8-bit bytes make compat32 hand back a Header."""
    value = part.get(name)
    return "" if value is None else str(value)


def _attached_size(part: Message) -> int:
    """Return a part's decoded size; for an attached message, its bytes."""
    if part.get_content_type() in ATTACHED_MESSAGE_TYPES:
        inner = part.get_payload()
        try:
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return len(inner[0].as_bytes())
        except (RecursionError, ValueError, LookupError):
            return 0
    encoding = _header_text(part, "Content-Transfer-Encoding")
    return len(decode_transfer(_payload_bytes(part), encoding))


def attachment_bytes(data: bytes, encoding: str | None) -> bytes:
    """Decode an attachment's transfer encoding; ``ValueError`` if nothing decodes.

    Unlike text, a file cannot be half right: base64 with anything but its
    alphabet and line breaks is refused rather than saved as junk (a missing
    final padding is forgiven).
    """
    if (encoding or "").strip().lower() == "base64":
        compact = re.sub(rb"\s+", b"", data)
        compact += b"=" * (-len(compact) % 4)
        try:
            return base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ValueError(f"base64 content that does not decode: {err}") from err
    return decode_transfer(data, encoding)


def _part_content(part: Message) -> bytes:
    """Return a single part's decoded bytes; an attached message as it was sent."""
    if part.get_content_type() in ATTACHED_MESSAGE_TYPES:
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0].as_bytes()
        return b""
    encoding = _header_text(part, "Content-Transfer-Encoding")
    return attachment_bytes(_payload_bytes(part), encoding)


def message_attachments(
    raw: bytes,
) -> list[tuple[AttachmentInfo, Callable[[], bytes]]]:
    """List a whole message's attachments, each with a function decoding it.

    For mail read whole (POP3's ``RETR``); the same parts, names and roles as
    the event's. Blocking (parsing megabytes): run it in the executor, and
    the decoders too. A decoder raises ``ValueError`` for undecodable
    content, and so does this for a message the parser cannot read (the
    standard library's parser recurses once per nesting level).
    """
    try:
        return _message_attachments(raw)
    except (RecursionError, LookupError, TypeError, AssertionError) as err:
        raise ValueError(f"unreadable message ({type(err).__name__})") from err


def _message_attachments(
    raw: bytes,
) -> list[tuple[AttachmentInfo, Callable[[], bytes]]]:
    msg = message_from_bytes(raw, policy=compat32)
    found: list[tuple[AttachmentInfo, Callable[[], bytes]]] = []
    for part in _single_parts(msg):
        filename = part.get_filename()
        disposition = _header_text(part, "Content-Disposition")
        ctype = part.get_content_type()
        role = part_role(ctype, disposition.split(";")[0].strip().lower(), filename)
        if role is PartRole.ATTACHMENT and len(found) < MAX_ATTACHMENTS:
            info = attachment_info(filename, ctype, _attached_size(part))
            found.append((info, partial(_part_content, part)))
    return found


def _walk_message(msg: Message) -> tuple[str, list[AttachmentInfo]]:
    """Find the best text and the attachments of a parsed message."""
    plain: str | None = None
    html: str | None = None
    attachments: list[AttachmentInfo] = []
    for part in _single_parts(msg):
        ctype = part.get_content_type()
        filename = part.get_filename()
        disposition = _header_text(part, "Content-Disposition")
        role = part_role(ctype, disposition.split(";")[0].strip().lower(), filename)
        if role is PartRole.ATTACHMENT:
            if len(attachments) < MAX_ATTACHMENTS:
                attachments.append(
                    attachment_info(filename, ctype, _attached_size(part))
                )
        elif (role is PartRole.PLAIN and plain is None) or (
            role is PartRole.HTML and html is None
        ):
            text = body_text(
                _payload_bytes(part),
                encoding=_header_text(part, "Content-Transfer-Encoding"),
                charset=part.get_content_charset(),
                subtype=ctype.partition("/")[2],
            )
            if role is PartRole.PLAIN:
                plain = text
            else:
                html = text
    return (plain if plain else html or ""), attachments


# -- building events -------------------------------------------------------


def parse_headers(raw: bytes) -> Message:
    """Parse a header block (or a whole message: the body is ignored).

    At most MAX_HEADER_BYTES are read: what follows is not headers a person
    wrote.
    """
    return BytesHeaderParser(policy=compat32).parsebytes(raw[:MAX_HEADER_BYTES])


def _auto_submitted(value: object) -> str | None:
    """Return the Auto-Submitted keyword; None for "no" or no header."""
    keyword = decode_header_value(value, MAX_NAME).split(";")[0].strip().lower()
    return None if keyword in ("", "no") else keyword


def event_from_parts(
    headers: Message,
    *,
    account: str,
    protocol: str,
    folder: str,
    uid: str,
    uidvalidity: int | None,
    text: str,
    size: int | None,
    attachments: list[AttachmentInfo],
    text_limit: int,
    include_headers: bool = False,
    internal_date: str | None = None,
) -> MailEvent:
    """Build an event from parsed headers and an already decoded text."""
    senders = _addresses(headers.get_all("From") or [])
    sender_name, sender = senders[0] if senders else (None, None)
    reply = _addresses(headers.get_all("Reply-To") or [])
    from_domain = sender.rsplit("@", 1)[1] if sender and "@" in sender else None
    auth, verified = authentication_results(
        headers.get("Authentication-Results"), from_domain
    )
    message_id = cap(decode_header_value(headers.get("Message-ID")), MAX_MESSAGE_ID)
    event = MailEvent(
        account=account,
        protocol=protocol,
        folder=folder,
        uid=uid,
        uidvalidity=uidvalidity,
        message_id=message_id or None,
        date=_iso_date(headers.get("Date")) or internal_date,
        sender=sender,
        sender_name=sender_name or None,
        to=[addr for _, addr in _addresses(headers.get_all("To") or [])],
        cc=[addr for _, addr in _addresses(headers.get_all("Cc") or [])],
        reply_to=reply[0][1] if reply else None,
        subject=cap(decode_header_value(headers.get("Subject")), MAX_SUBJECT),
        text=text[:text_limit],
        size=size,
        attachments=attachments,
        sender_verified=verified,
        authentication=auth,
        auto_submitted=_auto_submitted(headers.get("Auto-Submitted")),
        headers=_header_dict(headers) if include_headers else None,
    )
    return fit_event(event)


def event_from_message(
    raw: bytes,
    *,
    account: str,
    protocol: str,
    folder: str,
    uid: str,
    uidvalidity: int | None,
    size: int | None,
    text_limit: int,
    include_headers: bool = False,
) -> MailEvent:
    """Build an event from a whole or truncated raw message (POP3 ``TOP``)."""
    ref: dict[str, Any] = {
        "account": account,
        "protocol": protocol,
        "folder": folder,
        "uid": uid,
        "uidvalidity": uidvalidity,
        "size": size if size is not None else len(raw),
        "text_limit": text_limit,
        "include_headers": include_headers,
    }

    def build() -> MailEvent:
        msg = message_from_bytes(raw, policy=compat32)
        text, attachments = _walk_message(msg)
        return event_from_parts(msg, text=text, attachments=attachments, **ref)

    return guarded_event(build, header_block(raw), ref)


def header_block(raw: bytes) -> bytes:
    """Return the header block of a raw message (up to the first empty line)."""
    head = raw[:MAX_HEADER_BYTES]
    ends = [i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i >= 0]
    return head[: min(ends)] if ends else head


def guarded_event(
    build: Callable[[], MailEvent], header_bytes: bytes, ref: dict[str, Any]
) -> MailEvent:
    """Build one message's event; whatever goes wrong, still return an event.

    This is the one guard between a hostile mail and the account: an exception
    here must never stop a folder or a maildrop, so the event then carries what
    the headers alone give (or nothing but the UID), and a warning names the
    message. ``ref`` holds ``event_from_parts``'s keyword arguments but the
    headers, text and attachments.
    """
    try:
        return build()
    except Exception as err:  # any bug or hostile input
        _LOGGER.warning(
            "Message %s in %s of %s could not be read in full (%s: %s);"
            " its event carries what its headers give",
            ref["uid"],
            ref["folder"],
            ref["account"],
            type(err).__name__,
            cap(str(err), MAX_NAME),
        )
    for headers in (header_bytes, b""):
        try:
            return event_from_parts(
                parse_headers(headers), text="", attachments=[], **ref
            )
        except Exception:  # noqa: S112 - next, without the headers
            continue
    raise AssertionError("an event without headers cannot fail")  # pragma: no cover


def _header_dict(headers: Message) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers.items()[:MAX_HEADER_FIELDS]:
        out.setdefault(cap(name.lower(), MAX_NAME), []).append(
            decode_header_value(value, MAX_HEADER_FIELD_VALUE)
        )
    return out
