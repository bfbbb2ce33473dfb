"""Tokens from a token endpoint: the code exchange and the refresh with rotation.

A token answer is checked before it is trusted (a string ``access_token``, a
sane ``expires_in``) and bounded like every answer. When the server rotates
the refresh token (Microsoft does on every use) the new one replaces the old;
when it sends none, the old one stays valid and is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..errors import SignInError, SignInReason, TokenRefreshRefused
from .endpoints import OAuthProvider
from .http import (
    DEFAULT_TIMEOUT,
    OAuthHttp,
    describe_error,
    is_refusal,
    unavailable,
)

# Longer tokens than this are not tokens (a JWT with many claims is ~4 KB).
MAX_TOKEN_CHARS = 16 * 1024
# An expires_in beyond a year is a broken answer; treat the expiry as unknown.
MAX_LIFETIME = 366 * 24 * 3600


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """The application the user registered at the provider."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)

    def form(self) -> dict[str, str]:
        """Return the client's part of a token request (``client_secret_post``)."""
        form = {"client_id": self.client_id}
        if self.client_secret:
            form["client_secret"] = self.client_secret
        return form


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What the token endpoint gave; ``expires_at`` in epoch seconds."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    scope: str | None = None

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        """Return whether the access token ends within ``seconds`` (unknown: no)."""
        if self.expires_at is None:
            return False
        return self.expires_at - (time.time() if now is None else now) <= seconds

    def to_json(self) -> dict[str, Any]:
        """Return the form a host stores (it holds secrets: store it privately)."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "scope": self.scope,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenSet:
        """Read what ``to_json`` wrote; ValueError when it is not that."""
        access = data.get("access_token")
        refresh = data.get("refresh_token")
        expires = data.get("expires_at")
        scope = data.get("scope")
        if not isinstance(access, str) or not (
            refresh is None or isinstance(refresh, str)
        ):
            raise ValueError("not a stored token set")
        return cls(
            access_token=access,
            refresh_token=refresh or None,
            expires_at=float(expires) if isinstance(expires, int | float) else None,
            scope=scope if isinstance(scope, str) else None,
        )


def _token(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= MAX_TOKEN_CHARS:
        return value
    return None


def parse_tokens(url: str, body: dict[str, Any], now: float) -> TokenSet:
    """Check a successful token answer; a broken one means "unavailable"."""
    access = _token(body.get("access_token"))
    if access is None:
        raise unavailable(url, 200, {"error": "no usable access_token"})
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise unavailable(url, 200, {"error": "not a bearer token"})
    lifetime = body.get("expires_in")
    if isinstance(lifetime, str) and lifetime.isdigit():
        lifetime = int(lifetime)  # some servers send it as a string
    expires_at = None
    if isinstance(lifetime, int | float) and 0 < lifetime <= MAX_LIFETIME:
        expires_at = now + float(lifetime)
    scope = body.get("scope")
    return TokenSet(
        access_token=access,
        refresh_token=_token(body.get("refresh_token")),
        expires_at=expires_at,
        scope=scope[:4096] if isinstance(scope, str) else None,
    )


# RFC 6749 5.2 and RFC 8628 3.5 error codes, as the sign-in reasons hosts show.
SIGN_IN_REASONS: dict[str, SignInReason] = {
    "access_denied": "denied",
    "authorization_declined": "denied",  # Microsoft's device flow
    "expired_token": "expired",
    "invalid_client": "client",
    "unauthorized_client": "client",
    "invalid_scope": "config",
    "unsupported_grant_type": "config",
}


async def token_request(
    session: aiohttp.ClientSession,
    provider: OAuthProvider,
    client: OAuthClient,
    grant: dict[str, str],
    *,
    http_timeout: float = DEFAULT_TIMEOUT,
) -> tuple[int, dict[str, Any], float]:
    """POST one grant to the token endpoint; return status, body and send time."""
    now = time.time()
    status, body = await OAuthHttp(session, timeout=http_timeout).post_form(
        provider.token_url, {**grant, **client.form()}
    )
    return status, body, now


def sign_in_error(url: str, status: int, body: dict[str, Any]) -> SignInError:
    """Return the error for a refused code exchange or device poll."""
    reason = SIGN_IN_REASONS.get(str(body.get("error", "")), "refused")
    return SignInError(
        reason, describe_error(urlsplit(url).hostname or url, status, body)
    )


async def exchange_code(
    session: aiohttp.ClientSession,
    provider: OAuthProvider,
    client: OAuthClient,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    http_timeout: float = DEFAULT_TIMEOUT,
) -> TokenSet:
    """Trade an authorization code (with its PKCE verifier) for tokens."""
    status, body, now = await token_request(
        session,
        provider,
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        },
        http_timeout=http_timeout,
    )
    if status == 200:
        return parse_tokens(provider.token_url, body, now)
    if is_refusal(status):
        raise sign_in_error(provider.token_url, status, body)
    raise unavailable(provider.token_url, status, body)


async def refresh_tokens(
    session: aiohttp.ClientSession,
    provider: OAuthProvider,
    client: OAuthClient,
    tokens: TokenSet,
    *,
    http_timeout: float = DEFAULT_TIMEOUT,
) -> TokenSet:
    """Refresh; keep the new refresh token when the server rotates it.

    Raises ``TokenRefreshRefused`` when the server refuses the refresh token
    (expired, revoked, the client changed) and ``TokenServiceUnavailable``
    when it cannot be reached or answers anything else.
    """
    if not tokens.refresh_token:
        raise TokenRefreshRefused("no refresh token: sign in again")
    status, body, now = await token_request(
        session,
        provider,
        client,
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token,
            # Microsoft wants the scopes again; others accept them.
            "scope": provider.scope,
        },
        http_timeout=http_timeout,
    )
    if status == 200:
        fresh = parse_tokens(provider.token_url, body, now)
        if fresh.refresh_token is None:
            fresh = replace(fresh, refresh_token=tokens.refresh_token)
        return fresh
    if is_refusal(status):
        host = urlsplit(provider.token_url).hostname or provider.token_url
        raise TokenRefreshRefused(describe_error(host, status, body))
    raise unavailable(provider.token_url, status, body)
