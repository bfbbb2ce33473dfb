"""Tolerant parsers for IMAP answers: FETCH, BODYSTRUCTURE, SEARCH, NAMESPACE, LIST.

Nothing here talks to a server: the functions take what aioimaplib hands back
(text lines as ``bytes``, literal contents as ``bytearray``, the tagged status
last) and never raise on a malformed answer. Also here: the fetched pieces of
one message and the event built from them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from ..bounds import MAX_ATTACHMENTS, MAX_MIME_PARTS
from ..message import (
    ATTACHED_MESSAGE_TYPES,
    AttachmentInfo,
    MailEvent,
    PartRole,
    attachment_info,
    body_text,
    decode_header_value,
    event_from_parts,
    guarded_event,
    parse_headers,
    part_role,
)
from .syntax import decode_mailbox

_LOGGER = logging.getLogger(__name__)

# Bytes of the text part fetched per message for an event.
MIN_TEXT_BYTES = 1024
MAX_TEXT_BYTES = 16 * 1024

Response = Any  # aioimaplib.Response: a (result, lines) named tuple


# -- a tolerant parser for IMAP data -------------------------------------------

_SPACE = frozenset(b" \t\r\n")
_LITERAL = re.compile(rb"~?\{(\d+)\+?\}\r\n")
_ATOM = re.compile(rb'(?:[^\s()\[\]"{]|\[[^\]]*\])+')
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)("?)', re.DOTALL)
_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)


def parse_data(data: bytes) -> list[Any]:
    """Parse IMAP data into nested lists of ``bytes`` (NIL is ``None``).

    Never raises: unbalanced parentheses are closed at the end, stray
    characters skipped, so a broken server answer still yields what it can.
    """
    stack: list[list[Any]] = [[]]
    pos, size = 0, len(data)
    while pos < size:
        char = data[pos]
        if char in _SPACE:
            pos += 1
        elif char == 0x28:  # (
            child: list[Any] = []
            stack[-1].append(child)
            stack.append(child)
            pos += 1
        elif char == 0x29:  # )
            if len(stack) > 1:
                stack.pop()
            pos += 1
        elif char == 0x22:  # "
            quoted = _QUOTED.match(data, pos)
            assert quoted is not None  # the pattern matches any opening quote
            stack[-1].append(_UNESCAPE.sub(rb"\1", quoted.group(1)))
            pos = quoted.end()
        elif (literal := _LITERAL.match(data, pos)) is not None:
            start = literal.end()
            end = start + int(literal.group(1))
            stack[-1].append(data[start:end])
            pos = end
        elif (atom := _ATOM.match(data, pos)) is not None:
            value = atom.group(0)
            stack[-1].append(None if value.upper() == b"NIL" else value)
            pos = atom.end()
        else:
            pos += 1
    return stack[0]


def response_data(lines: list[Any]) -> bytes:
    """Rebuild the wire data of an aioimaplib response (literals included).

    aioimaplib hands back text lines (``bytes``) and literal contents
    (``bytearray``) in order; the last line is the tagged status text.
    """
    out = bytearray()
    for line in lines[:-1]:
        if isinstance(line, bytearray):
            out += line
        else:
            out += bytes(line) + b"\r\n"
    return bytes(out)


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return ""


def _int(value: object) -> int | None:
    if isinstance(value, bytes | bytearray | str | int):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def parse_fetch(lines: list[Any]) -> dict[int, dict[str, Any]]:
    """Map UID -> {item name: value} from a FETCH response; items merged by UID."""
    tokens = parse_data(response_data(lines))
    result: dict[int, dict[str, Any]] = {}
    for index in range(len(tokens) - 2):
        if not (
            isinstance(tokens[index + 1], bytes)
            and tokens[index + 1].upper() == b"FETCH"
            and isinstance(tokens[index + 2], list)
        ):
            continue
        items = tokens[index + 2]
        data: dict[str, Any] = {}
        for pos in range(0, len(items) - 1, 2):
            key = items[pos]
            if isinstance(key, bytes):
                data[key.decode("ascii", "replace").upper()] = items[pos + 1]
        uid = _int(data.get("UID"))
        if uid is not None:
            result.setdefault(uid, {}).update(data)
    return result


def _section_data(item: dict[str, Any], section: str) -> bytes | None:
    """Return the data of ``BODY[section]`` (partial or not) in a fetched item."""
    prefix = f"BODY[{section}]"
    for key, value in item.items():
        if key == prefix or key.startswith(prefix + "<"):
            return bytes(value) if isinstance(value, bytes | bytearray) else b""
    return None


def parse_internaldate(value: object) -> datetime | None:
    """Parse ``"17-Jul-1996 02:44:25 -0700"``."""
    text = _text(value).strip()
    try:
        return datetime.strptime(text, "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


# -- BODYSTRUCTURE ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextPart:
    """Where a text part is and how to decode it."""

    section: str
    subtype: str
    charset: str | None
    encoding: str | None
    size: int


@dataclass(frozen=True, slots=True)
class EstimatedSize:
    """An attachment whose decoded size was estimated from its encoded octets."""

    index: int  # in Structure.attachments
    section: str
    octets: int
    encoding: str

    def plausible(self, decoded: int) -> bool:
        """Whether ``decoded`` can be the decoded size of these octets.

        Base64 carries 3 bytes per 4 characters, in lines of 40 to 76 characters
        plus CRLF in practice; other encodings never grow data more than 3 times.
        Dovecot (2.3.19 and 2.4.5) answers BINARY.SIZE wrongly for a large part
        followed by another (8157892 for 10 MB, though BINARY[] gives all 10 MB):
        such a figure is not taken.
        """
        if self.encoding == "base64":
            return self.octets * 0.7 - 3 <= decoded <= self.octets * 3 // 4
        return self.octets / 3 - 1 <= decoded <= self.octets


@dataclass(frozen=True, slots=True)
class PartRef:
    """Where an attachment is in its message, for fetching it alone."""

    section: str
    encoding: str | None
    octets: int  # as the server counts them, encoded


@dataclass(slots=True)
class Structure:
    """What BODYSTRUCTURE tells: the text parts to read and the attachments."""

    plain: TextPart | None = None
    html: TextPart | None = None
    attachments: list[AttachmentInfo] = field(default_factory=list)
    # Attachments whose size is only estimated: BODYSTRUCTURE counts encoded
    # octets, events give decoded sizes.
    estimated: list[EstimatedSize] = field(default_factory=list)
    # Where each attachment is, in the same order as ``attachments``.
    parts: list[PartRef] = field(default_factory=list)

    @property
    def text(self) -> TextPart | None:
        """The part an event's ``text`` comes from: plain text first."""
        return self.plain or self.html


def _params(value: object) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(value, list):
        for pos in range(0, len(value) - 1, 2):
            key = value[pos]
            if isinstance(key, bytes):
                out[key.decode("ascii", "replace").lower()] = _text(value[pos + 1])
    return out


def _param_value(params: dict[str, str], name: str) -> str | None:
    """Read a parameter, RFC 2231 (``name*``, ``name*0*``...) included."""
    if name in params:
        return decode_header_value(params[name])
    if f"{name}*" in params:
        return _rfc2231(params[f"{name}*"])
    pieces: list[str] = []
    encoded = False
    for index in range(64):
        if f"{name}*{index}*" in params:
            pieces.append(params[f"{name}*{index}*"])
            encoded = True
        elif f"{name}*{index}" in params:
            pieces.append(params[f"{name}*{index}"])
        else:
            break
    if not pieces:
        return None
    joined = "".join(pieces)
    return _rfc2231(joined) if encoded else joined


def _rfc2231(value: str) -> str:
    """Decode ``charset'lang'percent-encoded`` (RFC 2231), tolerating junk."""
    charset, lang_value = "utf-8", value
    if value.count("'") >= 2:
        charset, _, rest = value.partition("'")
        _, _, lang_value = rest.partition("'")
    raw = unquote_to_bytes(lang_value)
    try:
        return raw.decode(charset or "utf-8")
    except (LookupError, UnicodeDecodeError):
        return raw.decode("latin-1")


# Transfer encodings under which the encoded size is the decoded size.
_IDENTITY_ENCODINGS = frozenset({"", "7bit", "8bit", "binary"})


def _decoded_size(size: int, encoding: str | None) -> int:
    """Estimate the decoded size: base64 lines of 76 chars + CRLF carry 57 bytes.

    Only an estimate (padding and a short last line are not in the count);
    ``BINARY.SIZE`` gives the exact figure where the server has BINARY.
    """
    if (encoding or "").lower() == "base64":
        return size * 57 // 78
    return size


def parse_bodystructure(value: object) -> Structure:
    """Find the text parts and the attachments in a parsed BODYSTRUCTURE.

    Walked with a stack, not recursion: a hostile message nested a thousand
    levels deep is read like any other.
    """
    structure = Structure()
    pending: list[tuple[object, str]] = [(value, "")]
    seen = 0
    while pending and seen < MAX_MIME_PARTS:
        seen += 1
        node, prefix = pending.pop()
        if not isinstance(node, list) or not node:
            continue
        if isinstance(node[0], list):  # multipart: children, then the subtype
            children: list[object] = []
            for child in node:
                if not isinstance(child, list):
                    break
                children.append(child)
            # Pushed last-first, so parts are met in document order.
            for index in range(len(children), 0, -1):
                pending.append(
                    (children[index - 1], f"{prefix}.{index}" if prefix else str(index))
                )
            continue
        _leaf(node, prefix or "1", structure)
    return structure


def _leaf(node: list[Any], section: str, out: Structure) -> None:
    """Record one single part: a text part to read, an attachment, or nothing."""
    mtype = _text(node[0]).lower() or "application"
    subtype = _text(node[1] if len(node) > 1 else None).lower() or "octet-stream"
    params = _params(node[2] if len(node) > 2 else None)
    encoding = _text(node[5] if len(node) > 5 else None) or None
    size = _int(node[6] if len(node) > 6 else None) or 0
    ctype = f"{mtype}/{subtype}"
    # Extension data starts after the type-specific fields; the disposition
    # follows the MD5.
    if mtype == "text":
        ext = 8
    elif ctype in ATTACHED_MESSAGE_TYPES:
        ext = 10
    else:
        ext = 7
    disposition_field = node[ext + 1] if len(node) > ext + 1 else None
    disposition = ""
    disp_params: dict[str, str] = {}
    if isinstance(disposition_field, list) and disposition_field:
        disposition = _text(disposition_field[0]).lower()
        disp_params = _params(
            disposition_field[1] if len(disposition_field) > 1 else None
        )
    filename = _param_value(disp_params, "filename") or _param_value(params, "name")
    role = part_role(ctype, disposition, filename)
    if role is PartRole.ATTACHMENT:
        if len(out.attachments) >= MAX_ATTACHMENTS:
            return
        if (cte := (encoding or "").lower()) not in _IDENTITY_ENCODINGS:
            out.estimated.append(
                EstimatedSize(len(out.attachments), section, size, cte)
            )
        out.attachments.append(
            attachment_info(filename, ctype, _decoded_size(size, encoding))
        )
        out.parts.append(PartRef(section, encoding, size))
        return
    part = TextPart(section, subtype, params.get("charset") or None, encoding, size)
    if role is PartRole.PLAIN and out.plain is None:
        out.plain = part
    elif role is PartRole.HTML and out.html is None:
        out.html = part


# -- the fetched pieces of one message --------------------------------------------


@dataclass(slots=True)
class FetchedMessage:
    """What one metadata FETCH (plus the partial text fetch) returned."""

    uid: int
    flags: list[str]
    size: int | None
    internal_date: datetime | None
    header: bytes
    structure: Structure
    text: bytes | None = None


def fetched_message(uid: int, item: dict[str, Any]) -> FetchedMessage:
    """Collect one message's FETCH items; what is missing or broken stays empty."""
    flags = item.get("FLAGS")
    header = _section_data(item, "HEADER") or b""
    return FetchedMessage(
        uid=uid,
        flags=[_text(f) for f in flags] if isinstance(flags, list) else [],
        size=_int(item.get("RFC822.SIZE")),
        internal_date=parse_internaldate(item.get("INTERNALDATE")),
        header=header,
        structure=parse_bodystructure(item.get("BODYSTRUCTURE")),
    )


def _decode_part(data: bytes | None, part: TextPart | None, *, as_text: bool) -> str:
    """Decode a part; ``as_text`` turns HTML into text, otherwise markup stays."""
    if not data or part is None:
        return ""
    return body_text(
        data,
        encoding=part.encoding,
        charset=part.charset,
        subtype=part.subtype if as_text else "plain",
    )


# -- response helpers ---------------------------------------------------------


def _last_text(response: Response) -> str:
    lines = response.lines
    return _text(lines[-1]) if lines else ""


def _numbers(response: Response) -> list[int]:
    """Numbers of SEARCH answer lines (aioimaplib strips the ``SEARCH`` word)."""
    out: list[int] = []
    for line in response.lines[:-1]:
        if not isinstance(line, bytes):
            continue
        tokens = line.partition(b"(")[0].split()  # "(MODSEQ n)" is no UID
        # "3 EXISTS", "STATUS Work (...)": a notice that came during the
        # SEARCH, not its answer; its numbers are no UIDs.
        if any(not t.isdigit() and t.upper() != b"SEARCH" for t in tokens):
            continue
        out.extend(int(tok) for tok in tokens if tok.isdigit())
    return out


def parse_status(lines: list[Any]) -> dict[str, dict[str, int]]:
    """``STATUS name (UIDNEXT 5 ...)`` answers by folder (wire name, undecoded).

    With NOTIFY a server sends such answers for other folders at any time,
    one may arrive during our own STATUS: each is read for its own folder.
    """
    found: dict[str, dict[str, int]] = {}
    for line in lines[:-1]:  # the last is the tagged status line
        if not isinstance(line, bytes):
            continue
        match = _STATUS_LINE.match(line)
        if match is None:
            continue
        name = match.group("quoted")
        if name is not None:
            wire = re.sub(rb"\\(.)", rb"\1", name).decode("utf-8", "replace")
        else:
            wire = match.group("atom").decode("utf-8", "replace")
        items = match.group("items").split()
        values = {
            key.decode("ascii", "replace").upper(): int(value)
            for key, value in zip(items[::2], items[1::2], strict=False)
            if value.isdigit()
        }
        if values:
            found.setdefault(wire, {}).update(values)
    return found


# aioimaplib hands our own STATUS answers over without "* STATUS".
_STATUS_LINE = re.compile(
    rb'^(?:\*\s+)?(?:STATUS\s+)?(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<atom>[^\s(]+))'
    rb"\s*\((?P<items>[^)]*)\)",
    re.IGNORECASE,
)


def _response_codes(response: Response) -> dict[str, str]:
    """``OK [UIDVALIDITY 3]``-style codes of a response."""
    codes: dict[str, str] = {}
    for line in response.lines:
        if not isinstance(line, bytes):
            continue
        for match in re.finditer(rb"\[([A-Z-]+)(?: ([^\]]*))?\]", line):
            codes[match.group(1).decode()] = (match.group(2) or b"").decode(
                "ascii", "replace"
            )
    return codes


def _capabilities(response: Response) -> set[str]:
    for line in response.lines:
        if not isinstance(line, bytes):
            continue
        match = re.search(rb"(?:^|\[)CAPABILITY ([^\]]+)", line)
        if match:
            return set(match.group(1).decode("ascii", "replace").split())
    return set()


# -- NAMESPACE and LIST -------------------------------------------------------


@dataclass(frozen=True)
class Namespace:
    """Where the user's own folders live: Courier puts them under ``INBOX.``."""

    prefix: str  # decoded; "" at the root
    delimiter: str | None  # None: a flat server

    def folder(self, name: str) -> str:
        """Return the full name of a user's folder (``Sent`` -> ``INBOX.Sent``)."""
        prefix = self.prefix
        if prefix and self.delimiter and not prefix.endswith(self.delimiter):
            prefix += self.delimiter  # a prefix written without its delimiter
        if not prefix or name.upper() == "INBOX" or name.startswith(prefix):
            return name
        return prefix + name

    def relative(self, name: str) -> str:
        """Return a full name without the personal prefix (``INBOX.Sent`` -> ``Sent``)."""
        prefix = self.folder("")
        if prefix and name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix) :]
        return name


@dataclass(frozen=True)
class ListEntry:
    """One LIST answer: a folder (decoded), its delimiter and lower-case flags."""

    name: str
    delimiter: str | None
    flags: frozenset[str]


def _delimiter(value: object) -> str | None:
    text = _text(value)
    return text or None


def parse_namespace(lines: list[Any]) -> Namespace | None:
    """Return the first personal namespace of a NAMESPACE answer (RFC 2342), if any.

    The answer is three lists or NIL (personal, other users, shared); only
    the personal one says where our folders go.
    """
    tokens = parse_data(response_data(lines))
    while tokens and isinstance(tokens[0], bytes) and tokens[0].upper() == b"NAMESPACE":
        tokens = tokens[1:]
    personal = tokens[0] if tokens else None
    if not isinstance(personal, list) or not personal:
        return None
    first = personal[0]
    if not isinstance(first, list) or not first or not isinstance(first[0], bytes):
        return None
    delimiter = _delimiter(first[1]) if len(first) > 1 else None
    return Namespace(decode_mailbox(_text(first[0])), delimiter)


def parse_list(lines: list[Any]) -> list[ListEntry]:
    """Every ``(flags) delimiter name`` of a LIST answer, names decoded."""
    tokens = parse_data(response_data(lines))
    entries: list[ListEntry] = []
    index = 0
    while index + 2 < len(tokens):
        flags, delimiter, name = tokens[index : index + 3]
        if (
            isinstance(flags, list)
            and (delimiter is None or isinstance(delimiter, bytes))
            and isinstance(name, bytes)
        ):
            entries.append(
                ListEntry(
                    decode_mailbox(_text(name)),
                    _delimiter(delimiter),
                    frozenset(_text(f).lower() for f in flags),
                )
            )
            index += 3
        else:
            index += 1
    return entries


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def text_bytes_for(text_limit: int) -> int:
    """Bytes of the text part to fetch for ``text_limit`` characters."""
    if text_limit <= 0:
        return 0
    return max(MIN_TEXT_BYTES, min(text_limit * 4, MAX_TEXT_BYTES))


def build_event(
    message: FetchedMessage,
    *,
    account: str,
    folder: str,
    uidvalidity: int | None,
    text_limit: int,
    include_headers: bool,
) -> MailEvent:
    """Turn fetched pieces into the event payload; never raises on bad mail."""
    common: dict[str, Any] = {
        "account": account,
        "protocol": "imap",
        "folder": folder,
        "uid": str(message.uid),
        "uidvalidity": uidvalidity,
        "size": message.size,
        "text_limit": text_limit,
        "include_headers": include_headers,
        "internal_date": _iso(message.internal_date),
    }

    def build() -> MailEvent:
        part = message.structure.text
        text = _decode_part(message.text, part, as_text=True)
        return event_from_parts(
            parse_headers(message.header),
            text=text,
            attachments=list(message.structure.attachments),
            **common,
        )

    return guarded_event(build, message.header, common)
