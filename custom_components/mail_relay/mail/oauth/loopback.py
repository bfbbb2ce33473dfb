"""Browser sign-in for a native app (RFC 8252): PKCE and a loopback redirect.

The authorization code comes back to ``http://127.0.0.1:<port>/`` on an
ephemeral port this module listens on for one sign-in only. PKCE (RFC 7636,
S256) binds the code to this run, and the ``state`` value refuses a redirect
that another page sent. Google's Gmail scope is refused by its device flow, so
this is how the command signs in to Google (with a "Desktop app" client).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from ..errors import SignInError, SignInReason
from .endpoints import OAuthProvider
from .http import DEFAULT_TIMEOUT, clean
from .tokens import OAuthClient, TokenSet, exchange_code

DEFAULT_SIGN_IN_TIMEOUT = 300.0
_DONE_PAGE = (
    "<!doctype html><meta charset=utf-8><title>Mail Relay</title>"
    "<p>{message}</p><p>You can close this window.</p>"
)


@dataclass(frozen=True, slots=True)
class Pkce:
    """A PKCE verifier and its S256 challenge (RFC 7636 4.1, 4.2)."""

    verifier: str = field(repr=False)
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        """Make a fresh 64-character verifier from the system's random source."""
        verifier = secrets.token_urlsafe(48)  # 64 characters of [A-Za-z0-9_-]
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        return cls(verifier, challenge)


def authorization_url(
    provider: OAuthProvider,
    client: OAuthClient,
    *,
    redirect_uri: str,
    state: str,
    pkce: Pkce,
    login_hint: str | None = None,
) -> str:
    """Return the URL the user opens to sign in (RFC 6749 4.1.1 with PKCE)."""
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "scope": provider.scope,
        "state": state,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        **dict(provider.authorize_params),
    }
    if login_hint:
        params["login_hint"] = login_hint
    separator = "&" if "?" in provider.authorize_url else "?"
    return provider.authorize_url + separator + urlencode(params)


class LoopbackRedirect:
    """Listens on 127.0.0.1 (an ephemeral port) for the one redirect of a sign-in."""

    def __init__(self, state: str) -> None:
        """Expect the redirect that carries this ``state``."""
        self._state = state
        self._result: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._runner: web.AppRunner | None = None
        self.redirect_uri = ""

    async def _handle(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("state") != self._state:
            # Not ours (a stray request, a forged redirect): keep waiting.
            return web.Response(status=400, text="unknown sign-in")
        if self._result.done():
            return web.Response(status=400, text="sign-in already finished")
        if "error" in query:
            reason: SignInReason = (
                "denied" if query["error"] == "access_denied" else "refused"
            )
            detail = clean(query.get("error_description") or query["error"])
            self._result.set_exception(
                SignInError(reason, f"sign-in refused: {detail}")
            )
            message = "The sign-in was refused."
        elif code := query.get("code"):
            self._result.set_result(code)
            message = "Signed in to Mail Relay."
        else:
            return web.Response(status=400, text="no code")
        return web.Response(
            text=_DONE_PAGE.format(message=message), content_type="text/html"
        )

    async def __aenter__(self) -> LoopbackRedirect:
        """Start listening; ``redirect_uri`` is then set."""
        app = web.Application(client_max_size=16 * 1024)
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.redirect_uri = f"http://127.0.0.1:{port}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def code(self, wait: float = DEFAULT_SIGN_IN_TIMEOUT) -> str:
        """Wait for the authorization code; SignInError when refused or late."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), wait)
        except TimeoutError:
            raise SignInError(
                "expired", f"no sign-in within {wait:.0f} seconds"
            ) from None


async def sign_in_with_browser(
    session: aiohttp.ClientSession,
    provider: OAuthProvider,
    client: OAuthClient,
    *,
    show_url: Callable[[str], Awaitable[None] | None],
    login_hint: str | None = None,
    wait: float = DEFAULT_SIGN_IN_TIMEOUT,
    http_timeout: float = DEFAULT_TIMEOUT,
) -> TokenSet:
    """Open a loopback listener, show the sign-in URL, trade the code for tokens."""
    state = secrets.token_urlsafe(24)
    pkce = Pkce.new()
    async with LoopbackRedirect(state) as redirect:
        url = authorization_url(
            provider,
            client,
            redirect_uri=redirect.redirect_uri,
            state=state,
            pkce=pkce,
            login_hint=login_hint,
        )
        shown = show_url(url)
        if shown is not None:
            await shown
        code = await redirect.code(wait)
    return await exchange_code(
        session,
        provider,
        client,
        code=code,
        redirect_uri=redirect.redirect_uri,
        code_verifier=pkce.verifier,
        http_timeout=http_timeout,
    )
