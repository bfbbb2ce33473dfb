"""The SASL side of OAuth2, shared by IMAP, POP3 and SMTP.

XOAUTH2 (Google, Microsoft) and OAUTHBEARER (RFC 7628) carry the bearer
token in one base64 string. On a refused token the server sends an error
challenge (base64 JSON); the client answers it at once (an empty line for
XOAUTH2, ``AQ==`` for OAUTHBEARER) to get the final refusal instead of
waiting for a timeout. Each rule here is written once for the three clients.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from typing import Final

from ..errors import OAuthReason, OAuthTokenRefused
from ..trace import MASK
from . import TokenSource

XOAUTH2: Final = "XOAUTH2"
OAUTHBEARER: Final = "OAUTHBEARER"
MECHANISMS: Final = (XOAUTH2, OAUTHBEARER)  # preferred first
# What a client sends to end a refused exchange, per mechanism.
ABORT: Final = {XOAUTH2: "", OAUTHBEARER: "AQ=="}
MAX_CHALLENGE: Final = 4096  # bytes of an error challenge we decode


def initial_response(mechanism: str, user: str, token: str) -> str:
    """Return the base64 initial response carrying ``token`` for ``user``."""
    if any(c in user + token for c in "\r\n\x00\x01"):
        raise OAuthTokenRefused("invalid", "the address or token has a control byte")
    if mechanism == OAUTHBEARER:
        text = f"n,a={user.replace('=', '=3D').replace(',', '=2C')},"
        text += f"\x01auth=Bearer {token}\x01\x01"
    else:
        text = f"user={user}\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(text.encode()).decode()


def scrub(text: str, mechanism: str, user: str, token: str) -> str:
    """Mask the token and its SASL string in a server's text (an echo of it)."""
    for secret in (initial_response(mechanism, user, token), token):
        text = text.replace(secret, MASK)
    return text


def refusal_reason(challenge: str | bytes, expires_at: float | None) -> OAuthReason:
    """Read the provider's error challenge (base64 JSON) into a reason.

    ``insufficient_scope`` / 403 is a missing scope; 400 (Gmail: the token
    is not this address's) is another account; anything else is expired
    when the token's announced lifetime is over, else invalid.
    """
    data = challenge.encode() if isinstance(challenge, str) else challenge
    status = ""
    try:
        found = json.loads(base64.b64decode(data.strip()[:MAX_CHALLENGE]))
        if isinstance(found, dict):
            status = str(found.get("status", ""))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        pass
    return reason_for(status, expires_at)


def reason_for(status: str, expires_at: float | None) -> OAuthReason:
    """Map an error status (JSON ``status``, or a server's text) to a reason."""
    lowered = status.lower()
    if "scope" in lowered or lowered == "403":
        return "scope"
    if lowered == "400" or "authenticated but not connected" in lowered:
        return "account"
    if "expired" in lowered or (expires_at is not None and expires_at <= time.time()):
        return "expired"
    return "invalid"


async def with_token(
    source: TokenSource, attempt: Callable[[str], Awaitable[None]]
) -> None:
    """Log in with the current token; once refused, force one refresh and retry.

    A refresh that brings the same token back cannot help: the first refusal
    stands. ``TokenRefreshRefused`` / ``TokenServiceUnavailable`` from the
    source go through unchanged.
    """
    token = await source.access_token()
    try:
        await attempt(token)
    except OAuthTokenRefused:
        fresh = await source.access_token(force_refresh=True)
        if fresh == token:
            raise
        await attempt(fresh)
