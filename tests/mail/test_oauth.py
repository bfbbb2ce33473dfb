"""OAuth2 sign-in (XOAUTH2, OAUTHBEARER) of the IMAP, POP3 and SMTP clients,
against Dovecot's oauth2 passdb, the aiosmtpd handler and the local
authorization server (tests/mailserver/oauth.py) that both ask."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import pytest

from custom_components.mail_relay.mail.compose import OutgoingMail
from custom_components.mail_relay.mail.errors import OAuthTokenRefused
from custom_components.mail_relay.mail.imap import ImapClient
from custom_components.mail_relay.mail.message import MailEvent
from custom_components.mail_relay.mail.models import Security, ServerSettings
from custom_components.mail_relay.mail.oauth import StaticTokenSource, TokenSource
from custom_components.mail_relay.mail.pop3 import Pop3Poller, Pop3State
from custom_components.mail_relay.mail.smtp import SmtpSender
from tests.mailserver import (
    DovecotServer,
    MailUser,
    OAuthServer,
    SmtpServer,
    TestCertificate,
)
from tests.mailserver.dovecot import make_message


class RefreshingSource:
    """A token source that refreshes at the real server (by the test's hand).

    Starts with ``token``; a forced refresh mints a new token at the
    authorization server, as a refresh-token grant would.
    """

    def __init__(self, server: OAuthServer, user: str, token: str) -> None:
        self.server = server
        self.user = user
        self.token = token
        self.forced = 0
        self._expires_at: float | None = server.by_access[token].expires_at

    async def access_token(self, *, force_refresh: bool = False) -> str:
        if force_refresh:
            self.forced += 1
            issued = self.server.issue(self.user)
            self.token, self._expires_at = issued.access_token, issued.expires_at
        return self.token

    @property
    def expires_at(self) -> float | None:
        return self._expires_at


def oauth_settings(
    server: DovecotServer,
    user: MailUser,
    source: TokenSource,
    *,
    protocol: str = "imap",
    security: str = "ssl",
) -> ServerSettings:
    ports = {
        ("imap", "ssl"): server.imaps_port,
        ("imap", "starttls"): server.imap_port,
        ("pop3", "ssl"): server.pop3s_port,
    }
    return ServerSettings(
        host=server.host,
        port=ports[(protocol, security)],
        security=Security(security),
        username=user.username,
        password="not-used",
        token_source=source,
    )


def b64(user: str, token: str) -> str:
    return base64.b64encode(
        f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    ).decode()


# -- IMAP ---------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["ssl", "starttls"])
async def test_imap_xoauth2_logs_in_and_reads_mail(
    oauth_dovecot: DovecotServer,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
    tls_context: Any,
    security: str,
) -> None:
    await asyncio.to_thread(
        oauth_dovecot.deliver, oauth_user, make_message("signed in with a token")
    )
    token = oauth_server.issue(oauth_user.address).access_token
    sent: list[bytes] = []
    client = ImapClient(
        oauth_settings(
            oauth_dovecot, oauth_user, StaticTokenSource(token), security=security
        ),
        ssl_context=tls_context,
        trace=lambda _p, direction, data: sent.append(data)
        if direction == "send"
        else None,
    )
    await client.connect()
    try:
        uidvalidity, _ = await client.select("INBOX")
        events = await client.fetch_events(
            await client.new_uids(0),
            account=oauth_user.address,
            folder="INBOX",
            uidvalidity=uidvalidity,
            text_limit=1000,
            include_headers=False,
        )
    finally:
        await client.logout()
    assert [e.subject for e in events] == ["signed in with a token"]
    assert any(b"AUTHENTICATE XOAUTH2 ****" in line for line in sent)
    assert any("method=XOAUTH2" in line for line in oauth_dovecot.logins(oauth_user))


async def login_imap(settings: ServerSettings, tls_context: Any, **kw: Any) -> None:
    client = ImapClient(settings, ssl_context=tls_context, timeout=10.0, **kw)
    try:
        await client.connect()
        await client.select("INBOX")
    finally:
        await client.logout()


async def test_imap_oauthbearer_when_xoauth2_is_not_offered(
    mail_cert: TestCertificate, oauth_server: OAuthServer, tls_context: Any
) -> None:
    server = DovecotServer(
        mail_cert, oauth=oauth_server, oauth_mechanisms=("oauthbearer",)
    )
    await asyncio.to_thread(server.start)
    try:
        user = server.add_user()
        source = StaticTokenSource(oauth_server.issue(user.address).access_token)
        await login_imap(oauth_settings(server, user, source), tls_context)
        assert any("method=OAUTHBEARER" in line for line in server.logins(user))
        # A refused token ends with OAUTHBEARER's own answer (AQ==), at once.
        bad = StaticTokenSource("not-a-token")
        started = time.monotonic()
        with pytest.raises(OAuthTokenRefused) as refused:
            await login_imap(oauth_settings(server, user, bad), tls_context)
        assert time.monotonic() - started < 1.0
        assert refused.value.reason == "invalid"
    finally:
        await asyncio.to_thread(server.cleanup)


async def test_imap_refused_token_is_answered_at_once(
    oauth_dovecot: DovecotServer, oauth_user: MailUser, tls_context: Any
) -> None:
    """The server's error challenge is answered, not waited out (aioimaplib's
    xoauth2() waits for the whole timeout); a refresh giving the same token
    back is not tried twice."""
    source = StaticTokenSource("revoked-or-made-up")
    started = time.monotonic()
    with pytest.raises(OAuthTokenRefused) as refused:
        await login_imap(oauth_settings(oauth_dovecot, oauth_user, source), tls_context)
    assert time.monotonic() - started < 1.0
    assert refused.value.reason == "invalid"
    assert refused.value.fatal
    assert source.forced == 1


async def test_imap_token_of_another_account_is_refused(
    oauth_dovecot: DovecotServer,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
    tls_context: Any,
) -> None:
    other = oauth_dovecot.add_user()
    source = StaticTokenSource(oauth_server.issue(other.address).access_token)
    with pytest.raises(OAuthTokenRefused) as refused:
        await login_imap(oauth_settings(oauth_dovecot, oauth_user, source), tls_context)
    # Dovecot answers 401 as for any bad token (Gmail's 400 and Exchange's BAD
    # tell "account": see the SMTP and scripted tests).
    assert refused.value.reason == "invalid"
    assert oauth_dovecot.logins(oauth_user) == []


async def test_imap_expired_token_one_forced_refresh_then_success(
    oauth_dovecot: DovecotServer,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
    tls_context: Any,
) -> None:
    issued = oauth_server.issue(oauth_user.address)
    oauth_server.expire(issued.access_token)
    source = RefreshingSource(oauth_server, oauth_user.address, issued.access_token)
    await login_imap(oauth_settings(oauth_dovecot, oauth_user, source), tls_context)
    assert source.forced == 1
    assert await _logged_in(oauth_dovecot, oauth_user)


async def test_imap_expired_token_reason_when_refresh_does_not_help(
    oauth_dovecot: DovecotServer,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
    tls_context: Any,
) -> None:
    issued = oauth_server.issue(oauth_user.address)
    oauth_server.expire(issued.access_token)
    source = StaticTokenSource(issued.access_token, expires_at=time.time() - 1)
    with pytest.raises(OAuthTokenRefused) as refused:
        await login_imap(oauth_settings(oauth_dovecot, oauth_user, source), tls_context)
    assert refused.value.reason == "expired"


async def _logged_in(server: DovecotServer, user: MailUser) -> bool:
    """Dovecot's log process writes the login line a moment later."""
    for _ in range(50):
        if server.logins(user):
            return True
        await asyncio.sleep(0.05)
    return False


# -- POP3 ---------------------------------------------------------------------------


async def test_pop3_xoauth2_polls_mail(
    oauth_dovecot: DovecotServer,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
    trust_test_cert: Path,
) -> None:
    await asyncio.to_thread(
        oauth_dovecot.deliver, oauth_user, make_message("by POP3 with a token")
    )
    sent: list[bytes] = []
    source = StaticTokenSource(oauth_server.issue(oauth_user.address).access_token)
    poller = Pop3Poller(
        oauth_settings(oauth_dovecot, oauth_user, source, protocol="pop3"),
        account=oauth_user.address,
        state=Pop3State(),
        trace=lambda _p, direction, data: sent.append(data)
        if direction == "send"
        else None,
    )
    events: list[MailEvent] = []

    async def collect(event: MailEvent) -> None:
        events.append(event)

    await poller.poll_once(collect)
    assert [e.subject for e in events] == ["by POP3 with a token"]
    assert b"AUTH XOAUTH2\r\n" in sent
    assert source.token.encode() not in b"".join(sent)


async def test_pop3_refused_token_answered_at_once_then_refresh(
    oauth_dovecot: DovecotServer,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
    trust_test_cert: Path,
) -> None:
    bad = StaticTokenSource("made-up")
    poller = Pop3Poller(
        oauth_settings(oauth_dovecot, oauth_user, bad, protocol="pop3"),
        account=oauth_user.address,
        state=Pop3State(),
    )
    started = time.monotonic()
    with pytest.raises(OAuthTokenRefused) as refused:
        await poller.check_login()
    assert time.monotonic() - started < 1.0
    assert refused.value.reason == "invalid"
    # An expired token: one forced refresh, then in.
    issued = oauth_server.issue(oauth_user.address)
    oauth_server.expire(issued.access_token)
    source = RefreshingSource(oauth_server, oauth_user.address, issued.access_token)
    poller = Pop3Poller(
        oauth_settings(oauth_dovecot, oauth_user, source, protocol="pop3"),
        account=oauth_user.address,
        state=Pop3State(),
    )
    await poller.check_login()
    assert source.forced == 1


# -- SMTP ---------------------------------------------------------------------------


def smtp_oauth_settings(
    server: SmtpServer, user: MailUser, source: TokenSource
) -> ServerSettings:
    return ServerSettings(
        host=server.host,
        port=server.starttls_port,
        security=Security.STARTTLS,
        username=user.address,
        token_source=source,
    )


async def test_smtp_xoauth2_sends_mail(
    oauth_smtp: SmtpServer,
    oauth_dovecot: DovecotServer,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
    tls_context: Any,
) -> None:
    source = StaticTokenSource(oauth_server.issue(oauth_user.address).access_token)
    sent: list[bytes] = []
    sender = SmtpSender(
        smtp_oauth_settings(oauth_smtp, oauth_user, source),
        trace=lambda _p, direction, data: sent.append(data)
        if direction == "send"
        else None,
    )
    sender._ssl_context = tls_context
    try:
        result = await sender.send(
            OutgoingMail(
                sender=oauth_user.address,
                to=[oauth_user.address],
                subject="Envoyé avec un jeton",
                text="Bonjour.",
            )
        )
    finally:
        await sender.close()
    assert result.accepted == (oauth_user.address,)
    (received,) = oauth_smtp.received_by(oauth_user.address)
    assert received.login == oauth_user.address
    assert b"AUTH XOAUTH2 ****\r\n" in sent
    assert source.token.encode() not in b"".join(sent)


async def test_smtp_refused_tokens_and_their_reasons(
    oauth_smtp: SmtpServer,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
    tls_context: Any,
) -> None:
    """Gmail's error challenge tells another address's token (400) from a dead
    one (401); either is answered at once."""
    other = oauth_server.issue("someone-else@mailrelay.test").access_token
    for token, reason in ((other, "account"), ("made-up", "invalid")):
        source = StaticTokenSource(token)
        sender = SmtpSender(smtp_oauth_settings(oauth_smtp, oauth_user, source))
        sender._ssl_context = tls_context
        started = time.monotonic()
        try:
            with pytest.raises(OAuthTokenRefused) as refused:
                await sender.check()
        finally:
            await sender.close()
        assert time.monotonic() - started < 1.0
        assert refused.value.reason == reason
        assert source.forced == 1


async def test_smtp_expired_token_one_forced_refresh_then_success(
    oauth_smtp: SmtpServer,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
    tls_context: Any,
) -> None:
    issued = oauth_server.issue(oauth_user.address)
    oauth_server.expire(issued.access_token)
    source = RefreshingSource(oauth_server, oauth_user.address, issued.access_token)
    sender = SmtpSender(smtp_oauth_settings(oauth_smtp, oauth_user, source))
    sender._ssl_context = tls_context
    try:
        await sender.check()
    finally:
        await sender.close()
    assert source.forced == 1
