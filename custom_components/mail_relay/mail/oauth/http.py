"""Talking to an authorization server: bounded JSON over HTTPS, errors sorted.

An authorization server's answer is hostile input like a mail server's: every
body is read up to ``MAX_OAUTH_BYTES``, every request has a deadline, and what
it says about an error is cut and cleaned before it reaches a message. Tokens
and secrets are never part of an exception text or a log line.

The one sorting rule for token endpoint answers (RFC 6749 section 5.2) is
``token_error``: 400/401 mean the grant or the client was refused (the user
must act), anything else (a network error, a timeout, 429, 5xx, a broken
answer) means "unavailable, try again later".
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..errors import SignInError, TokenServiceUnavailable

_LOGGER = logging.getLogger(__name__)

# Token, device code and metadata answers are a few hundred bytes to a few KB.
MAX_OAUTH_BYTES = 64 * 1024
# Characters kept of a server's error_description.
MAX_ERROR_TEXT = 200
DEFAULT_TIMEOUT = 15.0


def is_loopback(host: str) -> bool:
    """Return whether a host name stays on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_https(url: str) -> None:
    """Refuse an endpoint that would carry a secret in clear text.

    Plain HTTP is allowed to a loopback address only (RFC 8252 section 8.3).
    """
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return
    raise SignInError("config", f"not an HTTPS endpoint: {clean(url)}")


def clean(text: object, limit: int = MAX_ERROR_TEXT) -> str:
    """Cut a server-given text and drop its control characters."""
    value = str(text)[:limit]
    return "".join(c if c.isprintable() else " " for c in value).strip()


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read a body, raising ValueError once it passes ``limit`` bytes."""
    if response.content_length is not None and response.content_length > limit:
        raise ValueError(f"answer of {response.content_length} bytes")
    body = bytearray()
    async for chunk in response.content.iter_chunked(16 * 1024):
        body += chunk
        if len(body) > limit:
            raise ValueError(f"answer over {limit} bytes")
    return bytes(body)


class OAuthHttp:
    """JSON requests to one authorization server, bounded and timed."""

    def __init__(
        self, session: aiohttp.ClientSession, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Use the host's session (its connection pool and TLS settings)."""
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _request(
        self, method: str, url: str, form: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        host = urlsplit(url).hostname or url
        try:
            async with self._session.request(
                method,
                url,
                timeout=self._timeout,
                allow_redirects=False,
                headers={"Accept": "application/json"},
                data=form,
            ) as response:
                status = response.status
                body = await read_bounded(response, MAX_OAUTH_BYTES)
        except TimeoutError as err:
            raise TokenServiceUnavailable(f"{host} did not answer in time") from err
        except aiohttp.ClientError as err:
            raise TokenServiceUnavailable(
                f"cannot reach {host}: {type(err).__name__}"
            ) from err
        except ValueError as err:
            raise TokenServiceUnavailable(f"{host} sent an oversized {err}") from err
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            _LOGGER.debug("%s answered %s with no JSON object", host, status)
            data = {}
        return status, data

    async def post_form(
        self, url: str, form: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """POST a form; return the status and the JSON object (empty if none)."""
        return await self._request("POST", url, form)

    async def get_json(self, url: str) -> tuple[int, dict[str, Any]]:
        """GET a JSON document; return the status and the object (empty if none)."""
        return await self._request("GET", url)


def describe_error(host: str, status: int, body: dict[str, Any]) -> str:
    """Say what an error answer means, without anything secret in it."""
    code = clean(body.get("error", ""), 64)
    text = clean(body.get("error_description", ""))
    detail = code + (f": {text}" if text else "") if code else f"HTTP {status}"
    return f"{host} refused: {detail}"


def is_refusal(status: int) -> bool:
    """Return whether a failed token request was refused (400/401, RFC 6749 5.2).

    Anything else (429, 5xx, a redirect, a broken answer) is the server being
    unavailable: retried, never a reason to sign in again.
    """
    return status in (400, 401)


def unavailable(url: str, status: int, body: dict[str, Any]) -> TokenServiceUnavailable:
    """Return the error for an answer that is neither tokens nor a refusal."""
    host = urlsplit(url).hostname or url
    code = f" ({clean(body['error'], 64)})" if body.get("error") else ""
    return TokenServiceUnavailable(f"{host} answered HTTP {status}{code}")
