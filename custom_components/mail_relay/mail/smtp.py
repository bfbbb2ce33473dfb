"""Send mail over SMTP, reusing one authenticated connection for bursts.

Home Assistant's own ``smtp`` notify opens a connection, negotiates TLS and logs
in for every message. Notifications come in bursts (an alarm, a batch of camera
snapshots), so this sender keeps one connection open for a few seconds after a
message and sends the next ones over it. A connection found dead is replaced
transparently; transient refusals are retried with backoff; nothing is reported
as sent unless the server accepted it.

A message is sent again only when it cannot have been delivered: after an
explicit 4xx reply, or when the connection failed before the whole message
went out. Once the final dot is written, a lost or missing reply is
``UnconfirmedSendError`` and never retried: the server may have taken it,
and a second copy is worse than a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field

import aiosmtplib

from .compose import ComposedMail, OutgoingMail, compose
from .errors import (
    AuthError,
    CertificateError,
    ConnectError,
    MailError,
    MailTimeoutError,
    MessageError,
    OAuthReason,
    OAuthTokenRefused,
    ProtocolError,
    SendError,
    StartTlsUnavailableError,
    TlsError,
    UnconfirmedSendError,
)
from .models import Security, ServerSettings
from .oauth import TokenSource, sasl
from .tls import create_ssl_context
from .trace import RECV, SEND, Trace, masked_auth

_LOGGER = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 5.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF = 1.0
QUIT_TIMEOUT = 2.0
# The most one send may take, retries included: room for a 20 MB attachment
# over a 1 Mbit/s uplink (about 170 s) and a retry, while a server that drips
# its replies, each within ``timeout``, cannot hold a notification for ever.
DEFAULT_DEADLINE = 300.0


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the server said: it accepted the message for these recipients."""

    accepted: tuple[str, ...]
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    reply: str = ""


class _Transient(Exception):
    """A failure worth retrying (4xx, connection lost before acceptance)."""

    def __init__(self, error: MailError) -> None:
        super().__init__(str(error))
        self.error = error


class _Wire:
    """The trace of one connection; masks every client line while logging in.

    aiosmtplib builds the AUTH lines itself, so they are masked on their way
    out, by wrapping two public methods of this connection's protocol object
    (``write``, ``data_received``). The greeting is read inside ``connect()``,
    before the wrap, so it is traced from the reply aiosmtplib parsed.
    """

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.logging_in = False

    def greeting(self, reply: aiosmtplib.SMTPResponse) -> None:
        lines = reply.message.split("\n")
        text = "".join(
            f"{reply.code}{'-' if n < len(lines) - 1 else ' '}{line}\r\n"
            for n, line in enumerate(lines)
        )
        self.trace("smtp", RECV, text.encode())

    def attach(self, client: aiosmtplib.SMTP) -> None:
        protocol = client.protocol
        assert protocol is not None
        write, received = protocol.write, protocol.data_received

        def traced_write(data: bytes) -> None:
            self.trace("smtp", SEND, masked_auth(data) if self.logging_in else data)
            write(data)

        def traced_received(data: bytes) -> None:
            self.trace("smtp", RECV, data)
            received(data)

        protocol.write = traced_write  # type: ignore[method-assign]
        protocol.data_received = traced_received  # type: ignore[method-assign]


class _Delivery:
    """Notes whether this connection wrote a whole message (the final dot).

    aiosmtplib writes ``DATA`` and, after the 354, the message in one write;
    the public ``write`` of the connection's protocol object is wrapped to see it.
    """

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.data_sent = False
        self.message_sent = False
        protocol = client.protocol
        assert protocol is not None
        write = protocol.write

        def noted_write(data: bytes) -> None:
            if self.data_sent:
                self.message_sent = True
            elif data == b"DATA\r\n":
                self.data_sent = True
            write(data)

        protocol.write = noted_write  # type: ignore[method-assign]

    def reset(self) -> None:
        self.data_sent = self.message_sent = False


def _unconfirmed() -> UnconfirmedSendError:
    return UnconfirmedSendError(
        "the server did not confirm the message; it may have been delivered"
    )


def _tls_cause(err: BaseException) -> ssl.SSLError | None:
    """Find the TLS error aiosmtplib wrapped, if any."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _map_connect_error(err: BaseException, where: str) -> MailError:
    """Translate what aiosmtplib and ssl raise into the mail core's errors."""
    tls = _tls_cause(err)
    if isinstance(tls, ssl.SSLCertVerificationError):
        reason = tls.verify_message
        return CertificateError(f"{where}: certificate not trusted: {reason}")
    if tls is not None:
        return TlsError(f"{where}: TLS handshake failed: {tls}")
    if isinstance(err, aiosmtplib.SMTPAuthenticationError):
        if err.code < 500:
            # 454 "temporary authentication failure" is the server's trouble:
            # retry later, do not ask the user for a new password.
            return ConnectError(
                f"{where}: login failed for now: {err.code} {err.message}"
            )
        return AuthError(f"{where}: authentication refused: {err.code} {err.message}")
    if isinstance(err, TimeoutError):
        return MailTimeoutError(f"{where}: timed out")
    if isinstance(err, aiosmtplib.SMTPConnectResponseError) and err.code < 500:
        return ConnectError(f"{where}: busy: {err.code} {err.message}")
    if isinstance(err, aiosmtplib.SMTPResponseException):
        return ProtocolError(f"{where}: {err.code} {err.message}")
    if isinstance(err, OSError | aiosmtplib.SMTPException):
        return ConnectError(f"{where}: {err}")
    return ConnectError(f"{where}: {err!r}")


class SmtpSender:
    """One account's outgoing mail; safe to share between concurrent callers.

    Calls are serialised by a lock: a second message waits for the first and then
    goes over the same connection. ``close()`` must be called when done (it
    cancels the idle timer and says QUIT).
    """

    def __init__(
        self,
        settings: ServerSettings,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: float = DEFAULT_BACKOFF,
        deadline: float = DEFAULT_DEADLINE,
        local_hostname: str | None = None,
        trace: Trace | None = None,
    ) -> None:
        """Nothing connects until the first message; ``trace``: see ``trace``.

        ``timeout`` bounds each step, ``deadline`` a whole send with its retries.
        """
        self.settings = settings
        self.idle_timeout = idle_timeout
        self.timeout = timeout
        self.deadline = deadline
        self.attempts = max(1, attempts)
        self.backoff = backoff
        # getfqdn() can block on DNS; a fixed name keeps EHLO off the resolver.
        self.local_hostname = local_hostname or "localhost.localdomain"
        self._trace = trace
        self._lock = asyncio.Lock()
        self._client: aiosmtplib.SMTP | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._delivery: _Delivery | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.connections_opened = 0  # for diagnostics and tests

    @property
    def connected(self) -> bool:
        """Whether an authenticated connection is open right now."""
        return self._client is not None and self._client.is_connected

    @property
    def extensions(self) -> dict[str, str]:
        """ESMTP extensions of the open connection (after STARTTLS), for diagnostics."""
        client = self._client
        return dict(client.esmtp_extensions) if client is not None else {}

    async def send(self, mail: OutgoingMail) -> SendResult:
        """Build and send one message; raise MessageError/SendError/..."""
        return await self.send_composed(compose(mail))

    async def send_composed(self, composed: ComposedMail) -> SendResult:
        """Send an already built message, retrying transient failures."""
        data = composed.as_bytes()
        async with self._lock:
            self._cancel_idle_timer()
            try:
                async with asyncio.timeout(self.deadline):
                    return await self._send_with_retries(composed, data)
            except TimeoutError:
                delivery = self._delivery
                await self._disconnect(polite=False)
                if delivery is not None and delivery.message_sent:
                    raise _unconfirmed() from None
                raise MailTimeoutError(
                    f"the send took longer than {self.deadline:g} s"
                ) from None
            finally:
                self._arm_idle_timer()

    async def check(self) -> None:
        """Connect, secure and log in once (for the setup flow's test)."""
        async with self._lock:
            self._cancel_idle_timer()
            try:
                await self._ensure_connected()
            except _Transient as transient:
                # Retries are for sending; a check reports the failure itself.
                raise transient.error from transient
            finally:
                self._arm_idle_timer()

    async def close(self) -> None:
        """Cancel the idle timer and close the connection politely."""
        async with self._lock:
            self._cancel_idle_timer()
            await self._disconnect()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _send_with_retries(
        self, composed: ComposedMail, data: bytes
    ) -> SendResult:
        delay = self.backoff
        attempt = 0
        while True:
            attempt += 1
            reused = self.connected
            try:
                return await self._send_once(composed, data)
            except _Transient as transient:
                await self._disconnect(polite=False)
                if reused and isinstance(transient.error, ConnectError):
                    # A kept connection the server dropped while idle: not a
                    # real failure, reconnect at once (does not use an attempt).
                    _LOGGER.debug("Kept SMTP connection was dropped; reconnecting")
                    attempt -= 1
                    continue
                if attempt >= self.attempts:
                    raise transient.error from transient
                _LOGGER.debug(
                    "Transient SMTP failure (%s), retry %d in %.2fs",
                    transient.error,
                    attempt,
                    delay,
                )
                await asyncio.sleep(delay)
                delay *= 2

    async def _send_once(self, composed: ComposedMail, data: bytes) -> SendResult:
        client = await self._ensure_connected()
        delivery = self._delivery
        assert delivery is not None
        delivery.reset()
        try:
            refused, reply = await client.sendmail(
                composed.sender, list(composed.recipients), data
            )
        except aiosmtplib.SMTPRecipientsRefused as err:
            first = err.recipients[0]
            error = SendError(first.code, first.message, permanent=first.code >= 500)
            if error.permanent:
                raise error from err
            raise _Transient(error) from err
        except aiosmtplib.SMTPNotSupported as err:
            raise MessageError(str(err)) from err
        except aiosmtplib.SMTPResponseException as err:
            if err.code < 200:
                # aiosmtplib's code for a reply it could not parse.
                await self._disconnect(polite=False)
                raise ProtocolError(
                    f"garbled reply from the server: {err.message}"
                ) from err
            # A 4xx (421 "closing" included) drops the connection in the retry
            # loop, so the next attempt starts on a fresh one.
            error = SendError(err.code, err.message, permanent=err.code >= 500)
            if error.permanent:
                raise error from err
            raise _Transient(error) from err
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError, OSError) as err:
            if delivery.message_sent:
                await self._disconnect(polite=False)
                raise _unconfirmed() from err
            raise _Transient(ConnectError(f"connection lost: {err}")) from err
        except TimeoutError as err:
            if delivery.message_sent:
                await self._disconnect(polite=False)
                raise _unconfirmed() from err
            raise _Transient(MailTimeoutError("the server did not answer")) from err
        accepted = tuple(r for r in composed.recipients if r not in refused)
        return SendResult(
            accepted,
            {rcpt: (resp.code, resp.message) for rcpt, resp in refused.items()},
            reply,
        )

    async def _ensure_connected(self) -> aiosmtplib.SMTP:
        """Return the kept connection, or open, secure and log in a new one."""
        if self._client is not None and self._client.is_connected:
            return self._client
        self._client = None
        try:
            client = await self._open()
        except MailError as err:
            if isinstance(err, ConnectError) and not isinstance(err, TlsError):
                raise _Transient(err) from err
            raise
        self._client = client
        self._delivery = _Delivery(client)
        return client

    async def _open(self) -> aiosmtplib.SMTP:
        settings = self.settings
        where = f"{settings.host}:{settings.port}"
        if settings.security is not Security.NONE and self._ssl_context is None:
            loop = asyncio.get_running_loop()
            self._ssl_context = await loop.run_in_executor(
                None, lambda: create_ssl_context(verify=settings.verify_tls)
            )
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            local_hostname=self.local_hostname,
            timeout=self.timeout,
            use_tls=settings.security is Security.SSL,
            start_tls=False,  # done by hand below, so it can fail closed
            tls_context=self._ssl_context,
        )
        try:
            await self._handshake(client, where)
        except MailError:
            client.close()
            raise
        except aiosmtplib.SMTPException as err:
            client.close()
            if "AUTH extension" in str(err):
                raise AuthError(f"{where} does not offer AUTH") from err
            raise _map_connect_error(err, where) from err
        except (OSError, TimeoutError, ssl.SSLError) as err:
            client.close()
            raise _map_connect_error(err, where) from err
        except BaseException:
            client.close()
            raise
        self.connections_opened += 1
        _LOGGER.debug("Connected to SMTP server %s (%s)", where, settings.security)
        return client

    async def _handshake(self, client: aiosmtplib.SMTP, where: str) -> None:
        """Connect, upgrade (failing closed) and log in, in that order."""
        settings = self.settings
        greeting = await client.connect()
        wire = _Wire(self._trace) if self._trace is not None else None
        if wire is not None:
            wire.greeting(greeting)
            wire.attach(client)
        if settings.security is Security.STARTTLS:
            await client.ehlo()
            if not client.supports_extension("starttls"):
                raise StartTlsUnavailableError(
                    f"{where} does not offer STARTTLS; not sending credentials"
                )
            await client.starttls()
            await client.ehlo()
        if settings.username:
            if wire is not None:
                wire.logging_in = True
            try:
                if settings.token_source is not None:
                    await self._oauth_login(client, settings.token_source, where)
                else:
                    await client.login(settings.username, settings.password)
            finally:
                if wire is not None:
                    wire.logging_in = False

    async def _oauth_login(
        self, client: aiosmtplib.SMTP, source: TokenSource, where: str
    ) -> None:
        """AUTH XOAUTH2, else OAUTHBEARER, with one forced refresh.

        Sent with aiosmtplib's ``execute_command`` rather than its
        ``auth_xoauth2()``: that one answers the error challenge too, but
        drops it, and the challenge says why the token was refused.
        """
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        offered = {m.upper() for m in client.server_auth_methods}
        mechanism = next((m for m in sasl.MECHANISMS if m in offered), None)
        if mechanism is None:
            raise AuthError(f"{where} offers no OAuth2 sign-in (XOAUTH2, OAUTHBEARER)")

        async def attempt(token: str) -> None:
            initial = sasl.initial_response(mechanism, self.settings.username, token)
            reply = await client.execute_command(
                b"AUTH", mechanism.encode(), initial.encode()
            )
            reason: OAuthReason | None = None
            if reply.code == 334:
                reason = sasl.refusal_reason(reply.message, source.expires_at)
                reply = await client.execute_command(sasl.ABORT[mechanism].encode())
            if reply.code == 235:
                return
            if reply.code < 500:
                # 454 "temporary authentication failure": retry later.
                message = sasl.scrub(
                    reply.message, mechanism, self.settings.username, token
                )
                raise ConnectError(
                    f"{where}: login failed for now: {reply.code} {message}"
                )
            message = sasl.scrub(
                reply.message, mechanism, self.settings.username, token
            )
            raise OAuthTokenRefused(
                reason or sasl.reason_for(message, source.expires_at),
                f"{reply.code} {message}",
            )

        await sasl.with_token(source, attempt)

    def _arm_idle_timer(self) -> None:
        if self._client is None or self.idle_timeout <= 0:
            if self.idle_timeout <= 0:
                self._drop_in_background()
            return
        loop = asyncio.get_running_loop()
        self._idle_handle = loop.call_later(self.idle_timeout, self._on_idle)

    def _cancel_idle_timer(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def _on_idle(self) -> None:
        self._idle_handle = None
        if self._lock.locked():
            return  # a send is running; it re-arms the timer when done
        self._drop_in_background()

    def _drop_in_background(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        task = asyncio.get_running_loop().create_task(self._quit(client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _disconnect(self, *, polite: bool = True) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if polite:
            await self._quit(client)
        else:
            client.close()

    @staticmethod
    async def _quit(client: aiosmtplib.SMTP) -> None:
        """Say QUIT briefly; a server that does not answer is simply dropped.

        Then wait (as briefly) until the connection is really gone: a TLS
        connection still exchanges its closing alerts after ``close()``, and
        a caller that goes on (Home Assistant unloading the entry) must not
        leave that half-closed connection behind.
        """
        protocol = client.protocol if client.is_connected else None
        gone = asyncio.Event()
        if protocol is not None:
            lost = protocol.connection_lost

            def noted_lost(exc: Exception | None) -> None:
                gone.set()
                lost(exc)

            protocol.connection_lost = noted_lost  # type: ignore[method-assign]
        try:
            if client.is_connected:
                await client.quit(timeout=QUIT_TIMEOUT)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        finally:
            client.close()
        if protocol is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), QUIT_TIMEOUT)
