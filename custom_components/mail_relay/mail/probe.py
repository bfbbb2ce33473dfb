"""Connection tests for account setup: log in once, and list IMAP folders.

Every failure is mapped to one exception of ``errors`` so the setup wizard can
say exactly what went wrong. STARTTLS fails closed: when the server does not
offer it, we stop before any password is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import poplib
import re
import socket
import ssl
from collections.abc import Iterator
from functools import partial

import aioimaplib
import aiosmtplib

from .errors import (
    AuthError,
    CertificateError,
    ConnectError,
    MailError,
    MailTimeoutError,
    OAuthRequiredError,
    ProtocolError,
    StartTlsUnavailableError,
    TlsError,
)
from .models import Protocol, Security, ServerSettings
from .tls import create_ssl_context

DEFAULT_TIMEOUT = 15.0

# Hosts that take OAuth2 only: a refused password there means "use OAuth2".
OAUTH_ONLY_HOSTS = frozenset(
    {"outlook.office365.com", "smtp-mail.outlook.com", "smtp.office365.com"}
)

_LIST_LINE = re.compile(
    rb'^\((?P<flags>[^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (?P<name>.+)$', re.IGNORECASE
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def map_error(exc: BaseException, settings: ServerSettings) -> MailError:
    """Translate a library or socket error into the core's hierarchy."""
    for err in _chain(exc):
        if isinstance(err, MailError):
            return err
        if isinstance(err, ssl.SSLCertVerificationError):
            return CertificateError(f"{settings.host}: {err.verify_message}")
        if isinstance(err, ssl.SSLError):
            return TlsError(f"{settings.host}: TLS failed ({err.reason})")
    for err in _chain(exc):
        if isinstance(err, TimeoutError | socket.timeout):
            return MailTimeoutError(f"{settings.host}:{settings.port} did not answer")
        if isinstance(err, aiosmtplib.SMTPAuthenticationError):
            return _auth_error(settings, err.message)
        if isinstance(err, OSError | EOFError | aiosmtplib.SMTPConnectError):
            return ConnectError(f"cannot reach {settings.host}:{settings.port}: {err}")
        if isinstance(err, aioimaplib.CommandTimeout):
            return MailTimeoutError(f"{settings.host}:{settings.port} did not answer")
        if isinstance(  # pragma: no branch
            err, aioimaplib.Abort | aiosmtplib.SMTPServerDisconnected
        ):
            return ConnectError(f"{settings.host} closed the connection")
    return ProtocolError(f"{settings.host}: unexpected answer ({type(exc).__name__})")


def _auth_error(settings: ServerSettings, detail: str) -> AuthError:
    if settings.host.lower() in OAUTH_ONLY_HOSTS:
        return OAuthRequiredError(f"{settings.host} accepts only OAuth2")
    return AuthError(f"{settings.host} refused the login: {detail}")


async def ssl_context(settings: ServerSettings) -> ssl.SSLContext:
    """Build the TLS context off the event loop (it reads the trust store)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        None, partial(create_ssl_context, verify=settings.verify_tls)
    )


# -- IMAP ------------------------------------------------------------------


def _imap_discard(client: aioimaplib.IMAP4) -> None:
    """Drop a client and every task it started, so nothing lingers."""
    protocol = client.protocol
    if protocol.transport is not None:
        protocol.transport.close()
    for task in (*protocol.tasks, *client.tasks, client._client_task):
        task.cancel()


async def imap_connect(
    settings: ServerSettings, *, io_timeout: float = DEFAULT_TIMEOUT
) -> aioimaplib.IMAP4:
    """Connect, upgrade with STARTTLS when asked (fail closed), and log in."""
    ctx = None if settings.security is Security.NONE else await ssl_context(settings)
    client: aioimaplib.IMAP4
    if settings.security is Security.SSL:
        client = aioimaplib.IMAP4_SSL(
            settings.host, settings.port, timeout=io_timeout, ssl_context=ctx
        )
    else:
        client = aioimaplib.IMAP4(settings.host, settings.port, timeout=io_timeout)
    try:
        await client.wait_hello_from_server()
        if settings.security is Security.STARTTLS:
            assert ctx is not None
            await _imap_starttls(client, settings, ctx, io_timeout)
        response = await client.login(settings.username, settings.password)
    except BaseException as err:
        _imap_discard(client)
        if isinstance(err, asyncio.CancelledError):
            raise
        raise map_error(err, settings) from err
    if response.result != "OK":
        _imap_discard(client)
        detail = b" ".join(response.lines).decode(errors="replace")
        raise _auth_error(settings, detail)
    return client


async def _imap_starttls(
    client: aioimaplib.IMAP4,
    settings: ServerSettings,
    ctx: ssl.SSLContext,
    io_timeout: float,
) -> None:
    """Upgrade the connection; aioimaplib has no STARTTLS of its own."""
    protocol = client.protocol
    if "STARTTLS" not in protocol.capabilities:
        raise StartTlsUnavailableError(f"{settings.host} offers no STARTTLS")
    loop = asyncio.get_running_loop()
    command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=loop)
    response = await asyncio.wait_for(protocol.execute(command), io_timeout)
    if response.result != "OK":
        raise StartTlsUnavailableError(f"{settings.host} refused STARTTLS")
    # Anything the server sent before the handshake is not trusted.
    protocol.incomplete_line = b""
    protocol.transport = await loop.start_tls(
        protocol.transport,
        protocol,
        ctx,
        server_hostname=settings.host,
        ssl_handshake_timeout=io_timeout,
    )
    await asyncio.wait_for(protocol.capability(), io_timeout)


async def imap_logout(client: aioimaplib.IMAP4) -> None:
    """Log out politely; a server that hangs up first is fine."""
    with contextlib.suppress(Exception):
        await client.logout()
    _imap_discard(client)


def parse_list_response(lines: list[bytes]) -> list[str]:
    """Return the selectable folder names of a LIST response."""
    names: list[str] = []
    pending_literal: bytes | None = None
    for raw in lines:
        line = raw.strip()
        if pending_literal is not None:
            names.append(line.decode("utf-8", "replace"))
            pending_literal = None
            continue
        match = _LIST_LINE.match(line)
        if match is None:
            continue
        if b"\\noselect" in match["flags"].lower():
            continue
        name = match["name"]
        if name.startswith(b"{") and name.endswith(b"}"):
            pending_literal = name
            continue
        if name.startswith(b'"') and name.endswith(b'"'):
            name = re.sub(rb"\\(.)", rb"\1", name[1:-1])
        names.append(name.decode("utf-8", "replace"))
    return names


async def list_folders(
    settings: ServerSettings, *, io_timeout: float = DEFAULT_TIMEOUT
) -> list[str]:
    """Log in and return the IMAP folders, INBOX first."""
    client = await imap_connect(settings, io_timeout=io_timeout)
    try:
        response = await client.list('""', "*")
    except BaseException as err:
        _imap_discard(client)
        if isinstance(err, asyncio.CancelledError):
            raise
        raise map_error(err, settings) from err
    await imap_logout(client)
    if response.result != "OK":
        raise ProtocolError(f"{settings.host} refused LIST")
    names = sorted(set(parse_list_response(response.lines)), key=str.casefold)
    inbox = [n for n in names if n.upper() == "INBOX"]
    return inbox + [n for n in names if n.upper() != "INBOX"]


# -- POP3 ------------------------------------------------------------------


def _pop3_login(
    settings: ServerSettings, ctx: ssl.SSLContext | None, timeout: float
) -> None:
    """Log in with poplib; blocking, runs in an executor."""
    client: poplib.POP3
    if settings.security is Security.SSL:
        client = poplib.POP3_SSL(
            settings.host, settings.port, timeout=timeout, context=ctx
        )
    else:
        client = poplib.POP3(settings.host, settings.port, timeout=timeout)
    try:
        if settings.security is Security.STARTTLS:
            try:
                capabilities = client.capa()
            except poplib.error_proto:
                capabilities = {}
            if "STLS" not in capabilities:
                raise StartTlsUnavailableError(f"{settings.host} offers no STLS")
            client.stls(context=ctx)
        try:
            client.user(settings.username)
            client.pass_(settings.password)
        except poplib.error_proto as err:
            raise _auth_error(settings, str(err)) from None
        with contextlib.suppress(poplib.error_proto, OSError):
            client.quit()
    finally:
        client.close()


async def pop3_login(
    settings: ServerSettings, *, io_timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Log in to a POP3 server once and leave."""
    ctx = None if settings.security is Security.NONE else await ssl_context(settings)
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, _pop3_login, settings, ctx, io_timeout)
    except Exception as err:
        raise map_error(err, settings) from err


# -- SMTP ------------------------------------------------------------------


async def smtp_connect(
    settings: ServerSettings, *, io_timeout: float = DEFAULT_TIMEOUT
) -> aiosmtplib.SMTP:
    """Connect, upgrade with STARTTLS when asked (fail closed), and log in."""
    ctx = None if settings.security is Security.NONE else await ssl_context(settings)
    client = aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        use_tls=settings.security is Security.SSL,
        start_tls=False,
        tls_context=ctx if settings.security is Security.SSL else None,
        timeout=io_timeout,
    )
    try:
        await client.connect()
        if settings.security is Security.STARTTLS:
            await _smtp_starttls(client, settings, ctx)
        if settings.username:
            await client.login(settings.username, settings.password)
    except BaseException as err:
        client.close()
        if isinstance(err, asyncio.CancelledError):
            raise
        raise map_error(err, settings) from err
    return client


async def _smtp_starttls(
    client: aiosmtplib.SMTP, settings: ServerSettings, ctx: ssl.SSLContext | None
) -> None:
    """Upgrade before AUTH; a server without STARTTLS never sees the password."""
    await client.ehlo()
    if not client.supports_extension("starttls"):
        raise StartTlsUnavailableError(f"{settings.host} offers no STARTTLS")
    await client.starttls(tls_context=ctx)


async def smtp_login(
    settings: ServerSettings, *, io_timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Log in to an SMTP server once (or just greet it without a username)."""
    client = await smtp_connect(settings, io_timeout=io_timeout)
    with contextlib.suppress(aiosmtplib.SMTPException):
        await client.quit()
    client.close()


async def test_login(
    settings: ServerSettings, protocol: Protocol, *, io_timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Prove the settings work: connect, secure, log in, leave."""
    if protocol is Protocol.IMAP:
        await imap_logout(await imap_connect(settings, io_timeout=io_timeout))
    elif protocol is Protocol.POP3:
        await pop3_login(settings, io_timeout=io_timeout)
    else:
        await smtp_login(settings, io_timeout=io_timeout)


test_login.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
