"""The OAuth test bed itself: the authorization server, Dovecot's oauth2 passdb
and the aiosmtpd XOAUTH2 handler, driven with plain HTTP and standard clients."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import imaplib
import re
import secrets
import smtplib
import ssl
import urllib.parse

import aiohttp
import pytest

from tests.mailserver import DovecotServer, MailUser, OAuthServer, SmtpServer
from tests.mailserver.oauth import INTROSPECTION_CLIENT, basic_auth

REDIRECT = "http://127.0.0.1:8123/callback"  # any loopback port is accepted
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _post(
    session: aiohttp.ClientSession, url: str, data: dict[str, str], **kw: object
) -> tuple[int, dict[str, object]]:
    async with session.post(url, data=data, **kw) as response:  # type: ignore[arg-type]
        return response.status, await response.json()


async def test_authorization_code_with_pkce_through_the_sign_in_page(
    oauth_server: OAuthServer, oauth_user: MailUser
) -> None:
    verifier, challenge = _pkce()
    query = {
        "response_type": "code",
        "client_id": "mail-relay-test",
        "redirect_uri": REDIRECT,
        "scope": "mail offline_access",
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    url = f"{oauth_server.base}/authorize?{urllib.parse.urlencode(query)}"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as page:
            html = await page.text()
        assert page.status == 200
        assert 'name="password"' in html
        # A wrong password shows the page again with an error.
        form = {"username": oauth_user.address, "password": "nope", "action": "allow"}
        async with session.post(url, data=form, allow_redirects=False) as again:
            assert again.status == 200
            assert "Wrong address or password" in await again.text()
        form["password"] = oauth_user.password
        async with session.post(url, data=form, allow_redirects=False) as done:
            assert done.status == 302
            location = done.headers["Location"]
        assert location.startswith(REDIRECT)
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
        assert params["state"] == ["s1"]
        token_form = {
            "grant_type": "authorization_code",
            "code": params["code"][0],
            "redirect_uri": REDIRECT,
            "client_id": "mail-relay-test",
        }
        # Without the verifier PKCE refuses the code.
        status, body = await _post(session, f"{oauth_server.base}/token", token_form)
        assert (status, body["error"]) == (400, "invalid_request")
        status, token = await _post(
            session,
            f"{oauth_server.base}/token",
            token_form | {"code_verifier": verifier},
        )
    assert status == 200, token
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "mail offline_access"
    assert (
        oauth_server.tokens_of(oauth_user.address)[-1].access_token
        == (token["access_token"])
    )


async def test_refresh_rotates_and_the_old_refresh_token_dies(
    oauth_server: OAuthServer, oauth_user: MailUser
) -> None:
    issued = oauth_server.issue(oauth_user.address)
    before = oauth_server.refresh_requests
    form = {
        "grant_type": "refresh_token",
        "refresh_token": issued.refresh_token or "",
        "client_id": "mail-relay-test",
    }
    async with aiohttp.ClientSession() as session:
        status, new = await _post(session, f"{oauth_server.base}/token", form)
        assert status == 200
        assert new["refresh_token"] != issued.refresh_token
        assert new["access_token"] != issued.access_token
        status, body = await _post(session, f"{oauth_server.base}/token", form)
        assert (status, body["error"]) == (400, "invalid_grant")
    assert oauth_server.refresh_requests == before + 2


async def test_device_code_approved_on_the_device_page(
    oauth_server: OAuthServer, oauth_user: MailUser
) -> None:
    async with aiohttp.ClientSession() as session:
        status, start = await _post(
            session,
            f"{oauth_server.base}/devicecode",
            {"client_id": "mail-relay-test", "scope": "mail offline_access"},
        )
        assert status == 200
        poll = {
            "grant_type": DEVICE_GRANT,
            "device_code": str(start["device_code"]),
            "client_id": "mail-relay-test",
        }
        status, body = await _post(session, f"{oauth_server.base}/token", poll)
        assert (status, body["error"]) == (400, "authorization_pending")
        status, body = await _post(session, f"{oauth_server.base}/token", poll)
        assert body["error"] == "slow_down"  # polled faster than the interval
        async with session.get(str(start["verification_uri_complete"])) as page:
            assert str(start["user_code"]) in await page.text()
        form = {
            "user_code": str(start["user_code"]),
            "username": oauth_user.address,
            "password": oauth_user.password,
            "action": "allow",
        }
        async with session.post(f"{oauth_server.base}/device", data=form) as done:
            assert "signed in" in await done.text()
        status, token = await _post(session, f"{oauth_server.base}/token", poll)
        assert status == 200, token
        assert (
            oauth_server.tokens_of(oauth_user.address)[-1].access_token
            == (token["access_token"])
        )
        # A device code serves once.
        status, _ = await _post(session, f"{oauth_server.base}/token", poll)
        assert status == 400


async def test_introspection_revocation_and_metadata(
    oauth_server: OAuthServer, oauth_user: MailUser
) -> None:
    issued = oauth_server.issue(oauth_user.address)
    auth = {"Authorization": basic_auth(*INTROSPECTION_CLIENT)}
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{oauth_server.base}/.well-known/openid-configuration"
        ) as meta:
            endpoints = await meta.json()
        assert endpoints["device_authorization_endpoint"].endswith("/devicecode")
        url = endpoints["introspection_endpoint"]
        _, info = await _post(
            session, url, {"token": issued.access_token}, headers=auth
        )
        assert info["active"] is True
        assert info["username"] == oauth_user.address
        # Only the resource server may introspect.
        status, _ = await _post(session, url, {"token": issued.access_token})
        assert status == 401
        status, _ = await _post(
            session,
            endpoints["revocation_endpoint"],
            {"token": issued.access_token, "client_id": "mail-relay-test"},
        )
        assert status == 200
        _, info = await _post(
            session, url, {"token": issued.access_token}, headers=auth
        )
        assert info == {"active": False}
    assert oauth_server.errors == []


async def test_stop_and_start_on_the_same_port() -> None:
    server = OAuthServer()  # its own: a restart starts a new thread
    await asyncio.to_thread(server.start)
    port = server.port
    url = f"{server.base}/.well-known/openid-configuration"
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.to_thread(server.stop)
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(url)
            await asyncio.to_thread(server.start)
            async with session.get(url) as response:
                assert response.status == 200
    finally:
        await asyncio.to_thread(server.stop)
    assert server.port == port


def _xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def test_dovecot_checks_tokens_by_introspection(
    oauth_dovecot: DovecotServer, oauth_server: OAuthServer, oauth_user: MailUser
) -> None:
    assert re.search(r"oauth2", (oauth_dovecot.directory / "dovecot.conf").read_text())
    token = oauth_server.issue(oauth_user.address).access_token
    before = oauth_server.introspection_requests
    with imaplib.IMAP4(oauth_dovecot.host, oauth_dovecot.imap_port) as imap:
        assert "AUTH=XOAUTH2" in imap.capabilities
        imap.authenticate("XOAUTH2", lambda _: _xoauth2(oauth_user.address, token))
    assert oauth_server.introspection_requests == before + 1
    # A password still works beside OAuth.
    with imaplib.IMAP4(oauth_dovecot.host, oauth_dovecot.imap_port) as imap:
        imap.login(oauth_user.address, oauth_user.password)


def test_smtp_xoauth2_handler(
    oauth_smtp: SmtpServer, oauth_server: OAuthServer, oauth_user: MailUser
) -> None:
    token = oauth_server.issue(oauth_user.address).access_token
    context = oauth_smtp.cert.client_context()
    with smtplib.SMTP(
        oauth_smtp.host,
        oauth_smtp.starttls_port,
        local_hostname="localhost",
        timeout=10,
    ) as smtp:
        smtp.starttls(context=context)
        smtp.ehlo()
        assert "XOAUTH2" in smtp.esmtp_features["auth"]
        code, _ = smtp.docmd(
            "AUTH", "XOAUTH2 " + base64.b64encode(_xoauth2("x@y.test", token)).decode()
        )
        assert code == 334  # Gmail's error challenge
        code, _ = smtp.docmd("")
        assert code == 535
        code, _ = smtp.docmd(
            "AUTH",
            "XOAUTH2 " + base64.b64encode(_xoauth2(oauth_user.address, token)).decode(),
        )
        assert code == 235
    assert isinstance(context, ssl.SSLContext)


async def test_controls_authorize_as_revoke_all_and_failing_token_endpoint(
    oauth_server: OAuthServer, oauth_user: MailUser
) -> None:
    _, challenge = _pkce()
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": "mail-relay-test",
            "redirect_uri": REDIRECT,
            "scope": "mail offline_access",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    issued = oauth_server.issue(oauth_user.address)
    auth = {"Authorization": basic_auth(*INTROSPECTION_CLIENT)}
    async with aiohttp.ClientSession() as session:
        oauth_server.authorize_as(oauth_user.address)
        try:
            async with session.get(
                f"{oauth_server.base}/authorize?{query}", allow_redirects=False
            ) as response:
                assert response.status == 302  # no page: signed in as the user
                assert "code=" in response.headers["Location"]
        finally:
            oauth_server.authorize_as(None)
        oauth_server.revoke_all(oauth_user.address)
        _, info = await _post(
            session,
            oauth_server.introspection_url,
            {"token": issued.access_token},
            headers=auth,
        )
        assert info == {"active": False}
        refresh = {
            "grant_type": "refresh_token",
            "refresh_token": issued.refresh_token or "",
            "client_id": "mail-relay-test",
        }
        status, body = await _post(session, f"{oauth_server.base}/token", refresh)
        assert (status, body["error"]) == (400, "invalid_grant")
        oauth_server.token_failure = 503
        try:
            status, _ = await _post(session, f"{oauth_server.base}/token", refresh)
        finally:
            oauth_server.token_failure = None
        assert status == 503
