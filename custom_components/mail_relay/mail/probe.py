"""Connection tests for account setup: log in once, and list IMAP folders.

Each protocol's own client does the work (the same code that later watches or
sends), so the wizard tests exactly what the integration will run. Every failure
is one exception of ``errors``; STARTTLS fails closed before any password is sent.
"""

from __future__ import annotations

import asyncio
import ssl
from functools import partial

from .errors import AuthError, OAuthRequiredError, ProtocolError
from .imap import ImapClient
from .models import Protocol, Security, ServerSettings
from .options import Timeouts
from .pop3 import Pop3Poller
from .providers import oauth_only_hosts
from .smtp import SmtpSender
from .tls import create_ssl_context
from .trace import Trace

DEFAULT_TIMEOUT = 15.0

# Hosts of the presets that take OAuth2 only: a refused password there means
# "sign in with the provider".
OAUTH_ONLY_HOSTS = oauth_only_hosts()


def oauth_hint(settings: ServerSettings, err: AuthError) -> AuthError:
    """Turn a refused password at an OAuth2-only host into OAuthRequiredError."""
    if (
        isinstance(err, OAuthRequiredError)
        or settings.host.lower() not in OAUTH_ONLY_HOSTS
    ):
        return err
    return OAuthRequiredError(f"{settings.host} accepts only OAuth2")


async def ssl_context(settings: ServerSettings) -> ssl.SSLContext | None:
    """Build the TLS context off the event loop (it reads the trust store)."""
    if settings.security is Security.NONE:
        return None
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        None, partial(create_ssl_context, verify=settings.verify_tls)
    )


async def imap_login(
    settings: ServerSettings, io_timeout: float, trace: Trace | None = None
) -> ImapClient:
    """Return a logged-in IMAP client; the caller logs it out."""
    client = ImapClient(
        settings,
        ssl_context=await ssl_context(settings),
        timeout=io_timeout,
        trace=trace,
    )
    try:
        await client.connect()
    except BaseException:
        await client.logout()
        raise
    return client


async def pop3_login(
    settings: ServerSettings, io_timeout: float, trace: Trace | None = None
) -> Pop3Poller:
    """Log in and out once; return the poller, which keeps the CAPA it saw."""
    poller = Pop3Poller(
        settings,
        account=settings.username,
        state=None,
        ssl_context=await ssl_context(settings),
        timeouts=Timeouts(io=io_timeout),
        trace=trace,
    )
    await poller.check_login()
    return poller


async def smtp_login(
    settings: ServerSettings, io_timeout: float, trace: Trace | None = None
) -> dict[str, str]:
    """Connect, secure, log in and quit; return the server's ESMTP extensions."""
    sender = SmtpSender(settings, timeout=io_timeout, attempts=1, trace=trace)
    try:
        await sender.check()
        return sender.extensions
    finally:
        await sender.close()


# Warnings of a login test that succeeded: the server works, with a quirk the
# user should hear of (hosts translate the key).
SEARCH_INCONSISTENT = "search_inconsistent"


async def _imap_quirks(client: ImapClient) -> list[str]:
    """Probe INBOX for the quirks that would make other clients miss mail."""
    try:
        await client.select("INBOX", readonly=True)
        consistent = await client.search_consistent()
    except ProtocolError:  # the login worked; the watcher will say the rest
        return []
    return [SEARCH_INCONSISTENT] if consistent is False else []


async def _login(
    settings: ServerSettings, protocol: Protocol, io_timeout: float
) -> list[str]:
    if protocol is Protocol.IMAP:
        client = await imap_login(settings, io_timeout)
        try:
            return await _imap_quirks(client)
        finally:
            await client.logout()
    if protocol is Protocol.POP3:
        await pop3_login(settings, io_timeout)
    else:
        await smtp_login(settings, io_timeout)
    return []


async def test_login(
    settings: ServerSettings, protocol: Protocol, *, io_timeout: float = DEFAULT_TIMEOUT
) -> list[str]:
    """Prove the settings work: connect, secure, log in, leave; return warnings.

    A warning (``SEARCH_INCONSISTENT``) means the account works but the
    server misbehaves in a way the user should know of.
    """
    try:
        return await _login(settings, protocol, io_timeout)
    except AuthError as err:
        hinted = oauth_hint(settings, err)
        if hinted is err:
            raise
        raise hinted from err


test_login.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


async def list_folders(
    settings: ServerSettings, *, io_timeout: float = DEFAULT_TIMEOUT
) -> list[str]:
    """Log in and return the IMAP folders, INBOX first."""
    client = await imap_login(settings, io_timeout)
    try:
        folders = await client.list_folders()
    finally:
        await client.logout()
    names = sorted(set(folders), key=str.casefold)
    inbox = [n for n in names if n.upper() == "INBOX"]
    return inbox + [n for n in names if n.upper() != "INBOX"]


async def list_folder_uses(
    settings: ServerSettings, *, io_timeout: float = DEFAULT_TIMEOUT
) -> list[tuple[str, str | None]]:
    """Log in and return the IMAP folders with their special use, INBOX first."""
    client = await imap_login(settings, io_timeout)
    try:
        found = dict(await client.folder_uses())
    finally:
        await client.logout()
    names = sorted(found, key=str.casefold)
    inbox = [n for n in names if n.upper() == "INBOX"]
    return [(n, found[n]) for n in inbox + [n for n in names if n.upper() != "INBOX"]]
