"""OAuth2 bearer tokens for the mail clients (XOAUTH2 / OAUTHBEARER).

The clients only ask a ``TokenSource`` for the current access token; where
it comes from (Home Assistant's ``OAuth2Session``, the command's refresh
token file, a test) is the host's business. A source raises
``TokenRefreshRefused`` (the user must sign in again) or
``TokenServiceUnavailable`` (retry later); the clients let both through.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class TokenSource(Protocol):
    """Where a client gets a bearer token for the account it logs in as."""

    async def access_token(self, *, force_refresh: bool = False) -> str:
        """Return a valid access token; a new one if ``force_refresh``.

        A client forces a refresh once when the mail server refused the token
        it had (revoked, or expired earlier than announced).
        """
        ...

    @property
    def expires_at(self) -> float | None:
        """Epoch seconds when the current token expires; None when unknown."""
        ...


class StaticTokenSource:
    """A fixed token (tests and scripts): a forced refresh returns it again."""

    def __init__(self, token: str, expires_at: float | None = None) -> None:
        """Keep the token and its announced expiry."""
        self.token = token
        self._expires_at = expires_at
        self.requests = 0
        self.forced = 0

    def __repr__(self) -> str:
        """Never show the token."""
        return f"StaticTokenSource(expires_at={self._expires_at!r})"

    async def access_token(self, *, force_refresh: bool = False) -> str:
        """Return the token; count the calls (tests read them)."""
        self.requests += 1
        if force_refresh:
            self.forced += 1
        return self.token

    @property
    def expires_at(self) -> float | None:
        """Return the expiry given at creation."""
        return self._expires_at


__all__ = ["StaticTokenSource", "TokenSource"]
