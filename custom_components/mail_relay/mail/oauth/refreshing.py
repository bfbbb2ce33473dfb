"""A ``TokenSource`` that refreshes its access token at the token endpoint.

The mail clients ask it for a token before each login, and once more with
``force_refresh`` when the server refused the one they had. It refreshes
shortly before expiry (so that a session does not end mid-IDLE), one refresh
at a time however many clients ask at once, and hands every new token set to
``on_update`` so the host stores the rotated refresh token before it is used
again. Hosts without Home Assistant (the command) use it; Home Assistant's
own OAuth2 session does the same job there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp

from .endpoints import OAuthProvider
from .http import DEFAULT_TIMEOUT
from .tokens import OAuthClient, TokenSet, refresh_tokens

# Refresh this long before the token ends: a login, a command or an IDLE
# renewal started with it must not outlive it.
REFRESH_MARGIN = 120.0


class RefreshingTokenSource:
    """Bearer tokens for one account, refreshed with rotation.

    Raises ``TokenRefreshRefused`` (sign in again) and
    ``TokenServiceUnavailable`` (try later) from ``access_token``.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        provider: OAuthProvider,
        client: OAuthClient,
        tokens: TokenSet,
        *,
        on_update: Callable[[TokenSet], Awaitable[None]] | None = None,
        margin: float = REFRESH_MARGIN,
        http_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Start from stored (or just signed-in) tokens."""
        self._session = session
        self.provider = provider
        self._client = client
        self._tokens = tokens
        self._on_update = on_update
        self._margin = margin
        self._timeout = http_timeout
        self._lock = asyncio.Lock()

    @property
    def tokens(self) -> TokenSet:
        """The current token set (what the host stores)."""
        return self._tokens

    @property
    def expires_at(self) -> float | None:
        """Epoch seconds at which the current access token ends; None: unknown."""
        return self._tokens.expires_at

    async def access_token(self, *, force_refresh: bool = False) -> str:
        """Return a token valid for a while yet; refresh first when needed."""
        seen = self._tokens
        async with self._lock:
            if self._tokens is not seen and not self._tokens.expires_within(
                self._margin
            ):
                # Another caller refreshed while this one waited: use that.
                return self._tokens.access_token
            if force_refresh or self._tokens.expires_within(self._margin):
                await self._refresh()
            return self._tokens.access_token

    async def _refresh(self) -> None:
        fresh = await refresh_tokens(
            self._session,
            self.provider,
            self._client,
            self._tokens,
            http_timeout=self._timeout,
        )
        self._tokens = fresh
        if self._on_update is not None:
            await self._on_update(fresh)
