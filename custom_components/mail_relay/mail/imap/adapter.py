"""The aioimaplib adapter: the one module that touches aioimaplib.

Every use of aioimaplib in the mail core is here: its protocol object
(subclassed as ``_Protocol`` to trace the wire and note new-mail hints), its
``Command`` and ``FetchCommand`` objects, its command table (NOTIFY added),
its states and exceptions, and the
attributes of the protocol the connection drives (``pending_sync_command``,
``pending_async_commands``, ``idle_queue``, ``incomplete_line``,
``transport``, ``state``, ``capabilities``, ``literal_data``,
``current_command``...). Some are private: the protocol's
``_untagged_response`` and ``_handle_line``, and a command's ``_event``,
``_exception``, ``_expected_size`` and ``_resp_literal_data``.

aioimaplib is only the base; the parts that matter for a watcher that must
never hang or lose mail are ours: STARTTLS (aioimaplib has none), LOGIN
without the password ever entering a log or an exception text, OAuth2's
AUTHENTICATE (XOAUTH2, OAUTHBEARER) answering a refused token's challenge at
once (aioimaplib's ``xoauth2()`` waits out its timeout there and logs the
token's base64 form), timeouts on
every wait, pending commands failed at once when the connection drops
(aioimaplib would leave them waiting forever after a BYE), bounds on what a
server may make us hold (``MAX_ANSWER_BYTES``, ``MAX_LINE_BYTES``), and a
greeting that is not IMAP refused at once. ``ImapConnection``
is the connection half of ``ImapClient``; the client adds the commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Callable, Iterator
from typing import Any

from aioimaplib import aioimaplib

from ..errors import (
    AuthError,
    CertificateError,
    ConnectError,
    MailError,
    MailTimeoutError,
    OAuthReason,
    OAuthRequiredError,
    OAuthTokenRefused,
    ProtocolError,
    StartTlsUnavailableError,
    TlsError,
    TokenExpiredError,
)
from ..models import Security, ServerSettings
from ..oauth import TokenSource, sasl
from ..tls import create_ssl_context, shrink_read_buffer
from ..trace import MASK, RECV, SEND, Trace
from .parse import Namespace, Response, _capabilities, _last_text, _text, parse_fetch
from .syntax import quote, uid_set

_LOGGER = logging.getLogger(__name__)
_NOT_CONNECTED = re.compile(r"authenticated but not connected", re.IGNORECASE)

Command = Any  # aioimaplib.Command

# The state a folder is open in (aioimaplib only knows SELECT).
SELECTED = aioimaplib.SELECTED

# aioimaplib refuses commands missing from its table: NOTIFY (RFC 5465) is.
aioimaplib.Commands.setdefault(
    "NOTIFY",
    aioimaplib.Cmd(
        "NOTIFY", (aioimaplib.AUTH, aioimaplib.SELECTED), aioimaplib.Exec.is_sync
    ),
)


# -- the protocol object ----------------------------------------------------------

_NEW_MAIL = re.compile(rb"\*?\s*\d+\s+(EXISTS|RECENT)\b", re.IGNORECASE)
_CHANGE = re.compile(
    rb"\*?\s*(\d+\s+(EXISTS|RECENT|EXPUNGE|FETCH)\b|VANISHED\b|STATUS\b)", re.I
)
# Under NOTIFY (RFC 5465) another folder's news: ``* STATUS name (UIDNEXT n)``.
_STATUS = re.compile(rb"\*?\s*STATUS\b", re.IGNORECASE)
_BYE = re.compile(rb"\*?\s*BYE\b", re.IGNORECASE)
_GREETING = re.compile(rb"\*\s+(OK|PREAUTH)\b", re.IGNORECASE)
_GREETING_BYE = re.compile(rb"\*\s+BYE\b", re.IGNORECASE)
# Exchange ends a session whose token expired this way.
_TOKEN_EXPIRED = re.compile(rb"\*\s+BYE\b.*AccessTokenExpired", re.IGNORECASE)
_CRLF = b"\r\n"
_MIB = 1024 * 1024

# The most one command's answer may bring, literals included, and the most a
# server may send unasked between two commands (in IDLE, say). A FETCH batch
# of 100 messages (headers, structure and the first text bytes) is a few MB,
# the ``fetch`` action's text 1 MB a part: 64 MB leaves room for unusual mail,
# and a server announcing a 2 GB literal is cut before a byte of it is held.
MAX_ANSWER_BYTES = 64 * _MIB
# The longest line we wait for the end of (literals aside): a SEARCH answer
# of two million UIDs, where a server without ESEARCH counts unread mail.
# Pieces of a line are kept here and joined once: aioimaplib re-joins the
# pending line with every packet, quadratic on an endless line.
MAX_LINE_BYTES = 16 * _MIB
# aioimaplib handles the lines of one piece of data recursively (a few stack
# frames per line): 64 KB of short FETCH lines, as ``UID FETCH 1:* (UID)`` on
# a big folder answers, would exceed Python's recursion limit. Pieces are fed
# to it this many lines at a time (TCP may split data anywhere: it copes).
LINES_PER_FEED = 100


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
        # Set when the server announced new mail outside IDLE (aioimaplib drops
        # such untagged answers); the watcher searches again before idling.
        self.new_mail_hint = False
        # Set when another folder's STATUS came unasked (NOTIFY).
        self.status_hint = False
        # Why we cut the connection (an answer too large, not IMAP), raised
        # to every waiting command instead of "connection lost".
        self.refused: MailError | None = None
        self._answer_bytes = 0  # received since the last command line
        self._greeted = False  # the first line was checked
        self._held: list[bytes] = []  # pieces of a line not ended yet
        self._held_bytes = 0
        # Set while AUTHENTICATE waits for the server's "+" (a challenge).
        self.sasl_challenge: asyncio.Future[bytes] | None = None

    def data_received(self, d: bytes) -> None:
        if self.refused is not None:
            return
        if self.trace is not None:
            self.trace("imap", RECV, d)
        self._answer_bytes += len(d)
        if self._answer_bytes > MAX_ANSWER_BYTES:
            self.refuse(
                ProtocolError(
                    "the server sent more than the"
                    f" {MAX_ANSWER_BYTES // _MIB} MB an answer may bring"
                )
            )
            return
        command: Command = self.current_command
        if (command is None or not command.wait_literal_data()) and b"\n" not in d:
            self._held.append(d)
            self._held_bytes += len(d)
            if self._held_bytes + len(self.incomplete_line) > MAX_LINE_BYTES:
                self.refuse(
                    ProtocolError(
                        f"the server sent a line over {MAX_LINE_BYTES // _MIB} MB"
                    )
                )
            return
        if self._held:
            d = b"".join([*self._held, d])
            self._held.clear()
            self._held_bytes = 0
        for piece in _by_lines(d, LINES_PER_FEED):
            super().data_received(piece)
            self._check_literal()
            if self.transport is None or self.transport.is_closing():
                return  # refused: the rest is not read

    def _check_literal(self) -> None:
        """Refuse a literal announced beyond what is left of the answer's budget."""
        command: Command = self.current_command
        if command is None or not command.wait_literal_data():
            return
        missing = command._expected_size - len(command._resp_literal_data)
        if self._answer_bytes + missing > MAX_ANSWER_BYTES:
            self.refuse(
                ProtocolError(
                    f"the server announced {command._expected_size} bytes, over"
                    f" the {MAX_ANSWER_BYTES // _MIB} MB an answer may bring"
                )
            )

    def drop_pending(self) -> None:
        """Forget a line not ended yet (clear text after STARTTLS's OK)."""
        self._held.clear()
        self._held_bytes = 0
        self.incomplete_line = b""

    def refuse(self, error: MailError) -> None:
        """Cut the connection; waiting commands get ``error``."""
        if self.refused is None:
            self.refused = error
        self.drop_pending()
        self.current_command = None
        if self.transport is not None:
            self.transport.abort()

    def _handle_line(self, line: bytes, current_cmd: Any) -> Any:  # noqa: ANN401
        if self.state == aioimaplib.CONNECTED and line and not self._greeted:
            # aioimaplib takes any line with "OK" in it for a greeting and
            # leaves a failed task behind for the rest: check it here.
            self._greeted = True
            if _GREETING_BYE.match(line):
                self.refuse(ConnectError(f"the server refused: {_text(line)[:200]}"))
                return None
            if not _GREETING.match(line):
                self.refuse(ProtocolError(f"not an IMAP server: {_text(line)[:80]}"))
                return None
        if self.refused is None and _TOKEN_EXPIRED.match(line):
            # Every waiting command, and IDLE, get this instead of "lost".
            self.refused = TokenExpiredError(f"the server said {_text(line)[:200]}")
        challenge = self.sasl_challenge
        if line.startswith(b"+") and challenge is not None and not challenge.done():
            challenge.set_result(line[1:].strip())
            return None
        return super()._handle_line(line, current_cmd)

    def send(self, line: str, scrub: str | None = None) -> None:
        """Send a command line (never one with credentials: see ``_login``)."""
        if self.trace is not None:
            self.trace("imap", SEND, line.encode() + b"\r\n")
        self._answer_bytes = 0
        super().send(line, scrub)

    def _untagged_response(self, line: bytes) -> Any:  # noqa: ANN401
        if _STATUS.match(line):
            # Ours when a STATUS command waits; else news of another folder
            # (NOTIFY), noted, and kept out of the answer of what is running.
            sync = self.pending_sync_command
            if sync is None and "STATUS" in self.pending_async_commands:
                return super()._untagged_response(line)
            self.status_hint = True
            if sync is not None and sync.name == "IDLE":
                return super()._untagged_response(line)  # ends the IDLE wait
            return None
        if _NEW_MAIL.match(line):
            self.new_mail_hint = True
            if (
                self.pending_sync_command is None
                and "NOOP" not in self.pending_async_commands
            ):
                return None  # noted; aioimaplib would log it as ignored
        return super()._untagged_response(line)


def _by_lines(data: bytes, lines: int) -> list[bytes]:
    """Split ``data`` after every ``lines``-th newline (the last piece the rest)."""
    pieces: list[bytes] = []
    start = 0
    while True:
        end = start
        for _ in range(lines):
            end = data.find(b"\n", end) + 1
            if end == 0:
                break
        if end == 0 or end >= len(data):
            pieces.append(data[start:])
            return pieces
        pieces.append(data[start:end])
        start = end


class ImapConnection:
    """The connection half of ``ImapClient``: connect, log in, run commands, IDLE."""

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
        self._namespace: Namespace | None = None  # the client's, per connection

    # -- connection -------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the connection is up and usable."""
        return self._proto is not None and not self._broken and not self._lost.is_set()

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
        self._namespace = None
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
        if proto.refused is not None:
            raise proto.refused
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
        proto.drop_pending()
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
        if settings.token_source is not None:
            await self._oauth_login(proto, settings.token_source)
            return
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
        await self._logged_in(proto, response)

    async def _oauth_login(self, proto: _Protocol, source: TokenSource) -> None:
        """AUTHENTICATE with XOAUTH2, else OAUTHBEARER; one forced refresh."""
        caps = {c.upper() for c in proto.capabilities}
        mechanism = next((m for m in sasl.MECHANISMS if f"AUTH={m}" in caps), None)
        if mechanism is None:
            raise AuthError(
                "the server offers no OAuth2 sign-in (XOAUTH2, OAUTHBEARER)"
            )

        async def attempt(token: str) -> None:
            await self._authenticate(proto, mechanism, token, "SASL-IR" in caps)

        await sasl.with_token(source, attempt)

    async def _authenticate(
        self, proto: _Protocol, mechanism: str, token: str, sasl_ir: bool
    ) -> None:
        """One AUTHENTICATE exchange; the token is in no Command, log or trace."""
        settings = self.settings
        initial = sasl.initial_response(mechanism, settings.username, token)
        command = aioimaplib.Command(
            "AUTHENTICATE", proto.new_tag(), loop=proto.loop, timeout=self.timeout
        )
        proto.pending_sync_command = command
        head = f"{command.tag} AUTHENTICATE {mechanism}"
        ready: asyncio.Future[bytes] = proto.loop.create_future()
        proto.sasl_challenge = ready
        if self._trace is not None:
            self._trace("imap", SEND, f"{head} {MASK}\r\n".encode())
        try:
            with self._errors("authenticate"):
                async with asyncio.timeout(self.timeout):
                    if sasl_ir:
                        proto.transport.write(f"{head} {initial}\r\n".encode())
                    else:
                        proto.transport.write(f"{head}\r\n".encode())
                        await ready
                        proto.sasl_challenge = proto.loop.create_future()
                        if self._trace is not None:
                            self._trace("imap", SEND, f"{MASK}\r\n".encode())
                        proto.transport.write(f"{initial}\r\n".encode())
                    reason = await self._sasl_outcome(proto, command, mechanism)
        finally:
            proto.sasl_challenge = None
        response = command.response
        if reason is None and response.result == "OK":
            await self._logged_in(proto, response)
            return
        text = sasl.scrub(_last_text(response), mechanism, settings.username, token)
        if reason is None:
            source = settings.token_source
            reason = sasl.reason_for(text, source.expires_at if source else None)
        raise OAuthTokenRefused(reason, text)

    async def _sasl_outcome(
        self, proto: _Protocol, command: Command, mechanism: str
    ) -> OAuthReason | None:
        """Wait for the tagged answer; answer an error challenge at once."""
        challenge = proto.sasl_challenge
        assert challenge is not None
        done = asyncio.ensure_future(command.wait())
        try:
            await asyncio.wait({done, challenge}, return_when=asyncio.FIRST_COMPLETED)
            if done.done():
                done.result()
                return None
            source = self.settings.token_source
            reason = sasl.refusal_reason(
                challenge.result(), source.expires_at if source else None
            )
            abort = sasl.ABORT[mechanism]
            if self._trace is not None:
                self._trace("imap", SEND, f"{abort}\r\n".encode())
            proto.transport.write(f"{abort}\r\n".encode())
            await done
            return reason
        finally:
            done.cancel()

    async def _logged_in(self, proto: _Protocol, response: Response) -> None:
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
        error: Exception = proto.refused or _ConnectionLostError(
            str(exc) if exc else "connection closed"
        )
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
                response: Response = await proto.execute(command)
        if response.result != "OK":
            text = _last_text(response)
            if _NOT_CONNECTED.search(text):
                # Exchange took the token but will not serve this mailbox (another
                # account, IMAP off, a missing scope): sign-in, not network.
                if self.settings.token_source is not None:
                    raise OAuthTokenRefused("account", text)
                raise AuthError(text)
        return response

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

    async def _uid_fetch(
        self, uids: list[int] | str, items: str
    ) -> dict[int, dict[str, Any]]:
        """UID FETCH a list of UIDs, or a set as written (``63:*``)."""
        proto = self._require()
        command = aioimaplib.FetchCommand(
            proto.new_tag(),
            uids if isinstance(uids, str) else uid_set(uids),
            items,
            prefix="UID",
            loop=proto.loop,
            timeout=self.timeout,
        )
        # A large batch may take a while; the inactivity timer still applies.
        response = await self._execute(command, deadline=self.timeout * 20)
        if response.result != "OK":
            raise ProtocolError(f"FETCH: {_last_text(response)}")
        # A batch of answers is pure-Python parsing (tens of ms for 100 mails,
        # more for hostile ones): in a worker thread, not on the event loop.
        return await asyncio.get_running_loop().run_in_executor(
            None, parse_fetch, response.lines
        )

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
                    if proto.refused is not None:
                        raise proto.refused
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
