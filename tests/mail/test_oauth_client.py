"""The OAuth2 clients of mail/oauth against a real authorization server.

The server (tests/mailserver/oauth.py, authlib) runs on 127.0.0.1 with real
HTML sign-in pages: the device code is approved through its /device form and
the browser sign-in goes through its /authorize form, both driven by a plain
HTTP client, as a user's browser would. Misbehaving servers (oversized,
broken, slow answers) are real aiohttp servers too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import pytest
from aiohttp import web

from custom_components.mail_relay.mail.errors import (
    TokenRefreshRefused,
    TokenServiceUnavailable,
)
from custom_components.mail_relay.mail.oauth import TokenSource
from custom_components.mail_relay.mail.oauth.device import start_device_flow
from custom_components.mail_relay.mail.oauth.endpoints import (
    OAuthProvider,
    declared,
    discover,
    google,
    microsoft,
)
from custom_components.mail_relay.mail.oauth.http import (
    MAX_OAUTH_BYTES,
    SignInError,
    require_https,
)
from custom_components.mail_relay.mail.oauth.loopback import (
    LoopbackRedirect,
    Pkce,
    sign_in_with_browser,
)
from custom_components.mail_relay.mail.oauth.refreshing import RefreshingTokenSource
from custom_components.mail_relay.mail.oauth.tokens import (
    OAuthClient,
    TokenSet,
    refresh_tokens,
)
from tests.mailserver.oauth import OAuthServer

USER = "ann@mailrelay.test"
PASSWORD = "correct horse"
SCOPES = ("mail", "offline_access")
CLIENT = OAuthClient("cli-app")  # a public client (no secret), like a CLI's


@pytest.fixture
def server() -> Iterator[OAuthServer]:
    auth = OAuthServer()
    auth.add_user(USER, PASSWORD)
    auth.register_client("cli-app", redirect_uris=("http://127.0.0.1/",))
    auth.register_client("web-app", "web-secret", redirect_uris=("http://127.0.0.1/",))
    auth.device_interval = 1
    auth.start()
    yield auth
    auth.stop()
    assert auth.errors == []


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # No kept-alive connections: the test server's stop() closes its port but
    # not the connections its threads still serve, so "down" must mean down.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as client:
        yield client


@pytest.fixture
async def provider(server: OAuthServer, session) -> OAuthProvider:
    return await discover(session, server.base, SCOPES)


class _Forms(HTMLParser):
    """The forms of a page: action and the fields' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((values.get("action", ""), {}))
        elif tag == "input" and self.forms and "name" in values:
            self.forms[-1][1][values["name"]] = values.get("value", "")


async def submit(
    http: aiohttp.ClientSession, page_url: str, fields: dict[str, str]
) -> aiohttp.ClientResponse:
    """Fill in the page's form and post it, the way a browser does."""
    async with http.get(page_url) as page:
        assert page.status == 200
        parser = _Forms()
        parser.feed(await page.text())
    action, form = parser.forms[0]
    return await http.post(
        urljoin(page_url, action), data={**form, **fields}, allow_redirects=False
    )


async def approve_on_the_page(server: OAuthServer, user_code: str) -> str:
    """Type the code, the address and the password on /device; return the page."""
    async with aiohttp.ClientSession() as browser:
        response = await submit(
            browser,
            f"{server.base}/device",
            {
                "user_code": user_code,
                "username": USER,
                "password": PASSWORD,
                "action": "allow",
            },
        )
        return await response.text()


def browser_sign_in(
    *, password: str = PASSWORD, action: str = "allow"
) -> Callable[[str], Awaitable[None]]:
    """A user who opens the sign-in URL, signs in, and follows the redirect."""

    async def open_url(url: str) -> None:
        async def go() -> None:
            async with aiohttp.ClientSession() as browser:
                response = await submit(
                    browser,
                    url,
                    {"username": USER, "password": password, "action": action},
                )
                location = response.headers.get("Location")
                assert response.status in (302, 303), await response.text()
                assert location is not None
                assert location.startswith("http://127.0.0.1:")
                async with browser.get(location) as landing:
                    assert landing.status == 200

        # The browser is another program: it runs while the sign-in waits.
        asyncio.get_running_loop().create_task(go())

    return open_url


# -- endpoints ---------------------------------------------------------------


def test_microsoft_tenants_and_google() -> None:
    assert microsoft().token_url == (
        "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    )
    tenant = microsoft().with_tenant("0b3fd6e1-1234-4c3a-9f00-6a7d3b2c1e00")
    assert tenant.device_code_url == (
        "https://login.microsoftonline.com/0b3fd6e1-1234-4c3a-9f00-6a7d3b2c1e00"
        "/oauth2/v2.0/devicecode"
    )
    assert microsoft("contoso.com").authorize_url.startswith(
        "https://login.microsoftonline.com/contoso.com/"
    )
    with pytest.raises(ValueError, match="tenant"):
        microsoft("../evil")
    assert google().with_tenant("x") == google()
    assert google().device_code_url is None
    ms = declared(
        authorize_url="https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize",
        token_url="https://login.microsoftonline.com/organizations/oauth2/v2.0/token",
        scopes=(),
    )
    assert (ms.name, ms.tenant) == ("microsoft", "organizations")


def test_tokens_never_travel_in_clear_text() -> None:
    require_https("https://id.example.org/token")
    require_https("http://127.0.0.1:8080/token")
    require_https("http://[::1]:8080/token")
    for url in ("http://id.example.org/token", "ftp://x/y", "https:///nohost"):
        with pytest.raises(SignInError) as caught:
            require_https(url)
        assert caught.value.reason == "config"


async def test_discovery_reads_the_issuer_metadata(server, session) -> None:
    found = await discover(session, server.base + "/", SCOPES)
    assert found.issuer == server.base
    assert found.name == "127.0.0.1"
    assert found.token_url == f"{server.base}/token"
    assert found.authorize_url == f"{server.base}/authorize"
    assert found.device_code_url == f"{server.base}/devicecode"
    assert found.scopes == SCOPES


async def test_discovery_refuses_a_wrong_or_missing_issuer(server, session) -> None:
    with pytest.raises(SignInError, match="no OpenID configuration"):
        await discover(session, server.base + "/elsewhere", SCOPES)
    with pytest.raises(SignInError, match="not an HTTPS endpoint"):
        await discover(session, "http://id.example.org", SCOPES)
    with server.down(), pytest.raises(TokenServiceUnavailable):
        await discover(session, server.base, SCOPES)


# -- device code ---------------------------------------------------------------


async def test_device_code_approved_on_the_page(server, session, provider) -> None:
    flow = await start_device_flow(session, provider, CLIENT)
    code = flow.code
    assert code.verification_uri == f"{server.base}/device"
    assert code.user_code
    assert code.expires_at > time.time() + 60
    assert "device_code" not in repr(code)
    assert await flow.poll() is None  # authorization_pending
    waiting = asyncio.create_task(flow.wait())
    await asyncio.sleep(0.2)
    assert not waiting.done()
    assert "signed in" in await approve_on_the_page(server, code.user_code)
    tokens = await asyncio.wait_for(waiting, 10)
    assert tokens.refresh_token
    assert tokens.expires_at is not None
    assert tokens.expires_at > time.time() + 3000
    issued = server.by_access[tokens.access_token]
    assert issued.user == USER
    assert "access_token" not in repr(tokens)


async def test_device_code_slow_down_widens_the_interval(
    server, session, provider
) -> None:
    flow = await start_device_flow(session, provider, CLIENT)
    assert flow.interval == 1
    assert await flow.poll() is None
    assert await flow.poll() is None  # at once: too fast, slow_down
    assert flow.interval == 6


async def test_device_code_denied(server, session, provider) -> None:
    flow = await start_device_flow(session, provider, CLIENT)
    server.approve_device(flow.code.user_code, USER, approve=False)
    with pytest.raises(SignInError) as caught:
        await flow.wait()
    assert caught.value.reason == "denied"
    assert caught.value.fatal


async def test_device_code_expires(server, session, provider) -> None:
    server.device_code_lifetime = 1
    flow = await start_device_flow(session, provider, CLIENT)
    started = time.monotonic()
    with pytest.raises(SignInError) as caught:
        await flow.wait()
    assert caught.value.reason == "expired"
    assert time.monotonic() - started < 5


async def test_device_code_of_an_unknown_client(server, session, provider) -> None:
    with pytest.raises(SignInError) as caught:
        await start_device_flow(session, provider, OAuthClient("nobody"))
    assert caught.value.reason == "client"


async def test_device_code_survives_a_short_outage(server, session, provider) -> None:
    flow = await start_device_flow(session, provider, CLIENT)
    server.stop()
    waiting = asyncio.create_task(flow.wait())
    await asyncio.sleep(1.5)  # a poll or two hit the closed port
    server.start()
    server.approve_device(flow.code.user_code, USER)
    tokens = await asyncio.wait_for(waiting, 10)
    assert server.by_access[tokens.access_token].user == USER


async def test_google_has_no_device_code(session) -> None:
    with pytest.raises(SignInError, match="no device code"):
        await start_device_flow(session, google(), CLIENT)


# -- browser sign-in with PKCE and a loopback redirect ----------------------------


def test_pkce_challenge_is_the_s256_of_the_verifier() -> None:
    pkce = Pkce.new()
    assert 43 <= len(pkce.verifier) <= 128
    digest = hashlib.sha256(pkce.verifier.encode()).digest()
    assert pkce.challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert Pkce.new().verifier != pkce.verifier


async def test_browser_sign_in_through_the_page(server, session, provider) -> None:
    shown: list[str] = []
    user = browser_sign_in()

    async def show(url: str) -> None:
        shown.append(url)
        await user(url)

    tokens = await sign_in_with_browser(
        session, provider, CLIENT, show_url=show, login_hint=USER, wait=20
    )
    assert server.by_access[tokens.access_token].user == USER
    query = parse_qs(urlsplit(shown[0]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["login_hint"] == [USER]
    assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
    assert query["scope"] == ["mail offline_access"]


async def test_browser_sign_in_with_a_client_secret(server, session, provider) -> None:
    client = OAuthClient("web-app", "web-secret")
    tokens = await sign_in_with_browser(
        session, provider, client, show_url=browser_sign_in(), wait=20
    )
    assert server.by_access[tokens.access_token].client_id == "web-app"
    with pytest.raises(SignInError) as caught:
        await sign_in_with_browser(
            session,
            provider,
            OAuthClient("web-app", "wrong"),
            show_url=browser_sign_in(),
            wait=20,
        )
    assert caught.value.reason == "client"


async def test_browser_sign_in_cancelled(server, session, provider) -> None:
    with pytest.raises(SignInError) as caught:
        await sign_in_with_browser(
            session, provider, CLIENT, show_url=browser_sign_in(action="deny"), wait=20
        )
    assert caught.value.reason == "denied"


async def test_the_loopback_ignores_a_redirect_of_another_sign_in(session) -> None:
    async with LoopbackRedirect("the-state") as redirect:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", redirect.redirect_uri)
        async with session.get(redirect.redirect_uri + "?code=x&state=forged") as r:
            assert r.status == 400
        with pytest.raises(SignInError) as caught:
            await redirect.code(wait=0.3)
        assert caught.value.reason == "expired"
        async with session.get(redirect.redirect_uri + "?code=c1&state=the-state") as r:
            assert r.status == 200
        assert await redirect.code(wait=1) == "c1"
    with pytest.raises(aiohttp.ClientConnectionError):
        async with session.get(redirect.redirect_uri):
            pass


# -- refresh, rotation, the token source -------------------------------------------


def issued(server: OAuthServer, *, lifetime: int = 3600) -> TokenSet:
    token = server.issue(USER, client_id="cli-app", lifetime=lifetime)
    return TokenSet(
        token.access_token, token.refresh_token, time.time() + lifetime, "mail"
    )


async def test_refresh_keeps_the_rotated_refresh_token(
    server, session, provider
) -> None:
    first = issued(server)
    second = await refresh_tokens(session, provider, CLIENT, first)
    assert second.refresh_token not in (None, first.refresh_token)
    assert second.access_token != first.access_token
    # The old refresh token was used up: only the new one works.
    with pytest.raises(TokenRefreshRefused, match="invalid_grant"):
        await refresh_tokens(session, provider, CLIENT, first)
    third = await refresh_tokens(session, provider, CLIENT, second)
    assert server.by_access[third.access_token].user == USER


async def test_token_source_refreshes_before_expiry(server, session, provider) -> None:
    saved: list[TokenSet] = []

    async def store(tokens: TokenSet) -> None:
        saved.append(tokens)

    start = issued(server, lifetime=60)  # inside the refresh margin
    source = RefreshingTokenSource(session, provider, CLIENT, start, on_update=store)
    assert isinstance(source, TokenSource)
    tokens = await asyncio.gather(*(source.access_token() for _ in range(5)))
    # Five logins at once, one refresh; each got the new token.
    assert server.refresh_requests == 1
    assert set(tokens) == {saved[0].access_token}
    assert saved[0].refresh_token != start.refresh_token
    assert source.expires_at is not None
    assert source.expires_at > time.time() + 3000
    assert await source.access_token() == saved[0].access_token
    assert server.refresh_requests == 1
    # A mail server refused the token: a forced refresh gives another.
    forced = await source.access_token(force_refresh=True)
    assert forced not in tokens
    assert len(saved) == 2
    assert saved[1].refresh_token == source.tokens.refresh_token


async def test_token_source_errors(server, session, provider) -> None:
    source = RefreshingTokenSource(session, provider, CLIENT, issued(server))
    server.token_failure = 503
    with pytest.raises(TokenServiceUnavailable) as unavailable:
        await source.access_token(force_refresh=True)
    assert not unavailable.value.fatal
    server.token_failure = None
    with server.down(), pytest.raises(TokenServiceUnavailable):
        await source.access_token(force_refresh=True)
    await source.access_token(force_refresh=True)  # back: works again
    server.revoke_all(USER)
    with pytest.raises(TokenRefreshRefused) as refused:
        await source.access_token(force_refresh=True)
    assert refused.value.fatal
    no_refresh = RefreshingTokenSource(
        session, provider, CLIENT, TokenSet("abc", None, time.time() - 1)
    )
    with pytest.raises(TokenRefreshRefused, match="no refresh token"):
        await no_refresh.access_token()


# -- a hostile authorization server ---------------------------------------------


@pytest.fixture
async def hostile() -> AsyncIterator[tuple[str, dict[str, web.Response | float]]]:
    """A token endpoint that answers what the test sets (a delay: never)."""
    answers: dict[str, web.Response | float] = {}
    stopping = asyncio.Event()

    async def token(request: web.Request) -> web.StreamResponse:
        answer = answers["token"]
        if isinstance(answer, float):
            # Ends with the test, so that no handler outlives it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), answer)
            return web.Response(text="{}")
        return answer

    app = web.Application()
    app.router.add_post("/token", token)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", answers
    stopping.set()
    await runner.cleanup()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda: web.Response(body=b"{" + b" " * (MAX_OAUTH_BYTES + 1)), "oversized"),
        (lambda: web.Response(text="<html>oops</html>"), "no usable access_token"),
        (lambda: web.json_response({"access_token": 42}), "no usable access_token"),
        (
            lambda: web.json_response({"access_token": "x", "token_type": "mac"}),
            "not a bearer",
        ),
        (lambda: web.Response(status=502, text="bad gateway"), "HTTP 502"),
        (lambda: web.Response(status=302, headers={"Location": "/x"}), "HTTP 302"),
        (lambda: 5.0, "did not answer in time"),
    ],
)
async def test_hostile_token_answers_mean_unavailable(
    hostile, session, answer, message
) -> None:
    base, answers = hostile
    answers["token"] = answer()
    provider = declared(
        authorize_url=f"{base}/authorize", token_url=f"{base}/token", scopes=SCOPES
    )
    started = time.monotonic()
    with pytest.raises(TokenServiceUnavailable, match=message):
        await refresh_tokens(
            session,
            provider,
            CLIENT,
            TokenSet("a", "r", None),
            http_timeout=1,
        )
    assert time.monotonic() - started < 3


async def test_refusal_text_is_cut_and_cleaned(hostile, session) -> None:
    base, answers = hostile
    answers["token"] = web.json_response(
        {"error": "invalid_grant", "error_description": "\x1b[31mred\n" + "x" * 5000},
        status=400,
    )
    provider = declared(
        authorize_url=f"{base}/a", token_url=f"{base}/token", scopes=SCOPES
    )
    with pytest.raises(TokenRefreshRefused) as caught:
        await refresh_tokens(session, provider, CLIENT, TokenSet("a", "r", None))
    text = str(caught.value)
    assert text.startswith("127.0.0.1 refused: invalid_grant:")
    assert "\x1b" not in text
    assert "\n" not in text
    assert len(text) < 300


async def test_a_refresh_without_a_new_refresh_token_keeps_the_old(
    hostile, session
) -> None:
    """Google sends no new refresh token on refresh: the old one stays valid."""
    base, answers = hostile
    answers["token"] = web.json_response(
        {"access_token": "new-access", "token_type": "Bearer", "expires_in": "3599"}
    )
    provider = declared(
        authorize_url=f"{base}/a", token_url=f"{base}/token", scopes=SCOPES
    )
    fresh = await refresh_tokens(session, provider, CLIENT, TokenSet("a", "r", None))
    assert fresh.access_token == "new-access"
    assert fresh.refresh_token == "r"
    assert fresh.expires_at is not None
    assert 3500 < fresh.expires_at - time.time() <= 3599
