"""Home Assistant's OAuth2 helpers, fitted to mail accounts.

Sign-in goes through ``config_entry_oauth2_flow``: a Microsoft or Google app
is an application credential (the user's own client id), a self-hosted server
(Keycloak in front of Dovecot, say) is declared in configuration.yaml. Every
flow and every entry works on its own copy of an implementation: the copy
carries one sign-in's PKCE verifier and one account's tenant, so two accounts
at two providers never share state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import jwt
import voluptuous as vol
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_CLIENT_ID, CONF_CLIENT_SECRET, CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_entry_oauth2_flow
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import (
    CONF_AUTH_IMPLEMENTATION,
    CONF_OAUTH_METHOD,
    CONF_OAUTH_TENANT,
    CONF_TOKEN,
    DOMAIN,
)
from .mail.oauth.endpoints import OAuthProvider, declared, discover, google, microsoft

# What a declared provider may say in configuration.yaml (``oauth_providers``).
CONF_DOMAINS = "domains"
CONF_ISSUER = "issuer"
CONF_AUTHORIZE_URL = "authorize_url"
CONF_TOKEN_URL = "token_url"  # noqa: S105  # a key, not a secret
CONF_DEVICE_CODE_URL = "device_code_url"
CONF_SCOPES = "scopes"

METHOD_BROWSER = "browser"
METHOD_DEVICE = "device"
# Google's client ids end so; Microsoft's (Entra application ids) are GUIDs.
GOOGLE_CLIENT_SUFFIX = ".apps.googleusercontent.com"
DISCOVERY_TIMEOUT = 10.0
DECLARED_PREFIX = "declared_"  # implementation keys of declared providers
MAX_ID_TOKEN_CHARS = 16 * 1024


def _endpoints(config: dict[str, Any]) -> dict[str, Any]:
    has_issuer = CONF_ISSUER in config
    has_urls = CONF_AUTHORIZE_URL in config or CONF_TOKEN_URL in config
    if has_issuer == has_urls:
        raise vol.Invalid("give either issuer, or authorize_url and token_url")
    if has_urls and not (CONF_AUTHORIZE_URL in config and CONF_TOKEN_URL in config):
        raise vol.Invalid("authorize_url and token_url go together")
    return config


DECLARED_SCHEMA = vol.All(
    vol.Schema(
        {
            vol.Required(CONF_DOMAINS): vol.All(
                cv.ensure_list, [vol.All(cv.string, vol.Lower)], vol.Length(min=1)
            ),
            vol.Optional(CONF_NAME): cv.string,
            vol.Optional(CONF_ISSUER): cv.url,
            vol.Optional(CONF_AUTHORIZE_URL): cv.url,
            vol.Optional(CONF_TOKEN_URL): cv.url,
            vol.Optional(CONF_DEVICE_CODE_URL): cv.url,
            vol.Required(CONF_CLIENT_ID): cv.string,
            vol.Optional(CONF_CLIENT_SECRET, default=""): cv.string,
            vol.Required(CONF_SCOPES): vol.All(cv.ensure_list_csv, [cv.string]),
        }
    ),
    _endpoints,
)


def credential_provider(client_id: str) -> OAuthProvider:
    """Return whose app an application credential is: Google's or Microsoft's."""
    return google() if client_id.endswith(GOOGLE_CLIENT_SUFFIX) else microsoft()


@dataclass(slots=True)
class _Declared:
    """A provider from configuration.yaml; an issuer is read when first needed."""

    config: dict[str, Any]
    provider: OAuthProvider | None = None
    lock: asyncio.Lock | None = None

    async def resolve(self, hass: HomeAssistant) -> OAuthProvider:
        if self.provider is not None:
            return self.provider
        self.lock = self.lock or asyncio.Lock()
        async with self.lock:
            if self.provider is None:
                self.provider = await self._read(hass)
        return self.provider

    async def _read(self, hass: HomeAssistant) -> OAuthProvider:
        config = self.config
        scopes = tuple(config[CONF_SCOPES])
        if CONF_ISSUER in config:
            return await discover(
                async_get_clientsession(hass),
                config[CONF_ISSUER],
                scopes,
                http_timeout=DISCOVERY_TIMEOUT,
            )
        return declared(
            authorize_url=config[CONF_AUTHORIZE_URL],
            token_url=config[CONF_TOKEN_URL],
            device_code_url=config.get(CONF_DEVICE_CODE_URL),
            scopes=scopes,
        )


class MailOAuth2Implementation(
    config_entry_oauth2_flow.LocalOAuth2ImplementationWithPkce
):
    """One OAuth client at one authorization server, with the scopes mail needs.

    ``public``: the grant was made without the client secret (Microsoft's
    device code), so its refreshes go without it too.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        key: str,
        name: str,
        *,
        client_id: str,
        client_secret: str,
        provider: OAuthProvider | None = None,
        declared_by: _Declared | None = None,
        public: bool = False,
    ) -> None:
        """Keep the client; a declared issuer's endpoints are read when needed."""
        super().__init__(
            hass,
            key,
            client_id,
            provider.authorize_url if provider else "",
            provider.token_url if provider else "",
            "" if public else client_secret,
        )
        self._name = name
        self._secret = client_secret
        self._provider = provider
        self._declared = declared_by
        self.public = public

    @property
    def name(self) -> str:
        """What the user sees (the credential's name, or the provider's)."""
        return self._name

    async def async_provider(self) -> OAuthProvider:
        """Return the endpoints and scopes (a declared issuer is read once)."""
        if self._provider is None:
            assert self._declared is not None
            self._provider = await self._declared.resolve(self.hass)
            self.authorize_url = self._provider.authorize_url
            self.token_url = self._provider.token_url
        return self._provider

    def for_account(self, *, tenant: str | None = None, public: bool = False) -> Self:
        """Return a copy for one sign-in or one entry (own verifier, own tenant)."""
        provider = self._provider
        if provider is not None and tenant:
            provider = provider.with_tenant(tenant)
        return type(self)(
            self.hass,
            self.domain,
            self._name,
            client_id=self.client_id,
            client_secret=self._secret,
            provider=provider,
            declared_by=self._declared,
            public=public,
        )

    @property
    def tenant(self) -> str | None:
        """Microsoft's tenant of this copy; None elsewhere."""
        return self._provider.tenant if self._provider else None

    @property
    def provider_name(self) -> str | None:
        """Return "microsoft" or "google" for an app; a declared issuer's host."""
        return self._provider.name if self._provider else None

    @property
    def is_microsoft(self) -> bool:
        """Whether this is a Microsoft app (tenants; public device-code client)."""
        return self._provider is not None and self._provider.name == "microsoft"

    @property
    def extra_authorize_data(self) -> dict[str, Any]:
        """PKCE, the mail scopes and the provider's extras (Google: offline)."""
        assert self._provider is not None  # resolved before the URL is built
        return {
            **super().extra_authorize_data,
            "scope": self._provider.scope,
            **dict(self._provider.authorize_params),
        }

    async def async_generate_authorize_url(self, flow_id: str) -> str:
        """Read a declared issuer first, then build the URL."""
        await self.async_provider()
        return await super().async_generate_authorize_url(flow_id)

    async def _token_request(self, data: dict[str, Any]) -> dict[str, Any]:
        await self.async_provider()
        return await super()._token_request(data)


def implementation_for_credential(
    hass: HomeAssistant,
    auth_domain: str,
    client_id: str,
    client_secret: str,
    name: str | None,
) -> MailOAuth2Implementation:
    """Return the implementation of a Microsoft or Google application credential."""
    provider = credential_provider(client_id)
    label = {"microsoft": "Microsoft", "google": "Google"}[provider.name]
    return MailOAuth2Implementation(
        hass,
        auth_domain,
        name or f"{label} ({client_id})",
        client_id=client_id,
        client_secret=client_secret,
        provider=provider,
    )


def declared_key(config: Mapping[str, Any]) -> str:
    """Return the stable implementation key of a declared provider (first domain)."""
    return DECLARED_PREFIX + str(config[CONF_DOMAINS][0]).replace(".", "_")


def async_register_declared(
    hass: HomeAssistant, providers: list[dict[str, Any]]
) -> dict[str, str]:
    """Register configuration.yaml's providers; return mail domain -> key."""
    by_domain: dict[str, str] = {}
    for config in providers:
        key = declared_key(config)
        name = (
            config.get(CONF_NAME) or config.get(CONF_ISSUER) or config[CONF_TOKEN_URL]
        )
        config_entry_oauth2_flow.async_register_implementation(
            hass,
            DOMAIN,
            MailOAuth2Implementation(
                hass,
                key,
                name,
                client_id=config[CONF_CLIENT_ID],
                client_secret=config[CONF_CLIENT_SECRET],
                declared_by=_Declared(dict(config)),
            ),
        )
        by_domain.update(dict.fromkeys(config[CONF_DOMAINS], key))
    return by_domain


async def async_implementations(
    hass: HomeAssistant,
) -> dict[str, MailOAuth2Implementation]:
    """Every implementation of Mail Relay: credentials and declared providers."""
    found = await config_entry_oauth2_flow.async_get_implementations(hass, DOMAIN)
    return {
        key: impl
        for key, impl in found.items()
        if isinstance(impl, MailOAuth2Implementation)
    }


async def async_entry_implementation(
    hass: HomeAssistant, entry: ConfigEntry[Any]
) -> MailOAuth2Implementation:
    """Return the entry's own copy of its implementation (tenant, public client).

    Raises ValueError when the credential or declared provider is gone.
    """
    found = (await async_implementations(hass)).get(
        entry.data[CONF_AUTH_IMPLEMENTATION]
    )
    if found is None:
        raise ValueError("OAuth implementation not available")
    return found.for_account(
        tenant=entry.data.get(CONF_OAUTH_TENANT),
        # Microsoft's device code is a public-client grant: refreshed without
        # the secret, as it was made.
        public=found.is_microsoft
        and entry.data.get(CONF_OAUTH_METHOD) == METHOD_DEVICE,
    )


def signed_in_as(token: Mapping[str, Any]) -> str | None:
    """Return the address an ID token names, when the sign-in gave one.

    The token came straight from the token endpoint over TLS, so its claims
    are read without checking the signature (OpenID Connect Core 3.1.3.7).
    """
    id_token = token.get("id_token")
    if not isinstance(id_token, str) or len(id_token) > MAX_ID_TOKEN_CHARS:
        return None
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    for claim in ("email", "preferred_username", "upn"):
        value = claims.get(claim)
        if isinstance(value, str) and "@" in value:
            return value.strip().lower()
    return None


def is_oauth_entry(data: Mapping[str, Any]) -> bool:
    """Return whether an entry signs in with OAuth2 (else with a password)."""
    return CONF_TOKEN in data
