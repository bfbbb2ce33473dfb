"""POP3 watching: UIDL-based polling with the user's retention choice.

Built on the standard library's ``poplib`` (the tested client; no maintained
asyncio POP3 library exists), every blocking step runs in the default executor
so the event loop never blocks. Steps on one connection run one after another.

One poll is one POP3 session:

1. connect (POP3S, or STLS on the plain port and fail closed, or clear text
   only when the user chose it), ``CAPA``, log in (``AUTH XOAUTH2`` or
   ``OAUTHBEARER`` for an OAuth2 account, else ``AUTH PLAIN`` when offered,
   else ``USER``/``PASS``);
2. ``UIDL``: UIDLs not in :attr:`Pop3State.seen` are new; seen UIDLs no longer
   on the server are forgotten, which keeps the state as small as the maildrop;
3. for each new message, oldest first: ``LIST n`` (size), ``TOP n k`` (headers
   and the start of the body; ``RETR`` read up to a cap when TOP is missing),
   build the event, await the host's callback, and only then record the UIDL;
4. ``DELE`` what the retention choice says, for messages already reported;
5. ``QUIT``, which is what commits deletions (RFC 1939's UPDATE state).

Each session has an overall deadline (``Timeouts.session``): ``Timeouts.io``
bounds one read, and a server that sends a byte just within it every time
would otherwise hold the poll, and every later one, for ever. At the deadline
the socket is shut down, which wakes the executor thread blocked on it.

A session that fails anywhere before ``QUIT`` is closed without it, so the
server rolls back every ``DELE`` of that session; messages not yet reported
are not in the seen set and are reported by the next poll. Nothing is lost,
and the seen set never claims a message that was not reported.

First poll: a host that passes ``state=None`` (first setup) gets the mail
already in the maildrop taken as seen without events, as IMAP starts from
UIDNEXT; those messages are marked with a first-seen time of ``0`` and are
never deleted by retention, because they were never reported. A host that
passes a state, even an empty one, gets every unseen message reported.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import poplib
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from .errors import (
    AuthError,
    CertificateError,
    ConnectError,
    MailError,
    MailTimeoutError,
    MessageNotFoundError,
    OAuthReason,
    OAuthTokenRefused,
    ProtocolError,
    StartTlsUnavailableError,
    TlsError,
)
from .filtering import accepts
from .message import MailEvent, event_from_message
from .models import Security, ServerSettings
from .oauth import sasl
from .options import EventOptions, FilterOptions, Pop3PollOptions, Retention, Timeouts
from .tls import create_ssl_context
from .trace import MASK, RECV, SEND, Trace

_LOGGER = logging.getLogger(__name__)

# Longest single-line response we accept (RFC 2449 allows 512 octets).
_MAX_STATUS_LINE: Final = 8192
# Chunk size for multi-line responses; longer lines are read in pieces.
_CHUNK: Final = 65536
# A UIDL listing larger than this is not a maildrop we can watch.
_MAX_UIDL_BYTES: Final = 64 * 1024 * 1024
# First-seen time of mail that was already there when watching began.
BASELINE: Final = 0.0
_DAY: Final = 86400.0


# A host's step between reading a new message and reporting it: gets the event
# and a reader of the whole message (limit in bytes), returns the event.
type BeforeEvent = Callable[
    [MailEvent, Callable[[int], Awaitable[bytes | None]]], Awaitable[MailEvent]
]


@dataclass
class Pop3State:
    """What the host persists between polls and restarts (JSON via ``asdict``).

    ``seen`` maps each UIDL to the time it was first seen (epoch seconds); it
    is also the set of messages already reported. A time of ``0`` marks mail
    that was already in the maildrop on first setup: seen, never reported,
    never deleted by retention.
    """

    seen: dict[str, float] = field(default_factory=dict)


@dataclass
class PollResult:
    """The outcome of one poll."""

    count: int  # messages in the maildrop after the poll
    new: int  # events fired by this poll
    deleted: int  # messages deleted (committed by QUIT)


class _ServerError(Exception):
    """The server answered ``-ERR``; the caller decides what it means."""

    def __init__(self, response: bytes) -> None:
        self.response = response.decode("utf-8", "replace")
        super().__init__(self.response)


class _Client(poplib.POP3):
    """``poplib.POP3`` with the wire traced, bounded reads and AUTH PLAIN.

    poplib's own multi-line reader keeps every line in memory and refuses lines
    longer than 2 KB (which real HTML mail has), so responses are read here.
    """

    has_top = True

    def __init__(
        self,
        host: str,
        port: int,
        trace: Trace | None,
        on_socket: Callable[[socket.socket], None] = lambda _sock: None,
        **kwargs: Any,  # noqa: ANN401
    ) -> None:
        """Connect and read the greeting; never leak the socket if that fails.

        ``on_socket`` gets the socket as soon as it exists, so that the event
        loop can shut it down while this thread still waits for the greeting.
        """
        self.trace = trace  # before poplib reads the greeting
        self.on_socket = on_socket
        try:
            super().__init__(host, port, **kwargs)
        except BaseException:
            for name in ("file", "sock"):
                obj = self.__dict__.get(name)
                if obj is not None:
                    with contextlib.suppress(OSError):
                        obj.close()
            raise

    def _create_socket(self, timeout: float) -> socket.socket:
        sock: socket.socket = super()._create_socket(timeout)  # type: ignore[misc]
        self.on_socket(sock)
        return sock

    def close(self) -> None:
        """Close; a socket already gone (failed TLS handshake) is not an error."""
        with contextlib.suppress(OSError):
            super().close()

    def _getline(self) -> tuple[bytes, int]:
        """Read one status line (poplib calls this for the greeting)."""
        line = self.file.readline(_MAX_STATUS_LINE + 1)
        if not line:
            raise ConnectError("The POP3 server closed the connection")
        if self.trace is not None:
            self.trace("pop3", RECV, line)
        if len(line) > _MAX_STATUS_LINE:
            raise ProtocolError("The POP3 server sent an overlong line")
        return line.rstrip(b"\r\n"), len(line)

    def send(self, line: str, *, shown: str | None = None) -> None:
        """Send one command line; a line break inside would inject a command.

        ``shown`` is what the trace gets instead, for lines with a secret.
        """
        if "\r" in line or "\n" in line:
            raise ProtocolError("Refusing to send a line break inside a command")
        if self.trace is not None:
            self.trace(
                "pop3", SEND, (line if shown is None else shown).encode() + b"\r\n"
            )
        self.sock.sendall(line.encode() + b"\r\n")

    def command(
        self, line: str, *, continuation: bool = False, shown: str | None = None
    ) -> bytes:
        """Send a command, return its ``+OK`` line, raise ``_ServerError`` on -ERR."""
        self.send(line, shown=shown)
        return self.response(continuation=continuation)

    def response(self, *, continuation: bool = False) -> bytes:
        """Read a status line; ``continuation`` also accepts SASL's ``+ ``."""
        resp, _ = self._getline()
        if resp.startswith(b"+OK") or (continuation and resp.startswith(b"+")):
            return resp
        raise _ServerError(resp)

    def multiline(self, cap: int) -> tuple[bytes, bool]:
        """Read a multi-line body up to the final ``.``, keeping at most ``cap`` bytes.

        The rest is read and dropped so the session stays in step; line ends are
        kept and dot-stuffing undone. Returns the data and whether it was cut.
        The trace gets what was read in pieces of about ``_CHUNK`` bytes.
        """
        parts: list[bytes] = []
        kept = 0
        truncated = False
        at_line_start = True
        readline = self.file.readline
        unseen = bytearray()  # read, not traced yet
        try:
            while True:
                chunk = readline(_CHUNK)
                if not chunk:
                    raise ConnectError("The POP3 server closed the connection")
                if self.trace is not None:
                    unseen += chunk
                    if len(unseen) >= _CHUNK:
                        self.trace("pop3", RECV, bytes(unseen))
                        unseen.clear()
                if at_line_start and chunk[:1] == b".":
                    if chunk in (b".\r\n", b".\n"):
                        break
                    chunk = chunk[1:]
                at_line_start = chunk[-1:] == b"\n"
                if kept < cap:
                    piece = chunk[: cap - kept]
                    parts.append(piece)
                    kept += len(piece)
                    truncated = truncated or len(piece) < len(chunk)
                else:
                    truncated = True
        finally:
            if unseen and self.trace is not None:
                self.trace("pop3", RECV, bytes(unseen))
        return b"".join(parts), truncated

    def capabilities(self) -> dict[str, list[str]] | None:
        """Return ``CAPA`` (RFC 2449) as a dict, or None if the server has no CAPA."""
        try:
            self.command("CAPA")
        except _ServerError:
            return None
        data, _ = self.multiline(1024 * 1024)
        caps: dict[str, list[str]] = {}
        for line in data.decode("ascii", "replace").splitlines():
            words = line.split()
            if words:
                caps[words[0].upper()] = [w.upper() for w in words[1:]]
        return caps

    def starttls(
        self, context: ssl.SSLContext, caps: dict[str, list[str]] | None
    ) -> None:
        """Upgrade with ``STLS`` (RFC 2595), failing closed before any login.

        Without CAPA, STLS may still work, and its ``-ERR`` fails closed too.
        Anything the server sent in clear after the ``+OK`` stays in the old
        buffered reader, which is dropped: it is never read as a TLS answer.
        """
        if caps is not None and "STLS" not in caps:
            raise StartTlsUnavailableError("The POP3 server does not offer STLS")
        try:
            self.command("STLS")
        except _ServerError as err:
            raise StartTlsUnavailableError(
                f"The POP3 server refused STLS: {err.response}"
            ) from None
        old = self.file
        self.sock = context.wrap_socket(self.sock, server_hostname=self.host)
        self.file = self.sock.makefile("rb")
        with contextlib.suppress(OSError):
            old.close()

    def login(self, username: str, password: str, sasl: list[str]) -> None:
        """Log in with ``AUTH PLAIN`` when offered, else ``USER``/``PASS``."""
        if any(c in username + password for c in "\r\n\0"):
            raise AuthError("The user name or password contains a line break")
        try:
            if "PLAIN" in sasl:
                self.command("AUTH PLAIN", continuation=True)
                token = b"\0" + username.encode() + b"\0" + password.encode()
                self.command(base64.b64encode(token).decode(), shown=MASK)
            else:
                self.command(f"USER {username}")
                self.command(f"PASS {password}", shown=f"PASS {MASK}")
        except _ServerError as err:
            raise _auth_error(err.response) from None

    def login_oauth(
        self, username: str, token: str, sasl_list: list[str], expires_at: float | None
    ) -> None:
        """``AUTH XOAUTH2``, else ``OAUTHBEARER``; a refused token ends at once.

        The initial response goes after the server's ``+`` (a command line
        may not exceed 255 bytes, RFC 5034); an error challenge is answered
        with the mechanism's abort so the final ``-ERR`` comes now.
        """
        offered = [m.upper() for m in sasl_list]
        mechanism = next((m for m in sasl.MECHANISMS if m in offered), None)
        if mechanism is None:
            raise AuthError("The POP3 server offers no OAuth2 sign-in (XOAUTH2)")
        initial = sasl.initial_response(mechanism, username, token)
        reason: OAuthReason | None = None
        try:
            self.command(f"AUTH {mechanism}", continuation=True)
            answer = self.command(initial, continuation=True, shown=MASK)
            if answer.startswith(b"+OK"):
                return
            reason = sasl.refusal_reason(answer[1:].strip(), expires_at)
            self.command(sasl.ABORT[mechanism])
        except _ServerError as err:
            failed = _auth_error(err.response)
            if not isinstance(failed, AuthError):
                raise failed from None
            text = sasl.scrub(err.response, mechanism, username, token)
            reason = reason or sasl.reason_for(text, expires_at)
            raise OAuthTokenRefused(reason, text) from None
        raise ProtocolError("The POP3 server accepted an aborted OAuth2 exchange")

    def uidl_listing(self) -> dict[int, str]:
        """Return message number -> UIDL for every message in the maildrop."""
        try:
            self.command("UIDL")
        except _ServerError as err:
            raise ProtocolError(
                f"The POP3 server does not support UIDL: {err.response}"
            ) from None
        data, truncated = self.multiline(_MAX_UIDL_BYTES)
        if truncated:
            raise ProtocolError("The POP3 server's UIDL listing is too large")
        listing: dict[int, str] = {}
        taken: set[str] = set()
        for line in data.decode("ascii", "replace").splitlines():
            words = line.split()
            if len(words) != 2 or not words[0].isdigit():
                _LOGGER.debug("Ignoring malformed UIDL line %r", line)
                continue
            # Two messages with one UIDL would be one event; keep the first.
            if words[1] not in taken:
                taken.add(words[1])
                listing[int(words[0])] = words[1]
        return listing

    def size_of(self, number: int) -> int | None:
        """Return a message's size from ``LIST n``, None if unreadable."""
        try:
            resp = self.command(f"LIST {number}")
        except _ServerError:
            return None
        words = resp.split()
        if len(words) >= 3 and words[2].isdigit():
            return int(words[2])
        return None

    def quit_session(self) -> None:
        """``QUIT``: the server commits this session's deletions, then close."""
        try:
            self.command("QUIT")
        except _ServerError as err:
            raise ProtocolError(
                f"The POP3 server failed to commit: {err.response}"
            ) from None
        finally:
            self.close()


class _SslClient(_Client, poplib.POP3_SSL):
    """POP3S: TLS from the first byte."""


def _auth_error(response: str) -> MailError:
    """Map a refused login; RFC 3206 codes tell transient refusals apart."""
    upper = response.upper()
    if "[IN-USE]" in upper or "[SYS/TEMP]" in upper or "[LOGIN-DELAY]" in upper:
        # Another client holds the maildrop lock, or the server is busy.
        return ConnectError(f"The POP3 server is busy: {response}")
    if "[SYS/PERM]" in upper:
        return ProtocolError(f"The POP3 server refused the login: {response}")
    return AuthError(f"The POP3 server refused the login: {response}")


def _translate(err: BaseException) -> MailError | None:
    """Map a low-level failure onto the mail core's errors."""
    if isinstance(err, MailError):
        return err
    if isinstance(err, ssl.SSLCertVerificationError):
        return CertificateError(err.verify_message or str(err))
    if isinstance(err, ssl.SSLError):
        return TlsError(str(err))
    if isinstance(err, TimeoutError):
        return MailTimeoutError("The POP3 server did not answer in time")
    if isinstance(err, _ServerError):
        return ProtocolError(f"The POP3 server answered: {err.response}")
    if isinstance(err, poplib.error_proto):
        reply = err.args[0] if err.args else b""
        text = (
            reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        )
        if text.startswith("-ERR"):
            # An ``-ERR`` greeting: "too many connections", try again later.
            return ConnectError(f"The POP3 server refused the connection: {text}")
        # Not a POP3 greeting at all (an IMAP or SMTP port, say).
        return ProtocolError(f"Not a POP3 server: {text[:80]}")
    if isinstance(err, OSError):
        return ConnectError(str(err) or type(err).__name__)
    return None


def _mapped(err: Exception) -> Exception:
    """Return the mail error for ``err``, or ``err`` itself if it is not ours."""
    mapped = _translate(err)
    return err if mapped is None else mapped


def _shutdown(sock: socket.socket | None) -> None:
    """Shut a socket down (a plain syscall, safe from the loop): its reader wakes."""
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _close_unused(future: asyncio.Future[_Client]) -> None:
    """Close a session nobody waits for any more (its poll was cancelled)."""
    if not future.cancelled() and future.exception() is None:
        future.result().close()


class Pop3Poller:
    """Polls one POP3 maildrop; the host schedules :meth:`poll_once`.

    :attr:`state` is updated in place as messages are reported, so the host
    can persist it after each poll, whether the poll succeeded or not, except
    while :attr:`baseline_pending` is true (first setup, no poll has listed the
    maildrop yet): an empty state saved then would later report old mail.
    """

    def __init__(
        self,
        settings: ServerSettings,
        *,
        account: str,
        state: Pop3State | None,
        ssl_context: ssl.SSLContext | None = None,
        options: Pop3PollOptions | None = None,
        event: EventOptions | None = None,
        filter: FilterOptions | None = None,
        timeouts: Timeouts | None = None,
        clock: Callable[[], float] = time.time,
        trace: Trace | None = None,
        on_check: Callable[[], None] | None = None,
        before_event: BeforeEvent | None = None,
    ) -> None:
        """Prepare a poller; nothing connects until the first poll.

        ``state=None`` means first setup: the first poll takes the current
        maildrop as already seen. The interval in ``options`` is the host's to
        keep: scheduling belongs to the host. ``trace`` gets the conversation
        (see ``trace``), in the executor thread. ``on_check`` runs after each
        poll the server answered to the end (``QUIT``): proof the account works.
        ``before_event`` may change
        each new message's event before it is reported, within the session:
        it gets a coroutine function that reads the message whole (``RETR``
        up to a limit; None if larger), as saving attachments needs.
        """
        self._settings = settings
        self._account = account
        self.state = state if state is not None else Pop3State()
        self.baseline_pending = state is None
        self._options = options or Pop3PollOptions()
        self._event = event or EventOptions()
        self._filter = filter or FilterOptions()
        self._ssl_context = ssl_context
        timeouts = timeouts or Timeouts()
        self._timeout = timeouts.io
        self._session_deadline = timeouts.session
        self._opening: socket.socket | None = None  # while a connect runs
        self._clock = clock
        self._trace = trace
        self._on_check = on_check
        self._before_event = before_event
        self._lock = asyncio.Lock()
        # CAPA as the last session saw it before login (None: no CAPA), for
        # diagnostics such as ``mail-relay check``.
        self.capabilities: dict[str, list[str]] | None = None

    # -- public coroutines ---------------------------------------------

    async def check_login(self) -> None:
        """Connect, log in and log out: the connection test of the setup flow."""
        client = await self._connect()
        try:
            await self._call(client, client.quit_session)
        except BaseException:
            await self._discard(client)
            raise

    async def poll_once(
        self, on_message: Callable[[MailEvent], Awaitable[None]]
    ) -> PollResult:
        """Run one POP3 session: report new mail, apply retention, commit.

        ``on_message`` is awaited on the event loop for each new message, oldest
        first; its exceptions end the poll uncommitted and are re-raised.
        """
        async with self._bounded_session() as client:
            result = await self._session(client, on_message)
        if self._on_check is not None:
            self._on_check()
        return result

    async def retrieve(self, uidl: str, limit: int) -> bytes | None:
        """Read one message whole (``RETR``), found by its UIDL; None if over ``limit``.

        For saving attachments: POP3 has no parts. Waits for a poll in
        flight (one session at a time: servers lock the maildrop) and
        changes nothing on the server.
        """
        async with self._bounded_session() as client:
            raw = await self._call(client, partial(self._retrieve, client, uidl, limit))
            await self._call(client, client.quit_session)
        return raw

    @contextlib.asynccontextmanager
    async def _bounded_session(self) -> AsyncIterator[_Client]:
        """One session at a time (servers lock the maildrop), within the deadline.

        A failure, the deadline included, discards the connection; the
        deadline is reported as the server being too slow.
        """
        async with self._lock:
            try:
                async with asyncio.timeout(self._session_deadline):
                    client = await self._connect()
                    try:
                        yield client
                    except BaseException:
                        await self._discard(client)
                        raise
            except TimeoutError:
                raise MailTimeoutError(
                    "The POP3 session took longer than"
                    f" {self._session_deadline:g} s; the server is too slow"
                ) from None

    @staticmethod
    def _retrieve(client: _Client, uidl: str, limit: int) -> bytes | None:
        numbers = [n for n, u in client.uidl_listing().items() if u == uidl]
        if not numbers:
            raise MessageNotFoundError(f"no message with UIDL {uidl} on the server")
        return Pop3Poller._read_whole(client, numbers[0], limit)

    @staticmethod
    def _read_whole(client: _Client, number: int, limit: int) -> bytes | None:
        """``RETR`` one message; None (and nothing downloaded) if over ``limit``."""
        size = client.size_of(number)
        if size is not None and size > limit:
            return None
        client.command(f"RETR {number}")
        raw, truncated = client.multiline(limit)
        return None if truncated else raw

    # -- the session ---------------------------------------------------

    async def _session(
        self,
        client: _Client,
        on_message: Callable[[MailEvent], Awaitable[None]],
    ) -> PollResult:
        listing = await self._call(client, client.uidl_listing)
        present = set(listing.values())
        seen = self.state.seen
        for uidl in [u for u in seen if u not in present]:
            del seen[uidl]  # gone from the server: nothing left to remember
        if self.baseline_pending:
            for uidl in present:
                seen.setdefault(uidl, BASELINE)
            self.baseline_pending = False
            _LOGGER.debug("First poll: %d messages taken as seen", len(present))

        new = [(n, u) for n, u in sorted(listing.items()) if u not in seen]
        for number, uidl in new:
            event = await self._call(client, partial(self._fetch, client, number, uidl))
            # POP3 has no flags: everything it lists is unread to us.
            if not accepts(self._filter, event, seen=False):
                # Passed over for good, and never deleted by retention (which
                # spares BASELINE): the user asked for no event, not for less mail.
                seen[uidl] = BASELINE
                continue
            if self._before_event is not None:
                event = await self._before_event(
                    event, partial(self._read_whole_async, client, number)
                )
            await on_message(event)
            # Recorded only now: a failure above reports the message again.
            # (Never at or below BASELINE, whatever the clock says.)
            seen[uidl] = max(self._clock(), BASELINE + 1)

        doomed = self._to_delete(listing)
        if doomed:
            await self._call(client, partial(self._delete, client, doomed))
        await self._call(client, client.quit_session)
        for number in doomed:
            seen.pop(listing[number], None)
        return PollResult(
            count=len(listing) - len(doomed), new=len(new), deleted=len(doomed)
        )

    def _to_delete(self, listing: dict[int, str]) -> list[int]:
        """Message numbers retention removes; only mail already reported."""
        if self._options.retention is Retention.KEEP:
            return []
        seen = self.state.seen
        now = self._clock()
        max_age = self._options.retention_days * _DAY
        doomed: list[int] = []
        for number, uidl in sorted(listing.items()):
            first_seen = seen.get(uidl)
            if first_seen is None or first_seen <= BASELINE:
                continue
            if (
                self._options.retention is Retention.DELETE
                or now - first_seen >= max_age
            ):
                doomed.append(number)
        return doomed

    async def _read_whole_async(
        self, client: _Client, number: int, limit: int
    ) -> bytes | None:
        """Read a message whole for the host, which may give up waiting.

        If it does (cancelling this), the socket is shut down and the thread
        reading it waited for: the session is over, never used by two threads
        at once. The poll then fails at its next command and is retried; the
        message being reported is still reported.
        """
        read = asyncio.ensure_future(
            self._call(client, partial(self._read_whole, client, number, limit))
        )
        try:
            # Not shield(): it would log the error the woken thread ends with.
            await asyncio.wait({read})
        except asyncio.CancelledError:
            _shutdown(client.sock)
            with contextlib.suppress(Exception):
                await read
            raise
        return read.result()

    # -- blocking steps (executor) -------------------------------------

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = create_ssl_context(verify=self._settings.verify_tls)
        return self._ssl_context

    def _open(self, token: str | None = None) -> _Client:
        """Connect, secure and log in; never sends credentials unprotected by mistake.

        With ``token`` (the account signs in with OAuth2) it logs in with it.
        """
        s = self._settings
        client: _Client
        if s.security is Security.SSL:
            client = _SslClient(
                s.host,
                s.port,
                self._trace,
                self._note_socket,
                timeout=self._timeout,
                context=self._context(),
            )
        else:
            client = _Client(
                s.host, s.port, self._trace, self._note_socket, timeout=self._timeout
            )
        try:
            caps = client.capabilities()
            if s.security is Security.STARTTLS:
                client.starttls(self._context(), caps)
                caps = client.capabilities()  # RFC 2595: ask again after TLS
            offered = (caps or {}).get("SASL", [])
            if token is None:
                client.login(s.username, s.password, offered)
            else:
                source = s.token_source
                expires = source.expires_at if source is not None else None
                client.login_oauth(s.username, token, offered, expires)
        except BaseException:
            client.close()
            raise
        if caps is not None and "TOP" not in caps:
            client.has_top = False
        self.capabilities = caps
        return client

    def _fetch(self, client: _Client, number: int, uidl: str) -> MailEvent:
        """Read the start of one message and build its event."""
        size = client.size_of(number)
        raw: bytes | None = None
        if self._options.use_top and client.has_top:
            try:
                client.command(f"TOP {number} {self._options.top_lines}")
                raw, _ = client.multiline(self._options.retr_cap)
            except _ServerError:
                _LOGGER.debug("TOP refused; reading with RETR instead")
                client.has_top = False
        if raw is None:
            client.command(f"RETR {number}")
            raw, truncated = client.multiline(self._options.retr_cap)
            if truncated:
                _LOGGER.debug(
                    "Message %s cut at %d bytes", uidl, self._options.retr_cap
                )
        return event_from_message(
            raw,
            account=self._account,
            protocol="pop3",
            folder="INBOX",
            uid=uidl,
            uidvalidity=None,
            size=size,
            text_limit=self._event.text_limit,
            include_headers=self._event.include_headers,
        )

    @staticmethod
    def _delete(client: _Client, numbers: list[int]) -> None:
        for number in numbers:
            client.command(f"DELE {number}")

    # -- plumbing --------------------------------------------------------

    def _note_socket(self, sock: socket.socket) -> None:
        self._opening = sock

    async def _connect(self) -> _Client:
        """Open a logged-in session in the executor.

        If the caller is cancelled meanwhile (the deadline, say), the socket
        being opened is shut down, which ends the thread's blocking read, and
        a session the executor still opens is closed instead of lingering.
        """
        source = self._settings.token_source
        if source is None:
            return await self._open_in_executor(None)
        opened: list[_Client] = []

        async def attempt(token: str) -> None:
            opened.append(await self._open_in_executor(token))

        await sasl.with_token(source, attempt)
        return opened[-1]

    async def _open_in_executor(self, token: str | None) -> _Client:
        loop = asyncio.get_running_loop()
        self._opening = None
        future = loop.run_in_executor(None, partial(self._open, token))
        try:
            # Not shield(): it would log the error the woken thread ends with.
            await asyncio.wait({future})
        except asyncio.CancelledError:
            future.add_done_callback(_close_unused)
            _shutdown(self._opening)
            raise
        try:
            client = future.result()
        except Exception as err:
            mapped = _mapped(err)
            if mapped is err:
                raise
            raise mapped from err
        return client

    async def _call[T](self, client: _Client, func: Callable[[], T]) -> T:
        """Run one blocking step in the executor, with errors mapped."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, func)
        except Exception as err:
            mapped = _mapped(err)
            if mapped is err:
                raise
            raise mapped from err

    async def _discard(self, client: _Client) -> None:
        """Close without ``QUIT``: the server rolls back this session's DELEs.

        The socket is shut down first (a plain syscall, safe from the loop), so
        a step still blocked in the executor wakes up instead of holding on.
        """
        _shutdown(client.sock)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            await loop.run_in_executor(None, client.close)
