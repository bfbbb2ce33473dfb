"""Where an authorization server answers: Microsoft, Google, or a declared issuer.

An ``OAuthProvider`` is plain data (URLs and scopes), so presets, autoconfig,
Home Assistant's flow and the command build it the same way. Microsoft's URLs
depend on the tenant (``common``, ``consumers``, ``organizations`` or a tenant
id); Google's device flow refuses the Gmail scope, so Google has no device
endpoint. A self-hosted provider is found from its issuer's
``/.well-known/openid-configuration`` (RFC 8414) or given by its endpoints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import aiohttp

from ..errors import SignInError
from .http import OAuthHttp, require_https, unavailable

MICROSOFT_LOGIN = "https://login.microsoftonline.com"
# One token serves IMAP, POP3 and SMTP; Graph scopes would change its audience.
MICROSOFT_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/POP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "offline_access",
)
GOOGLE_SCOPES = ("https://mail.google.com/",)
GOOGLE_AUTHORIZE = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"  # noqa: S105  # a URL
GOOGLE_REVOKE = "https://oauth2.googleapis.com/revoke"

# A tenant is a GUID, a verified domain or one of the three keywords.
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")


@dataclass(frozen=True, slots=True)
class OAuthProvider:
    """An authorization server's endpoints and the scopes mail needs there."""

    name: str  # "microsoft", "google", or the issuer's host
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    device_code_url: str | None = None  # RFC 8628; None: browser sign-in only
    revoke_url: str | None = None
    issuer: str | None = None
    tenant: str | None = None  # Microsoft only
    # Extra query parameters of the authorization request.
    authorize_params: tuple[tuple[str, str], ...] = ()

    @property
    def scope(self) -> str:
        """The scopes as the ``scope`` parameter writes them."""
        return " ".join(self.scopes)

    def with_tenant(self, tenant: str) -> OAuthProvider:
        """Return Microsoft's endpoints for another tenant; others are unchanged."""
        if self.name != "microsoft":
            return self
        return microsoft(tenant)


def microsoft(tenant: str = "common") -> OAuthProvider:
    """Microsoft identity platform v2.0 endpoints for a tenant."""
    if not _TENANT.match(tenant):
        raise ValueError(f"not a Microsoft tenant: {tenant!r}")
    base = f"{MICROSOFT_LOGIN}/{tenant}/oauth2/v2.0"
    return OAuthProvider(
        name="microsoft",
        authorize_url=f"{base}/authorize",
        token_url=f"{base}/token",
        device_code_url=f"{base}/devicecode",
        scopes=MICROSOFT_SCOPES,
        tenant=tenant,
        authorize_params=(("prompt", "select_account"),),
    )


def google() -> OAuthProvider:
    """Google's endpoints; the user brings their own OAuth client."""
    return OAuthProvider(
        name="google",
        authorize_url=GOOGLE_AUTHORIZE,
        token_url=GOOGLE_TOKEN,
        scopes=GOOGLE_SCOPES,
        revoke_url=GOOGLE_REVOKE,
        issuer="https://accounts.google.com",
        # A refresh token on every consent, so a new sign-in always gets one.
        authorize_params=(("access_type", "offline"), ("prompt", "consent")),
    )


KNOWN: dict[str, OAuthProvider] = {"microsoft": microsoft(), "google": google()}


def named(name: str) -> OAuthProvider:
    """Return a known provider by name ("microsoft", "google"); KeyError else."""
    return KNOWN[name]


def declared(
    *,
    authorize_url: str,
    token_url: str,
    scopes: tuple[str, ...],
    device_code_url: str | None = None,
    issuer: str | None = None,
) -> OAuthProvider:
    """Build a provider from its endpoints (autoconfig's ``<oAuth2>``, a config file).

    Microsoft's and Google's own URLs get their known name, so their quirks
    (tenant, extras) follow; any other gets the token endpoint's host as name.
    """
    for url in (authorize_url, token_url, device_code_url):
        if url is not None:
            require_https(url)
    host = (urlsplit(token_url).hostname or "").lower()
    if host == urlsplit(MICROSOFT_LOGIN).hostname:
        tenant = urlsplit(token_url).path.strip("/").partition("/")[0] or "common"
        return replace(microsoft(tenant), scopes=scopes or MICROSOFT_SCOPES)
    if token_url == GOOGLE_TOKEN:
        return replace(google(), scopes=scopes or GOOGLE_SCOPES)
    return OAuthProvider(
        name=host,
        authorize_url=authorize_url,
        token_url=token_url,
        device_code_url=device_code_url,
        scopes=scopes,
        issuer=issuer,
    )


async def discover(
    session: aiohttp.ClientSession,
    issuer: str,
    scopes: tuple[str, ...],
    *,
    http_timeout: float = 10.0,
) -> OAuthProvider:
    """Read an issuer's metadata (OpenID Connect discovery / RFC 8414).

    Raises ``TokenServiceUnavailable`` when the issuer cannot be reached (or
    answers 429/5xx) and ``SignInError`` (reason ``config``) when its metadata
    is unusable (not JSON, another issuer, an endpoint missing or not HTTPS).
    """
    issuer = issuer.rstrip("/")
    require_https(issuer)
    client = OAuthHttp(session, timeout=http_timeout)
    url = f"{issuer}/.well-known/openid-configuration"
    status, meta = await client.get_json(url)
    if status == 429 or status >= 500:
        raise unavailable(url, status, meta)
    if status != 200:
        raise SignInError("config", f"{issuer} has no OpenID configuration ({status})")
    if str(meta.get("issuer", "")).rstrip("/") != issuer:
        raise SignInError("config", f"{issuer}'s metadata names another issuer")

    def endpoint(key: str, *, required: bool = True) -> str | None:
        value = meta.get(key)
        if not isinstance(value, str) or not value:
            if required:
                raise SignInError("config", f"{issuer}'s metadata has no {key}")
            return None
        require_https(value)
        return value

    authorize_url = endpoint("authorization_endpoint")
    token_url = endpoint("token_endpoint")
    assert authorize_url is not None
    assert token_url is not None
    return OAuthProvider(
        name=(urlsplit(issuer).hostname or issuer).lower(),
        authorize_url=authorize_url,
        token_url=token_url,
        device_code_url=endpoint("device_authorization_endpoint", required=False),
        revoke_url=endpoint("revocation_endpoint", required=False),
        scopes=scopes,
        issuer=issuer,
    )
