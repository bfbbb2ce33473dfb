"""OAuth2 sign-in (XOAUTH2, OAUTHBEARER) of the IMAP, POP3 and SMTP clients,
against Dovecot's oauth2 passdb, the aiosmtpd handler and the local
authorization server (tests/mailserver/oauth.py) that both ask."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from custom_components.mail_relay.mail.backoff import Backoff
from custom_components.mail_relay.mail.compose import OutgoingMail
from custom_components.mail_relay.mail.errors import OAuthTokenRefused
from custom_components.mail_relay.mail.imap import ImapClient, ImapWatcher
from custom_components.mail_relay.mail.imap.watcher import TOKEN_RENEW_MARGIN
from custom_components.mail_relay.mail.message import MailEvent
from custom_components.mail_relay.mail.models import Security, ServerSettings
from custom_components.mail_relay.mail.oauth import StaticTokenSource, TokenSource, sasl
from custom_components.mail_relay.mail.options import Timeouts
from custom_components.mail_relay.mail.pop3 import Pop3Poller, Pop3State
from custom_components.mail_relay.mail.smtp import SmtpSender
from tests.mail.test_imap import Sink, make_watcher, running
from tests.mailserver import (
    DovecotServer,
    MailUser,
    OAuthServer,
    SmtpServer,
    TestCertificate,
)
from tests.mailserver.dovecot import make_message
from tests.mailserver.imap_scripted import ScriptedImapServer, Writer
from tests.mailserver.oauth import IssuedToken


class RefreshingSource:
    """A token source that refreshes at the authorization server over HTTP.

    Starts with ``issued``; a forced refresh is a real refresh-token grant
    (the refresh token rotates). The mail tests need only this much; the
    product's sources are built elsewhere (mail/oauth clients, Home Assistant).
    """

    def __init__(self, server: OAuthServer, issued: IssuedToken) -> None:
        self.server = server
        self.token = issued.access_token
        self.refresh_token = issued.refresh_token or ""
        self.forced = 0
        self._expires_at: float | None = issued.expires_at

    async def access_token(self, *, force_refresh: bool = False) -> str:
        if force_refresh:
            self.forced += 1
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self.refresh_token,
                "client_id": self.server.default_client.client_id,
            }
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{self.server.base}/token", data=form) as response,
            ):
                assert response.status == 200, await response.text()
                token = await response.json()
            self.token = token["access_token"]
            self.refresh_token = token["refresh_token"]
            self._expires_at = time.time() + token["expires_in"]
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
        # POP3 takes it too.
        poller = Pop3Poller(
            oauth_settings(server, user, source, protocol="pop3"),
            account=user.address,
            state=Pop3State(),
            ssl_context=tls_context,
        )
        await poller.check_login()
        assert await _logged_in(server, user, "pop3-login", "method=OAUTHBEARER")
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
    source = RefreshingSource(oauth_server, issued)
    refreshes = oauth_server.refresh_requests
    await login_imap(oauth_settings(oauth_dovecot, oauth_user, source), tls_context)
    assert source.forced == 1
    assert oauth_server.refresh_requests == refreshes + 1  # one real refresh grant
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


async def _logged_in(server: DovecotServer, user: MailUser, *words: str) -> bool:
    """A login of ``user`` with ``words`` in its log line (written a moment later)."""
    for _ in range(50):
        if any(all(w in line for w in words) for line in server.logins(user)):
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
    source = RefreshingSource(oauth_server, issued)
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
    source = RefreshingSource(oauth_server, issued)
    sender = SmtpSender(smtp_oauth_settings(oauth_smtp, oauth_user, source))
    sender._ssl_context = tls_context
    try:
        await sender.check()
    finally:
        await sender.close()
    assert source.forced == 1


# -- what only Exchange and Gmail do: the scripted IMAP server -----------------------

CAPS = "IMAP4rev1 IDLE AUTH=XOAUTH2 AUTH=OAUTHBEARER"


def scripted_settings(port: int, source: TokenSource) -> ServerSettings:
    return ServerSettings(
        host="127.0.0.1",
        port=port,
        security=Security.NONE,
        username="someone@example.com",
        token_source=source,
    )


def challenge(status: str) -> str:
    body = f'{{"status":"{status}","schemes":"bearer","scope":"mail"}}'
    return base64.b64encode(body.encode()).decode()


async def test_imap_without_sasl_ir_sends_the_token_after_the_plus() -> None:
    async def authenticate(tag: str, line: str, out: Writer) -> None:
        assert line.split()[2:] == ["XOAUTH2"]  # no initial response
        await out.write(b"+ \r\n")
        answer = await out.readline()
        ok = answer == b64("someone@example.com", "tok")
        await out.write(f"{tag} {'OK' if ok else 'NO'} done\r\n".encode())

    async with ScriptedImapServer(
        capabilities=CAPS, answers={"AUTHENTICATE": authenticate}
    ) as server:
        client = ImapClient(
            scripted_settings(server.port, StaticTokenSource("tok")), ssl_context=None
        )
        await client.connect()
        await client.logout()


@pytest.mark.parametrize(
    ("mechanism", "status", "reason", "abort"),
    [
        ("XOAUTH2", "401", "invalid", ""),
        ("XOAUTH2", "400", "account", ""),
        ("OAUTHBEARER", "insufficient_scope", "scope", "AQ=="),
    ],
)
async def test_imap_error_challenge_gives_the_reason(
    mechanism: str, status: str, reason: str, abort: str
) -> None:
    """The JSON challenge says why; the client ends the exchange at once."""

    async def authenticate(tag: str, line: str, out: Writer) -> None:
        await out.write(f"+ {challenge(status)}\r\n".encode())
        answered = await out.readline()
        word = "NO" if answered == abort else "BAD"
        await out.write(f"{tag} {word} [AUTHENTICATIONFAILED] failed\r\n".encode())

    caps = f"IMAP4rev1 SASL-IR AUTH={mechanism}"
    async with ScriptedImapServer(
        capabilities=caps, answers={"AUTHENTICATE": authenticate}
    ) as server:
        source = StaticTokenSource("tok")
        client = ImapClient(scripted_settings(server.port, source), ssl_context=None)
        started = time.monotonic()
        with pytest.raises(OAuthTokenRefused) as refused:
            await client.connect()
        await client.logout()
    assert time.monotonic() - started < 1.0
    assert refused.value.reason == reason
    # The client answered the challenge with its mechanism's abort, once.
    (auth,) = [i for i, c in enumerate(server.commands) if "AUTHENTICATE" in c]
    assert server.commands[auth + 1] == abort
    assert source.forced == 1


async def test_a_server_echoing_the_token_does_not_put_it_in_the_error() -> None:
    async def authenticate(tag: str, line: str, out: Writer) -> None:
        echoed = line.split()[-1]
        await out.write(f"{tag} NO bad token tok-123 ({echoed})\r\n".encode())

    async with ScriptedImapServer(
        capabilities=f"{CAPS} SASL-IR", answers={"AUTHENTICATE": authenticate}
    ) as server:
        client = ImapClient(
            scripted_settings(server.port, StaticTokenSource("tok-123")),
            ssl_context=None,
        )
        with pytest.raises(OAuthTokenRefused) as refused:
            await client.connect()
        await client.logout()
    assert "tok-123" not in str(refused.value)
    assert b64("someone@example.com", "tok-123") not in str(refused.value)
    assert "****" in str(refused.value)


async def test_exchange_authenticated_but_not_connected_is_a_sign_in_error(
    trust_test_cert: Path,
) -> None:
    """Exchange takes the token, then refuses the mailbox: not a network error."""

    async def select(tag: str, line: str, out: Writer) -> None:
        await out.write(
            f"{tag} BAD User is authenticated but not connected.\r\n".encode()
        )

    async with ScriptedImapServer(
        capabilities=f"{CAPS} SASL-IR", answers={"SELECT": select}
    ) as server:
        sink_events: list[MailEvent] = []

        async def on_message(event: MailEvent) -> None:
            sink_events.append(event)

        watcher = ImapWatcher(
            scripted_settings(server.port, StaticTokenSource("tok")),
            account="someone@example.com",
            state=None,
            on_message=on_message,
        )
        with pytest.raises(OAuthTokenRefused) as refused:
            await asyncio.wait_for(watcher.run(), 5)
        await watcher.close()
    assert refused.value.reason == "account"
    assert server.sessions == 1  # fatal: not retried


async def test_bye_access_token_expired_reconnects_at_once_with_a_fresh_token() -> None:
    rounds: list[str] = []

    async def idle(tag: str, line: str, out: Writer) -> None:
        rounds.append(tag)
        await out.write(b"+ idling\r\n")
        if len(rounds) == 1:
            await out.write(b"* BYE Session invalidated - AccessTokenExpired\r\n")
            out.close()
            return
        await out.readline()  # DONE
        await out.write(f"{tag} OK done\r\n".encode())

    async with ScriptedImapServer(
        capabilities=f"{CAPS} SASL-IR", answers={"IDLE": idle}
    ) as server:
        source = StaticTokenSource("tok")

        async def on_message(event: MailEvent) -> None:
            pass

        watcher = ImapWatcher(
            scripted_settings(server.port, source),
            account="someone@example.com",
            state=None,
            on_message=on_message,
            # A backoff would show: the first retry waits 30 s.
            timeouts=Timeouts(reconnect=Backoff(initial=30.0, maximum=60.0)),
        )
        task = asyncio.create_task(watcher.run())
        try:
            deadline = time.monotonic() + 5
            while len(rounds) < 2:
                assert time.monotonic() < deadline, "no reconnect"
                assert not task.done(), task
                await asyncio.sleep(0.02)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await watcher.close()
    assert server.sessions == 2
    assert source.forced == 1  # the new session signed in with a fresh token


# -- the watcher renews its session before the token expires -------------------------


async def test_watcher_renews_before_expiry_without_missing_or_repeating_mail(
    oauth_dovecot: DovecotServer,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
    tls_context: Any,
) -> None:
    # The token expires 3 s after the renewal point (TOKEN_RENEW_MARGIN before).
    issued = oauth_server.issue(
        oauth_user.address, lifetime=int(TOKEN_RENEW_MARGIN) + 3
    )
    source = RefreshingSource(oauth_server, issued)
    sink = Sink()
    watcher = make_watcher(
        oauth_settings(oauth_dovecot, oauth_user, source), sink, tls_context
    )
    async with running(watcher):
        await asyncio.to_thread(oauth_dovecot.deliver, oauth_user, make_message("one"))
        await sink.wait(lambda: sink.subjects == ["one"])
        await sink.wait(lambda: source.forced == 1, within=10)
        # Right at the renewal, and once the new session is up.
        await asyncio.to_thread(oauth_dovecot.deliver, oauth_user, make_message("two"))
        await sink.wait(lambda: len(oauth_dovecot.logins(oauth_user)) >= 2)
        await asyncio.to_thread(
            oauth_dovecot.deliver, oauth_user, make_message("three")
        )
        await sink.wait(lambda: len(sink.events) >= 3)
        await asyncio.sleep(0.5)
    assert sink.subjects == ["one", "two", "three"]
    assert source.forced == 1  # renewed once: the new token lives an hour
    assert all("method=XOAUTH2" in line for line in oauth_dovecot.logins(oauth_user))
    # Renewing is not a failure: no error was shown.
    assert all(status.last_error is None for status in sink.statuses)


# -- the token never shows ----------------------------------------------------------


async def test_no_token_in_any_log_line_or_trace_at_debug(
    oauth_dovecot: DovecotServer,
    oauth_smtp: SmtpServer,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
    tls_context: Any,
    trust_test_cert: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = oauth_server.issue(oauth_user.address).access_token
    refused = "refused-" + token[:20]
    wire: list[bytes] = []

    def trace(_protocol: str, _direction: str, data: bytes) -> None:
        wire.append(data)

    source = StaticTokenSource(token)
    await login_imap(
        oauth_settings(oauth_dovecot, oauth_user, source), tls_context, trace=trace
    )
    with pytest.raises(OAuthTokenRefused):
        await login_imap(
            oauth_settings(oauth_dovecot, oauth_user, StaticTokenSource(refused)),
            tls_context,
            trace=trace,
        )
    poller = Pop3Poller(
        oauth_settings(oauth_dovecot, oauth_user, source, protocol="pop3"),
        account=oauth_user.address,
        state=Pop3State(),
        trace=trace,
    )
    await poller.check_login()
    sender = SmtpSender(
        smtp_oauth_settings(oauth_smtp, oauth_user, source), trace=trace
    )
    sender._ssl_context = tls_context
    try:
        await sender.check()
    finally:
        await sender.close()
    secrets_ = [
        secret
        for value in (token, refused)
        for secret in (
            value,
            sasl.initial_response(sasl.XOAUTH2, oauth_user.address, value),
            sasl.initial_response(sasl.OAUTHBEARER, oauth_user.address, value),
        )
    ]
    assert any(b"AUTHENTICATE XOAUTH2" in data for data in wire)  # traced, masked
    seen = b"".join(wire)
    # The test servers' own logs (authlib issuing tokens, aiosmtpd) are not ours.
    ours = [r for r in caplog.records if not r.name.startswith(("authlib", "mail.log"))]
    assert ours  # DEBUG logging was on
    text = "\n".join(r.getMessage() for r in ours)
    for secret in secrets_:
        assert secret.encode() not in seen
        assert secret not in text


@pytest.mark.parametrize(
    ("challenge_bytes", "expires_at", "reason"),
    [
        (b"not base64 at all!", None, "invalid"),
        (base64.b64encode(b"[1, 2]"), None, "invalid"),
        (base64.b64encode(b'{"status":"401"}'), 1.0, "expired"),  # long expired
        (base64.b64encode(b'{"status":"403"}'), None, "scope"),
        # A hostile server's endless challenge is read only so far.
        (base64.b64encode(b'{"status":"400"' + b" " * 100_000 + b"}"), None, "invalid"),
    ],
)
def test_error_challenge_is_read_safely(
    challenge_bytes: bytes, expires_at: float | None, reason: str
) -> None:
    assert sasl.refusal_reason(challenge_bytes, expires_at) == reason
