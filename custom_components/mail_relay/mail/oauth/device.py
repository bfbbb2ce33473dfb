"""The device authorization grant (RFC 8628): sign in with a short code.

The user opens the provider's page on any device and types the code; we poll
the token endpoint meanwhile. It needs no redirect URI, so it works for the
command line and for a Home Assistant that is not reachable from outside.

Hosts call ``start_device_flow`` and show its ``user_code`` and
``verification_uri``, then either ``DeviceFlow.wait()`` (polls until the user
is done) or ``DeviceFlow.poll()`` once per ``interval`` from their own timer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from ..errors import SignInError, TokenServiceUnavailable
from .endpoints import OAuthProvider
from .http import (
    DEFAULT_TIMEOUT,
    OAuthHttp,
    clean,
    is_refusal,
    require_https,
    unavailable,
)
from .tokens import OAuthClient, TokenSet, parse_tokens, sign_in_error, token_request

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL = 5.0  # RFC 8628 3.2
SLOW_DOWN_STEP = 5.0  # RFC 8628 3.5
# Bounds on what the server may ask: no busy polling, no hour-long waits
# between two polls, no code valid for days.
MIN_INTERVAL = 1.0
MAX_INTERVAL = 60.0
MAX_EXPIRES_IN = 3600.0
MAX_CODE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """What the user must type, and where; ``expires_at`` in epoch seconds."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: float
    interval: float
    device_code: str = field(repr=False)
    message: str | None = None  # the provider's own instruction (Microsoft)


def _text(body: dict[str, object], *keys: str) -> str | None:
    for key in keys:
        value = body.get(key)
        if isinstance(value, str) and 0 < len(value) <= MAX_CODE_CHARS:
            return value
    return None


def _number(value: object, default: float) -> float:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int | float) and value > 0:
        return float(value)
    return default


async def start_device_flow(
    session: aiohttp.ClientSession,
    provider: OAuthProvider,
    client: OAuthClient,
    *,
    http_timeout: float = DEFAULT_TIMEOUT,
) -> DeviceFlow:
    """Ask for a device code (RFC 8628 3.1); the flow then polls for tokens."""
    if provider.device_code_url is None:
        raise SignInError(
            "config", f"{provider.name} offers no device code sign-in: use a browser"
        )
    now = time.time()
    status, body = await OAuthHttp(session, timeout=http_timeout).post_form(
        provider.device_code_url, {**client.form(), "scope": provider.scope}
    )
    if status != 200:
        if is_refusal(status):
            raise sign_in_error(provider.device_code_url, status, body)
        raise unavailable(provider.device_code_url, status, body)
    device_code = _text(body, "device_code")
    user_code = _text(body, "user_code")
    # "verification_url" is what Microsoft's older endpoint and Google write.
    uri = _text(body, "verification_uri", "verification_url")
    if device_code is None or user_code is None or uri is None:
        raise unavailable(provider.device_code_url, 200, {"error": "no device code"})
    require_https(uri)
    complete = _text(body, "verification_uri_complete")
    if complete is not None:
        require_https(complete)
    expires_in = min(_number(body.get("expires_in"), 900.0), MAX_EXPIRES_IN)
    interval = _number(body.get("interval"), DEFAULT_INTERVAL)
    message = _text(body, "message")
    code = DeviceCode(
        user_code=clean(user_code, 64),
        verification_uri=uri,
        verification_uri_complete=complete,
        expires_at=now + expires_in,
        interval=min(max(interval, MIN_INTERVAL), MAX_INTERVAL),
        device_code=device_code,
        message=clean(message, 500) if message else None,
    )
    return DeviceFlow(session, provider, client, code, http_timeout=http_timeout)


class DeviceFlow:
    """Polls the token endpoint for one device code until the user is done."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        provider: OAuthProvider,
        client: OAuthClient,
        code: DeviceCode,
        *,
        http_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Keep the code; ``interval`` grows when the server says slow_down."""
        self._session = session
        self.provider = provider
        self._client = client
        self.code = code
        self.interval = code.interval
        self._timeout = http_timeout

    @property
    def expired(self) -> bool:
        """Return whether the code ran out (the user must start again)."""
        return time.time() >= self.code.expires_at

    async def poll(self) -> TokenSet | None:
        """Ask once; tokens when the user approved, None while still waiting.

        Raises ``SignInError`` (``denied``, ``expired``, ``client``, ...) when
        the sign-in cannot end well, ``TokenServiceUnavailable`` when the
        server cannot be reached (the caller may poll again).
        """
        if self.expired:
            raise SignInError("expired", "the sign-in code expired: start again")
        url = self.provider.token_url
        status, body, now = await token_request(
            self._session,
            self.provider,
            self._client,
            {"grant_type": DEVICE_GRANT, "device_code": self.code.device_code},
            http_timeout=self._timeout,
        )
        if status == 200:
            return parse_tokens(url, body, now)
        error = body.get("error")
        if is_refusal(status) and error == "authorization_pending":
            return None
        if is_refusal(status) and error == "slow_down":
            self.interval = min(self.interval + SLOW_DOWN_STEP, MAX_INTERVAL)
            return None
        if is_refusal(status):
            raise sign_in_error(url, status, body)
        raise unavailable(url, status, body)

    async def wait(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retry_unavailable: bool = True,
    ) -> TokenSet:
        """Poll every ``interval`` until tokens come or the code expires.

        An unreachable server is asked again at the next interval (the code
        stays valid) unless ``retry_unavailable`` is false.
        """
        while True:
            await sleep(self.interval)
            try:
                tokens = await self.poll()
            except TokenServiceUnavailable:
                if not retry_unavailable or self.expired:
                    raise
                continue
            if tokens is not None:
                return tokens
