"""The mail clients' bearer tokens, kept fresh by Home Assistant's OAuth2Session.

The session refreshes a token that is about to expire and stores the answer in
the entry, so a rotated refresh token (Microsoft's, on every use) survives a
restart. What a failed refresh means is decided here, once: the authorization
server refused the grant (400/401, revoked) -> ``TokenRefreshRefused``, the
user signs in again; it could not be reached or failed -> the entry is
unavailable and retries, never a reason to sign in again.
"""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus
from typing import Any

from aiohttp import ClientError, ClientResponseError
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers.config_entry_oauth2_flow import (
    AbstractOAuth2Implementation,
    OAuth2Session,
)

from .mail.errors import TokenRefreshRefused, TokenServiceUnavailable
from .mail.oauth.tokens import TokenSet

REFRESH_TIMEOUT = 30.0  # seconds for one token request


class _Session(OAuth2Session):
    """An OAuth2Session that can be told the current token was refused."""

    refused: str | None = None

    @property
    def valid_token(self) -> bool:
        """A token the mail server refused is stale whatever its expiry says."""
        token = self.token
        return token.get("access_token") != self.refused and super().valid_token


class EntryTokenSource:
    """The ``TokenSource`` of one config entry."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[Any],
        implementation: AbstractOAuth2Implementation,
    ) -> None:
        """Refresh through ``implementation``; tokens live in the entry's data."""
        self._session = _Session(hass, entry, implementation)

    def __repr__(self) -> str:
        """Never show a token."""
        return f"EntryTokenSource(expires_at={self.expires_at!r})"

    @property
    def expires_at(self) -> float | None:
        """When the stored access token expires (epoch seconds)."""
        value = self._session.token.get("expires_at")
        return float(value) if isinstance(value, int | float) else None

    async def access_token(self, *, force_refresh: bool = False) -> str:
        """Return a valid access token, refreshing (and storing) it when due.

        ``force_refresh``: the mail server refused the current one; two
        clients refused at once share one refresh.
        """
        if force_refresh:
            self._session.refused = self._session.token.get("access_token")
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT):
                await self._session.async_ensure_token_valid()
        except ClientResponseError as err:
            if (
                HTTPStatus.BAD_REQUEST <= err.status < HTTPStatus.INTERNAL_SERVER_ERROR
                and err.status != HTTPStatus.TOO_MANY_REQUESTS
            ):
                raise TokenRefreshRefused(
                    f"the authorization server refused the refresh ({err.status})"
                ) from None
            raise TokenServiceUnavailable(
                f"the authorization server failed ({err.status})"
            ) from None
        except (ClientError, TimeoutError, OSError) as err:
            raise TokenServiceUnavailable(
                f"the authorization server cannot be reached ({type(err).__name__})"
            ) from None
        except KeyError as err:  # no refresh token was ever granted
            raise TokenRefreshRefused(f"no {err.args[0]} to refresh with") from None
        return str(self._session.token["access_token"])


# A token whose lifetime the server did not say is refreshed after this long.
UNKNOWN_LIFETIME = 3600


def device_token(tokens: TokenSet) -> dict[str, Any]:
    """Return the device grant's tokens in the form Home Assistant stores."""
    now = time.time()
    expires_at = tokens.expires_at or now + UNKNOWN_LIFETIME
    token: dict[str, Any] = {
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": max(int(expires_at - now), 0),
        "expires_at": expires_at,
    }
    if tokens.refresh_token:
        token["refresh_token"] = tokens.refresh_token
    if tokens.scope:
        token["scope"] = tokens.scope
    return token
