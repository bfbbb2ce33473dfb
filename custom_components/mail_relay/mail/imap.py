"""IMAP: one client for actions and a watcher that turns new mail into events.

Built on aioimaplib's protocol object, but the parts that matter for a watcher
that must never hang or lose mail are ours: STARTTLS (aioimaplib has none),
LOGIN without the password ever entering a log or an exception text, timeouts
on every wait, pending commands failed at once when the connection drops
(aioimaplib would leave them waiting forever after a BYE), and a tolerant
parser for FETCH responses and BODYSTRUCTURE. This is the one module that
touches aioimaplib's private names (``_untagged_response``, a command's
``_event`` and ``_exception``); hosts see the wire through the public trace
hook (``trace``), with the LOGIN password masked where the line is built.

Messages are tracked by UID and UIDVALIDITY with a high-water mark: each
change runs ``UID SEARCH UID mark+1:*`` and fetches headers, structure and
only the first bytes of the text part; attachments are never downloaded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import re
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from aioimaplib import aioimaplib

from .errors import (
    AuthError,
    CertificateError,
    ConnectError,
    MailError,
    MailTimeoutError,
    MessageNotFoundError,
    OAuthRequiredError,
    ProtocolError,
    StartTlsUnavailableError,
    TlsError,
)
from .message import (
    Attachment,
    MailEvent,
    body_text,
    decode_header_value,
    event_from_parts,
    html_to_text,
    parse_headers,
)
from .models import Security, ServerSettings
from .tls import create_ssl_context, shrink_read_buffer
from .trace import MASK, RECV, SEND, Trace

_LOGGER = logging.getLogger(__name__)

# UIDs per FETCH/STORE command: keeps command lines and responses bounded.
BATCH_SIZE = 100
# Bytes of the text part fetched per message for an event.
MIN_TEXT_BYTES = 1024
MAX_TEXT_BYTES = 16 * 1024
# Bytes of each text part fetched for the ``fetch`` action.
FULL_TEXT_BYTES = 1024 * 1024

Response = Any  # aioimaplib.Response: a (result, lines) named tuple
Command = Any  # aioimaplib.Command


# -- state shared with the host ----------------------------------------------


@dataclass
class FolderState:
    """Where the watcher stands in one folder; the host persists it (``asdict``)."""

    uidvalidity: int | None
    last_uid: int  # highest UID already reported (UIDNEXT-1 at first start)


@dataclass
class WatchStatus:
    """What the host shows: connection, unread count, push in use, last error."""

    connected: bool
    unread: int | None
    idle: bool
    last_error: str | None


# -- small IMAP syntax helpers ---------------------------------------------------


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


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


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


@dataclass(slots=True)
class Structure:
    """What BODYSTRUCTURE tells: the text parts to read and the attachments."""

    plain: TextPart | None = None
    html: TextPart | None = None
    attachments: list[Attachment] = field(default_factory=list)
    # Attachments whose size is only estimated: BODYSTRUCTURE counts encoded
    # octets, events give decoded sizes.
    estimated: list[EstimatedSize] = field(default_factory=list)

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
    """Find the text parts and the attachments in a parsed BODYSTRUCTURE."""
    structure = Structure()
    _walk_structure(value, "", structure)
    return structure


def _walk_structure(node: object, prefix: str, out: Structure) -> None:
    if not isinstance(node, list) or not node:
        return
    if isinstance(node[0], list):  # multipart: children, then the subtype
        children = []
        for child in node:
            if not isinstance(child, list):
                break
            children.append(child)
        for index, child in enumerate(children, 1):
            _walk_structure(child, f"{prefix}.{index}" if prefix else str(index), out)
        return
    section = prefix or "1"
    mtype = _text(node[0]).lower() or "application"
    subtype = _text(node[1] if len(node) > 1 else None).lower() or "octet-stream"
    params = _params(node[2] if len(node) > 2 else None)
    encoding = _text(node[5] if len(node) > 5 else None) or None
    size = _int(node[6] if len(node) > 6 else None) or 0
    # Extension data starts after the type-specific fields; the disposition
    # follows the MD5.
    if mtype == "text":
        ext = 8
    elif mtype == "message" and subtype in {"rfc822", "global"}:
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
    ctype = f"{mtype}/{subtype}"
    is_message = mtype == "message" and subtype in {"rfc822", "global"}
    if disposition == "attachment" or (filename and mtype != "text") or is_message:
        if (cte := (encoding or "").lower()) not in _IDENTITY_ENCODINGS:
            out.estimated.append(
                EstimatedSize(len(out.attachments), section, size, cte)
            )
        out.attachments.append(
            Attachment(filename or "unnamed", ctype, _decoded_size(size, encoding))
        )
        return
    if mtype != "text":
        return
    part = TextPart(section, subtype, params.get("charset") or None, encoding, size)
    if subtype == "plain" and out.plain is None:
        out.plain = part
    elif subtype == "html" and out.html is None:
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


def _fetched(uid: int, item: dict[str, Any]) -> FetchedMessage:
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


# -- the protocol object ----------------------------------------------------------

_NEW_MAIL = re.compile(rb"\*?\s*\d+\s+(EXISTS|RECENT)\b", re.IGNORECASE)
_CHANGE = re.compile(rb"\*?\s*(\d+\s+(EXISTS|RECENT|EXPUNGE|FETCH)\b|VANISHED\b)", re.I)
_BYE = re.compile(rb"\*?\s*BYE\b", re.IGNORECASE)


class _ConnectionLostError(Exception):
    """Fails commands still waiting when the connection drops."""


class _Protocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]
    """aioimaplib's protocol, tracing the wire and noting new-mail hints."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_lost: Callable[[Exception | None], None],
        trace: Trace | None,
    ) -> None:
        super().__init__(loop, on_lost)
        self.trace = trace
        self.bytes_received = 0
        # Set when the server announced new mail outside IDLE (aioimaplib drops
        # such untagged answers); the watcher searches again before idling.
        self.new_mail_hint = False

    def data_received(self, d: bytes) -> None:
        self.bytes_received += len(d)
        if self.trace is not None:
            self.trace("imap", RECV, d)
        super().data_received(d)

    def send(self, line: str, scrub: str | None = None) -> None:
        """Send a command line (never one with credentials: see ``_login``)."""
        if self.trace is not None:
            self.trace("imap", SEND, line.encode() + b"\r\n")
        super().send(line, scrub)

    def _untagged_response(self, line: bytes) -> Any:  # noqa: ANN401
        if _NEW_MAIL.match(line):
            self.new_mail_hint = True
            if (
                self.pending_sync_command is None
                and "NOOP" not in self.pending_async_commands
            ):
                return None  # noted; aioimaplib would log it as ignored
        return super()._untagged_response(line)


# Where mail clients keep sent mail, when the server flags none \Sent.
SENT_FOLDER_NAMES = (
    "Sent",
    "Sent Items",
    "Sent Messages",
    "Sent Mail",
    "INBOX.Sent",
    "Envoyés",
    "Messages envoyés",
    "Éléments envoyés",
)


# -- the client -------------------------------------------------------------


class ImapClient:
    """One authenticated IMAP connection, for the watcher or for actions.

    Commands are serialised by a lock. Do not share an instance with a running
    watcher: the watcher keeps its folder selected and sits in IDLE.
    """

    def __init__(
        self,
        settings: ServerSettings,
        *,
        ssl_context: ssl.SSLContext | None,
        timeout: float = 30.0,
        trace: Trace | None = None,
    ) -> None:
        """Prepare; ``connect()`` opens the connection; ``trace``: see ``trace``."""
        self.settings = settings
        self.timeout = timeout
        self.capabilities: set[str] = set()
        self.selected: str | None = None
        self.uidvalidity: int | None = None
        self.idle_rounds = 0  # IDLE commands issued, for diagnostics and tests
        self._ssl_context = ssl_context
        self._trace = trace
        self._proto: _Protocol | None = None
        self._lost = asyncio.Event()
        self._broken = False
        self._lock = asyncio.Lock()

    # -- connection -------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the connection is up and usable."""
        return self._proto is not None and not self._broken and not self._lost.is_set()

    @property
    def bytes_received(self) -> int:
        """Bytes the server sent on this connection (after TLS decryption)."""
        return self._proto.bytes_received if self._proto is not None else 0

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            # Blocking (reads the trust store); hosts pass a prepared context.
            self._ssl_context = create_ssl_context(verify=self.settings.verify_tls)
        return self._ssl_context

    async def connect(self) -> None:
        """Connect, secure the connection as configured, and log in.

        STARTTLS fails closed: when the server does not offer it,
        ``StartTlsUnavailableError`` is raised before any credential is sent.
        """
        settings = self.settings
        loop = asyncio.get_running_loop()
        proto = _Protocol(loop, lambda _exc: None, self._trace)
        proto.conn_lost_cb = lambda exc: self._connection_lost(proto, exc)
        self._proto = proto
        self._lost.clear()
        self._broken = False
        implicit = settings.security is Security.SSL
        try:
            with self._errors("connect"):
                async with asyncio.timeout(self.timeout):
                    transport, _ = await loop.create_connection(
                        lambda: proto,
                        settings.host,
                        settings.port,
                        ssl=self._context() if implicit else None,
                    )
                if implicit:
                    shrink_read_buffer(transport)
                await self._wait_greeting(proto)
                if settings.security is Security.STARTTLS:
                    await self._starttls(proto)
                if proto.state == aioimaplib.NONAUTH:
                    await self._login(proto)
                self.capabilities = {c.upper() for c in proto.capabilities}
        except BaseException:
            self._abort()
            raise
        _LOGGER.debug(
            "Logged in to %s:%s as %s", settings.host, settings.port, settings.username
        )

    async def _wait_greeting(self, proto: _Protocol) -> None:
        waiter = asyncio.ensure_future(proto.wait("AUTH|NONAUTH"))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                {waiter, lost},
                timeout=self.timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiter.cancel()
            lost.cancel()
        if waiter in done:
            return
        if lost in done:
            raise ConnectError("the server closed the connection before its greeting")
        raise MailTimeoutError("no greeting from the server")

    async def _starttls(self, proto: _Protocol) -> None:
        if "STARTTLS" not in {c.upper() for c in proto.capabilities}:
            raise StartTlsUnavailableError(
                "the server does not offer STARTTLS; not sending the password"
            )
        response = await self._execute(self._command("STARTTLS"))
        if response.result != "OK":
            raise StartTlsUnavailableError(
                f"the server refused STARTTLS: {_last_text(response)}"
            )
        loop = asyncio.get_running_loop()
        # Anything the server sent after its OK arrived in clear text: drop it.
        proto.incomplete_line = b""
        transport = await loop.start_tls(
            proto.transport,
            proto,
            self._context(),
            server_hostname=self.settings.host,
            ssl_handshake_timeout=self.timeout,
        )
        proto.transport = transport
        shrink_read_buffer(transport)
        # Capabilities seen before TLS must be forgotten (RFC 3501 6.2.1).
        async with asyncio.timeout(self.timeout):
            await proto.capability()

    async def _login(self, proto: _Protocol) -> None:
        settings = self.settings
        if any(c in settings.password + settings.username for c in "\r\n\0"):
            raise AuthError("the user name or password contains a line break")
        caps = {c.upper() for c in proto.capabilities}
        if "LOGINDISABLED" in caps:
            if caps & {"AUTH=XOAUTH2", "AUTH=OAUTHBEARER"}:
                raise OAuthRequiredError("the server accepts only OAuth2 sign-in")
            raise AuthError("the server refuses password login on this connection")
        # Sent by hand so that the password is in no Command object: aioimaplib
        # puts command arguments in log lines and exception texts.
        command = aioimaplib.Command(
            "LOGIN", proto.new_tag(), loop=proto.loop, timeout=self.timeout
        )
        proto.pending_sync_command = command
        start = f"{command.tag} LOGIN {self._login_arg(settings.username, caps)} "
        if self._trace is not None:
            self._trace("imap", SEND, f"{start}{MASK}\r\n".encode())
        line = f"{start}{self._login_arg(settings.password, caps)}\r\n"
        proto.transport.write(line.encode())
        with self._errors("login"):
            async with asyncio.timeout(self.timeout):
                await command.wait()
        response = command.response
        if response.result != "OK":
            text = _last_text(response)
            if "[UNAVAILABLE]" in text.upper():
                raise ConnectError(f"server unavailable: {text}")
            if re.search(r"oauth|web login required", text, re.IGNORECASE):
                raise OAuthRequiredError(text)
            raise AuthError(text or "login refused")
        proto.state = aioimaplib.AUTH
        caps_after = _capabilities(response)
        if caps_after:
            proto.capabilities = caps_after
        else:
            with self._errors("capability"):
                async with asyncio.timeout(self.timeout):
                    await proto.capability()

    @staticmethod
    def _login_arg(value: str, caps: set[str]) -> str:
        if value.isascii() or "LITERAL+" not in caps:
            return quote(value)
        return "{%d+}\r\n%s" % (len(value.encode()), value)  # noqa: UP031

    def _connection_lost(self, proto: _Protocol, exc: Exception | None) -> None:
        """Wake every waiter at once: aioimaplib would leave them hanging."""
        if proto is self._proto:
            self._broken = True
            self._lost.set()
        _LOGGER.debug("Connection to %s lost: %s", self.settings.host, exc)
        error = _ConnectionLostError(str(exc) if exc else "connection closed")
        pending = [proto.pending_sync_command, *proto.pending_async_commands.values()]
        for command in pending:
            if command is not None and not command._event.is_set():
                command._exception = error
                command.close(b"connection lost", "BYE")
        proto.idle_queue.put_nowait([b"BYE connection lost"])

    def _abort(self) -> None:
        self._broken = True
        proto = self._proto
        if proto is not None and proto.transport is not None:
            proto.transport.abort()

    async def logout(self) -> None:
        """Log out and close; always safe to call, never raises."""
        proto = self._proto
        if proto is None:
            return
        try:
            if self.connected and proto.state != aioimaplib.STARTED:
                if proto.has_pending_idle_command():
                    proto.idle_done()
                async with asyncio.timeout(min(self.timeout, 5.0)):
                    await proto.execute(
                        aioimaplib.Command("LOGOUT", proto.new_tag(), loop=proto.loop)
                    )
                    # The server closes after BYE; wait so TLS shuts down cleanly.
                    await self._lost.wait()
        except Exception as err:  # logout must never fail
            _LOGGER.debug("Logout from %s: %s", self.settings.host, err)
        finally:
            self._abort()
            self._proto = None
            self.selected = None

    # -- command plumbing ---------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Map transport and aioimaplib failures onto mail.errors."""
        try:
            yield
        except MailError:
            raise
        except ssl.SSLCertVerificationError as err:
            self._abort()
            raise CertificateError(err.verify_message or str(err)) from None
        except ssl.SSLError as err:
            self._abort()
            raise TlsError(str(err)) from None
        except (TimeoutError, aioimaplib.CommandTimeout):
            self._abort()
            raise MailTimeoutError(f"{what}: no answer from the server") from None
        except _ConnectionLostError as err:
            self._abort()
            raise ConnectError(f"{what}: connection lost ({err})") from None
        except OSError as err:
            self._abort()
            raise ConnectError(f"{what}: {err.strerror or err}") from None
        except aioimaplib.AioImapException as err:
            self._abort()
            raise ProtocolError(f"{what}: {err}") from None

    def _require(self) -> _Protocol:
        if self._proto is None or not self.connected:
            raise ConnectError("not connected")
        return self._proto

    async def _execute(
        self, command: Command, *, deadline: float | None = None
    ) -> Response:
        proto = self._require()
        with self._errors(command.name):
            async with asyncio.timeout(deadline or self.timeout * 4):
                return await proto.execute(command)

    def _command(self, name: str, *args: str, **kwargs: str) -> Command:
        proto = self._require()
        # ``timeout`` is aioimaplib's inactivity timer: reset by every answer line.
        return aioimaplib.Command(
            name,
            proto.new_tag(),
            *args,
            loop=proto.loop,
            timeout=self.timeout,
            **kwargs,
        )

    async def _ok(self, command: Command) -> Response:
        response = await self._execute(command)
        if response.result != "OK":
            raise ProtocolError(f"{command.name}: {_last_text(response)}")
        return response

    # -- folders ------------------------------------------------------------

    async def select(self, folder: str, readonly: bool = False) -> tuple[int, int]:
        """Open a folder; return (UIDVALIDITY, UIDNEXT)."""
        async with self._lock:
            name = "EXAMINE" if readonly else "SELECT"
            response = await self._execute(self._command(name, mailbox_arg(folder)))
            if response.result != "OK":
                self.selected = None
                raise ProtocolError(
                    f"cannot open folder {folder!r}: {_last_text(response)}"
                )
            proto = self._require()
            proto.state = aioimaplib.SELECTED  # aioimaplib only knows SELECT
            codes = _response_codes(response)
            uidvalidity = _int(codes.get("UIDVALIDITY"))
            uidnext = _int(codes.get("UIDNEXT"))
            self.selected = folder
            if uidnext is None:
                uidnext = await self._uidnext_by_search()
            self.uidvalidity = uidvalidity or 0
            return self.uidvalidity, uidnext

    async def _uidnext_by_search(self) -> int:
        """For servers that leave UIDNEXT out of SELECT."""
        response = await self._ok(self._command("SEARCH", "UID", "1:*", prefix="UID"))
        return max(_numbers(response), default=0) + 1

    async def _folders_with_flags(self) -> list[tuple[str, set[str]]]:
        """Return the selectable folders, decoded, with their lower-case flags."""
        async with self._lock:
            response = await self._ok(self._command("LIST", '""', '"*"'))
        tokens = parse_data(response_data(response.lines))
        folders: list[tuple[str, set[str]]] = []
        # Each answer is (flags) delimiter name.
        for index in range(len(tokens) - 2):
            flags, name = tokens[index], tokens[index + 2]
            if not isinstance(flags, list) or not isinstance(name, bytes):
                continue
            lowered = {_text(f).lower() for f in flags}
            if {"\\noselect", "\\nonexistent"} & lowered:
                continue
            folders.append((decode_mailbox(_text(name)), lowered))
        return folders

    async def list_folders(self) -> list[str]:
        """Names of the folders that can be selected, decoded."""
        return [name for name, _ in await self._folders_with_flags()]

    async def sent_folder(self) -> str:
        r"""Return the folder mail clients keep sent mail in; create it if missing.

        The server's SPECIAL-USE ``\Sent`` flag (RFC 6154) wins; then the
        usual names, French ones included; else a new "Sent".
        """
        folders = await self._folders_with_flags()
        for name, flags in folders:
            if "\\sent" in flags:
                return name
        by_name = {name.casefold(): name for name, _ in folders}
        for usual in SENT_FOLDER_NAMES:
            if usual.casefold() in by_name:
                return by_name[usual.casefold()]
        await self.create_folder("Sent")
        return "Sent"

    async def append(self, folder: str, message: bytes) -> None:
        """Store a copy of a message (marked read) in a folder."""
        async with self._lock:
            proto = self._require()
            command = self._command(
                "APPEND", mailbox_arg(folder), "(\\Seen)", f"{{{len(message)}}}"
            )
            # aioimaplib sends this literal when the server asks for it.
            proto.literal_data = message
            await self._ok(command)

    async def create_folder(self, name: str) -> None:
        """Create a folder (tests and setup helpers)."""
        async with self._lock:
            await self._ok(self._command("CREATE", mailbox_arg(name)))

    # -- searching and fetching ----------------------------------------------

    async def search_since(self, last_uid: int) -> list[int]:
        """UIDs above the mark, ascending.

        ``n:*`` always matches the highest UID, even below ``n``: filter.
        """
        async with self._lock:
            response = await self._ok(
                self._command("SEARCH", "UID", f"{last_uid + 1}:*", prefix="UID")
            )
        return sorted(uid for uid in set(_numbers(response)) if uid > last_uid)

    async def existing(self, uids: list[int]) -> set[int]:
        """Which of these UIDs exist in the selected folder."""
        if not uids:
            return set()
        async with self._lock:
            response = await self._ok(
                self._command("SEARCH", "UID", uid_set(uids), prefix="UID")
            )
        return set(_numbers(response)) & set(uids)

    async def unread_count(self) -> int:
        """Unseen messages in the selected folder (ESEARCH COUNT when offered)."""
        async with self._lock:
            if "ESEARCH" in self.capabilities:
                response = await self._ok(
                    self._command(
                        "SEARCH",
                        "RETURN",
                        "(COUNT)",
                        "UNSEEN",
                        untagged_resp_name="ESEARCH",
                    )
                )
                match = re.search(rb"\bCOUNT\s+(\d+)", response_data(response.lines))
                return int(match.group(1)) if match else 0
            response = await self._ok(self._command("SEARCH", "UNSEEN"))
            return len(_numbers(response))

    async def noop(self) -> None:
        """Ask for pending updates; proves the connection is alive."""
        async with self._lock:
            await self._ok(self._command("NOOP"))

    async def wait_closed(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True as soon as the connection drops."""
        try:
            async with asyncio.timeout(seconds):
                await self._lost.wait()
        except TimeoutError:
            return False
        return True

    def take_new_mail_hint(self) -> bool:
        """Whether the server announced mail since the last call."""
        proto = self._proto
        if proto is None:
            return False
        hint, proto.new_mail_hint = proto.new_mail_hint, False
        return bool(hint)

    async def _uid_fetch(
        self, uids: list[int], items: str
    ) -> dict[int, dict[str, Any]]:
        proto = self._require()
        command = aioimaplib.FetchCommand(
            proto.new_tag(),
            uid_set(uids),
            items,
            prefix="UID",
            loop=proto.loop,
            timeout=self.timeout,
        )
        # A large batch may take a while; the inactivity timer still applies.
        response = await self._execute(command, deadline=self.timeout * 20)
        if response.result != "OK":
            raise ProtocolError(f"FETCH: {_last_text(response)}")
        return parse_fetch(response.lines)

    async def fetch_messages(
        self, uids: list[int], *, text_bytes: int
    ) -> dict[int, FetchedMessage]:
        """Headers, flags, size, date and structure, plus the text's first bytes.

        Part 1 is asked for in the same command (for single-part mail and
        ``multipart/alternative`` it is the text); messages whose text lives
        elsewhere get one more FETCH per section. Attachments never travel.
        """
        result: dict[int, FetchedMessage] = {}
        for batch in _chunks(sorted(set(uids)), BATCH_SIZE):
            items = "UID FLAGS RFC822.SIZE INTERNALDATE BODYSTRUCTURE BODY.PEEK[HEADER]"
            if text_bytes > 0:
                items += f" BODY.PEEK[1]<0.{text_bytes}>"
            async with self._lock:
                raw = await self._uid_fetch(batch, f"({items})")
            later: dict[tuple[str, int], list[int]] = {}
            for uid, item in raw.items():
                if uid not in batch:
                    continue  # an unsolicited FETCH (flag change) of another message
                message = _fetched(uid, item)
                result[uid] = message
                part = message.structure.text
                if part is None or text_bytes <= 0:
                    continue
                # HTML spends many bytes on markup and style sheets: allow more.
                wanted = (
                    max(text_bytes, MAX_TEXT_BYTES)
                    if part.subtype == "html"
                    else text_bytes
                )
                data = _section_data(item, "1") if part.section == "1" else None
                if data is not None and (
                    len(data) < text_bytes or wanted == text_bytes
                ):
                    message.text = data
                else:
                    later.setdefault((part.section, wanted), []).append(uid)
            for (section, size), section_uids in later.items():
                async with self._lock:
                    raw = await self._uid_fetch(
                        section_uids, f"(UID BODY.PEEK[{section}]<0.{size}>)"
                    )
                for uid, item in raw.items():
                    if uid in result and uid in section_uids:
                        result[uid].text = _section_data(item, section)
        if "BINARY" in self.capabilities:
            await self._exact_attachment_sizes(result)
        return result

    async def _exact_attachment_sizes(
        self, messages: dict[int, FetchedMessage]
    ) -> None:
        """Replace estimated attachment sizes by the decoded ones (RFC 3516).

        One FETCH per set of sections (usually one for a whole batch); the
        server decodes, nothing travels but the numbers. A server that cannot
        decode a part answers NO, and an impossible figure is not taken: the
        estimates stay.
        """
        groups: dict[tuple[str, ...], list[int]] = {}
        for uid, message in messages.items():
            if message.structure.estimated:
                sections = tuple(e.section for e in message.structure.estimated)
                groups.setdefault(sections, []).append(uid)
        for sections, uids in groups.items():
            items = " ".join(f"BINARY.SIZE[{section}]" for section in sections)
            try:
                async with self._lock:
                    raw = await self._uid_fetch(uids, f"(UID {items})")
            except ProtocolError as err:
                _LOGGER.debug("BINARY.SIZE refused, sizes stay estimated: %s", err)
                continue
            for uid, item in raw.items():
                if uid not in uids:
                    continue
                structure = messages[uid].structure
                for estimate in structure.estimated:
                    size = _int(item.get(f"BINARY.SIZE[{estimate.section}]"))
                    if size is not None and estimate.plausible(size):
                        attachments = structure.attachments
                        attachments[estimate.index] = replace(
                            attachments[estimate.index], size=size
                        )

    async def fetch_events(
        self,
        uids: list[int],
        *,
        account: str,
        folder: str,
        uidvalidity: int,
        text_limit: int,
        include_headers: bool,
    ) -> list[MailEvent]:
        """Events for these UIDs in UID order (vanished UIDs are left out)."""
        fetched = await self.fetch_messages(uids, text_bytes=text_bytes_for(text_limit))
        return [
            build_event(
                fetched[uid],
                account=account,
                folder=folder,
                uidvalidity=uidvalidity,
                text_limit=text_limit,
                include_headers=include_headers,
            )
            for uid in sorted(fetched)
        ]

    async def fetch_full(self, uid: int) -> dict[str, Any]:
        """Return the whole message for the ``fetch`` action, attachments listed only.

        Text and HTML parts are read up to 1 MB each; attachment contents are
        not downloaded.
        """
        fetched = await self.fetch_messages([uid], text_bytes=0)
        message = fetched.get(uid)
        if message is None:
            raise MessageNotFoundError(f"no message with UID {uid} in {self.selected}")
        structure = message.structure
        parts = [p for p in (structure.plain, structure.html) if p is not None]
        data: dict[str, bytes | None] = {}
        if parts:
            items = " ".join(
                f"BODY.PEEK[{p.section}]<0.{FULL_TEXT_BYTES}>" for p in parts
            )
            async with self._lock:
                raw = await self._uid_fetch([uid], f"(UID {items})")
            item = raw.get(uid, {})
            data = {p.section: _section_data(item, p.section) for p in parts}
        plain = structure.plain
        html_part = structure.html
        text = _decode_part(
            data.get(plain.section) if plain else None, plain, as_text=True
        )
        html = _decode_part(
            data.get(html_part.section) if html_part else None, html_part, as_text=False
        )
        if not text and html:
            text = html_to_text(html)
        headers = parse_headers(message.header)
        event = event_from_parts(
            headers,
            account=self.settings.username,
            protocol="imap",
            folder=self.selected or "",
            uid=str(uid),
            uidvalidity=self.uidvalidity,
            text="",
            size=message.size,
            attachments=list(structure.attachments),
            text_limit=0,
            include_headers=False,
            internal_date=_iso(message.internal_date),
        )
        result = event.as_dict()
        del result["account"], result["protocol"], result["text"]
        header_map: dict[str, list[str]] = {}
        for name, value in headers.items():
            header_map.setdefault(name.lower(), []).append(decode_header_value(value))
        result |= {
            "text": text,
            "html": html or None,
            "headers": header_map,
            "flags": message.flags,
            "seen": "\\Seen" in message.flags,
        }
        return result

    # -- changing messages ---------------------------------------------------

    async def _require_uids(self, uids: list[int]) -> list[int]:
        wanted = sorted(set(uids))
        if not wanted:
            raise ValueError("no UIDs given")
        found = await self.existing(wanted)
        missing = [uid for uid in wanted if uid not in found]
        if missing:
            raise MessageNotFoundError(
                f"no message with UID {', '.join(map(str, missing))} in {self.selected}"
            )
        return wanted

    async def _store(self, uids: list[int], flags: str) -> None:
        for batch in _chunks(uids, BATCH_SIZE):
            async with self._lock:
                await self._ok(
                    self._command(
                        "STORE",
                        uid_set(batch),
                        "+FLAGS.SILENT",
                        flags,
                        prefix="UID",
                        untagged_resp_name="FETCH",
                    )
                )

    async def mark_seen(self, uids: list[int], *, check: bool = True) -> None:
        r"""Set ``\Seen``; unknown UIDs raise ``MessageNotFoundError`` when checked."""
        wanted = await self._require_uids(uids) if check else sorted(set(uids))
        if wanted:
            await self._store(wanted, "(\\Seen)")

    async def _expunge(self, uids: list[int]) -> None:
        for batch in _chunks(uids, BATCH_SIZE):
            async with self._lock:
                if "UIDPLUS" in self.capabilities:
                    await self._ok(
                        self._command("EXPUNGE", uid_set(batch), prefix="UID")
                    )
                else:
                    # Without UIDPLUS this also removes other \Deleted mail.
                    await self._ok(self._command("EXPUNGE"))

    async def move(self, uids: list[int], target: str) -> None:
        r"""MOVE when offered, else COPY + ``\Deleted`` + (UID) EXPUNGE."""
        wanted = await self._require_uids(uids)
        for batch in _chunks(wanted, BATCH_SIZE):
            if "MOVE" in self.capabilities:
                async with self._lock:
                    await self._ok(
                        self._command(
                            "MOVE", uid_set(batch), mailbox_arg(target), prefix="UID"
                        )
                    )
                continue
            async with self._lock:
                await self._ok(
                    self._command(
                        "COPY", uid_set(batch), mailbox_arg(target), prefix="UID"
                    )
                )
            await self._store(batch, "(\\Deleted)")
            await self._expunge(batch)

    async def delete(self, uids: list[int]) -> None:
        r"""Flag ``\Deleted`` and expunge these messages."""
        wanted = await self._require_uids(uids)
        await self._store(wanted, "(\\Deleted)")
        await self._expunge(wanted)

    # -- IDLE -------------------------------------------------------------

    async def idle_wait(self, renew: float) -> bool:
        """Sit in IDLE until the folder changes or ``renew`` seconds pass.

        Returns whether the server reported a change. DONE must be answered
        within the timeout, otherwise the connection is declared dead: a
        silent network drop cannot keep the watcher waiting forever.
        """
        proto = self._require()
        if "IDLE" not in self.capabilities:
            raise ProtocolError("the server does not offer IDLE")
        while not proto.idle_queue.empty():
            proto.idle_queue.get_nowait()
        async with self._lock:
            self.idle_rounds += 1
            idle_task = asyncio.ensure_future(proto.idle())
            try:
                with self._errors("IDLE"):
                    changed = await self._idle_session(proto, idle_task, renew)
            except BaseException:
                if not idle_task.done():
                    idle_task.cancel()
                elif not idle_task.cancelled():
                    idle_task.exception()  # retrieved: the error raised here says it
                self._abort()
                raise
        return changed

    async def _idle_session(
        self, proto: _Protocol, idle_task: asyncio.Future[Any], renew: float
    ) -> bool:
        ack = asyncio.ensure_future(proto.wait_for_idle_response())
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.wait(
                    {idle_task, ack}, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            ack.cancel()
        if idle_task.done():
            response = idle_task.result()
            raise ProtocolError(f"IDLE refused: {_last_text(response)}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + renew
        changed = False
        while not changed:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    lines = await proto.idle_queue.get()
            except TimeoutError:
                break
            for line in lines:
                if not isinstance(line, bytes):
                    continue
                if _BYE.match(line):
                    raise ConnectError(f"server said {_text(line)}")
                if _CHANGE.match(line):
                    changed = True
        proto.idle_done()
        try:
            async with asyncio.timeout(self.timeout):
                response = await idle_task
        except TimeoutError:
            raise MailTimeoutError("no answer to DONE: connection is dead") from None
        if response.result != "OK":
            raise ProtocolError(f"IDLE ended with {_last_text(response)}")
        return changed


# -- response helpers ---------------------------------------------------------


def _last_text(response: Response) -> str:
    lines = response.lines
    return _text(lines[-1]) if lines else ""


def _numbers(response: Response) -> list[int]:
    """Numbers of SEARCH answer lines (aioimaplib strips the ``SEARCH`` word)."""
    out: list[int] = []
    for line in response.lines[:-1]:
        if isinstance(line, bytes):
            out.extend(int(tok) for tok in line.split() if tok.isdigit())
    return out


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
    try:
        part = message.structure.text
        text = _decode_part(message.text, part, as_text=True)
        return event_from_parts(
            parse_headers(message.header),
            text=text,
            attachments=list(message.structure.attachments),
            **common,
        )
    except Exception:  # a broken message still yields an event
        _LOGGER.exception("Could not parse message UID %s", message.uid)
        return event_from_parts(parse_headers(b""), text="", attachments=[], **common)


# -- the watcher ---------------------------------------------------------------

# Errors the host must act on (reauth, settings): retrying cannot fix them.
FATAL_ERRORS: tuple[type[MailError], ...] = (
    AuthError,
    StartTlsUnavailableError,
    CertificateError,
)


class ImapWatcher:
    """Watch one folder: exactly one ``on_message`` per new message.

    The high-water mark advances (and ``on_state`` runs) after each message,
    so a crash in the middle of a burst neither repeats nor loses mail.
    """

    def __init__(
        self,
        settings: ServerSettings,
        *,
        account: str,
        folder: str = "INBOX",
        state: FolderState | None,
        on_message: Callable[[MailEvent], Awaitable[None]],
        on_state: Callable[[FolderState], None] | None = None,
        on_status: Callable[[WatchStatus], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        push: bool = True,
        poll_interval: float = 300.0,
        idle_renew: float = 540.0,
        text_limit: int = 2048,
        include_headers: bool = False,
        mark_seen: bool = False,
        catchup_since: datetime | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
        timeout: float = 30.0,
        trace: Trace | None = None,
    ) -> None:
        """Configure; nothing connects before ``connect_once()`` or ``run()``."""
        self.settings = settings
        self.account = account
        self.folder = folder
        self.state = (
            FolderState(state.uidvalidity, state.last_uid)
            if state is not None
            else FolderState(None, 0)
        )
        self.status = WatchStatus(
            connected=False, unread=None, idle=False, last_error=None
        )
        self._on_message = on_message
        self._on_state = on_state
        self._on_status = on_status
        self._ssl_context = ssl_context
        self._push = push
        self._poll_interval = poll_interval
        self._idle_renew = idle_renew
        self._text_limit = text_limit
        self._include_headers = include_headers
        self._mark_seen = mark_seen
        self._catchup_since = catchup_since
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._timeout = timeout
        self._trace = trace
        self._client: ImapClient | None = None

    # -- status ---------------------------------------------------------------

    def _set_status(
        self,
        *,
        connected: bool | None = None,
        idle: bool | None = None,
        unread: int | None = None,
        last_error: str | None = None,
        clear_error: bool = False,
    ) -> None:
        """Update the status; arguments left at None keep their value."""
        current = self.status
        updated = WatchStatus(
            connected=current.connected if connected is None else connected,
            unread=current.unread if unread is None else unread,
            idle=current.idle if idle is None else idle,
            last_error=None
            if clear_error
            else (current.last_error if last_error is None else last_error),
        )
        if updated == current:
            return
        self.status = updated
        if self._on_status is not None:
            self._on_status(updated)

    def _advance(self, state: FolderState) -> None:
        self.state = state
        if self._on_state is not None:
            self._on_state(FolderState(state.uidvalidity, state.last_uid))

    # -- connecting -------------------------------------------------------------

    async def connect_once(self) -> None:
        """Connect, log in, select the folder and settle the mark.

        Raises mail.errors; hosts use it at setup to tell "server down"
        from "password refused" before starting ``run()``.
        """
        await self._drop()
        client = ImapClient(
            self.settings,
            ssl_context=self._ssl_context,
            timeout=self._timeout,
            trace=self._trace,
        )
        try:
            await client.connect()
            uidvalidity, uidnext = await client.select(self.folder)
        except BaseException:
            await client.logout()
            raise
        self._client = client
        self._settle_mark(uidvalidity, uidnext)
        if self.status.connected is False and self.status.last_error is not None:
            # Debug only: the host hears it through on_status and logs it once.
            _LOGGER.debug("Connection to %s is back", self.settings.host)
        self._set_status(
            connected=True,
            idle=self._push and "IDLE" in client.capabilities,
            clear_error=True,
        )

    def _settle_mark(self, uidvalidity: int, uidnext: int) -> None:
        known = self.state.uidvalidity
        if known == uidvalidity:
            return
        if known is not None:
            _LOGGER.warning(
                "UIDVALIDITY of %s on %s changed (%s -> %s): the server renumbered"
                " the folder; skipping its current mail instead of reporting it again",
                self.folder,
                self.settings.host,
                known,
                uidvalidity,
            )
        self._advance(FolderState(uidvalidity, max(uidnext - 1, 0)))

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.logout()

    async def close(self) -> None:
        """Log out; idempotent."""
        await self._drop()
        self._set_status(connected=False, idle=False)

    # -- running --------------------------------------------------------------

    async def run(self) -> None:
        """Watch until cancelled, reconnecting with backoff after failures.

        Fatal errors (refused password, OAuth-only, no STARTTLS, untrusted
        certificate) propagate: only the user can fix them.
        """
        backoff = self._backoff_initial
        while True:
            try:
                client = self._client
                if client is None or not client.connected:
                    await self.connect_once()
                    client = self._client
                    assert client is not None
                await self.sync(client)
                backoff = self._backoff_initial
                await self._watch(client)
            except FATAL_ERRORS as err:
                await self._drop()
                self._set_status(connected=False, idle=False, last_error=str(err))
                raise
            except Exception as err:  # every other failure retries
                await self._drop()
                if self.status.connected:
                    _LOGGER.debug("Connection to %s lost: %s", self.settings.host, err)
                if not isinstance(err, MailError):
                    _LOGGER.exception("Unexpected error while watching %s", self.folder)
                self._set_status(
                    connected=False,
                    idle=False,
                    last_error=str(err) or type(err).__name__,
                )
                delay = backoff * random.uniform(0.5, 1.0)
                _LOGGER.debug("Reconnecting to %s in %.1f s", self.settings.host, delay)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, self._backoff_max)

    async def _watch(self, client: ImapClient) -> None:
        use_idle = self._push and "IDLE" in client.capabilities
        while True:
            if use_idle:
                await client.idle_wait(self._idle_renew)
            else:
                if await client.wait_closed(self._poll_interval):
                    raise ConnectError("the server closed the connection")
                await client.noop()
            await self.sync(client)

    async def sync(self, client: ImapClient) -> None:
        """Report every message above the mark, then refresh the unread count."""
        while True:
            client.take_new_mail_hint()
            uids = await client.search_since(self.state.last_uid)
            for batch in _chunks(uids, BATCH_SIZE):
                await self._deliver(client, batch)
            unread = await client.unread_count()
            self._set_status(unread=unread)
            self._catchup_since = None
            # New mail announced while we were busy: aioimaplib drops such
            # notices outside IDLE, so look again rather than idle past it.
            if not client.take_new_mail_hint():
                return

    async def _deliver(self, client: ImapClient, batch: list[int]) -> None:
        fetched = await client.fetch_messages(
            batch, text_bytes=text_bytes_for(self._text_limit)
        )
        uidvalidity = self.state.uidvalidity
        delivered: list[int] = []
        for uid in batch:
            message = fetched.get(uid)
            if message is not None and not self._too_old(message):
                event = build_event(
                    message,
                    account=self.account,
                    folder=self.folder,
                    uidvalidity=uidvalidity,
                    text_limit=self._text_limit,
                    include_headers=self._include_headers,
                )
                try:
                    await self._on_message(event)
                except Exception:
                    _LOGGER.exception("Handler failed for message UID %s", uid)
                delivered.append(uid)
            self._advance(FolderState(uidvalidity, uid))
        if self._mark_seen and delivered:
            await client.mark_seen(delivered, check=False)

    def _too_old(self, message: FetchedMessage) -> bool:
        since = self._catchup_since
        if since is None or message.internal_date is None:
            return False
        if since.tzinfo is None:
            return message.internal_date.replace(tzinfo=None) < since
        return message.internal_date < since
