"""Microsoft and Google apps as application credentials: the sign-in Home Assistant opens.

No network: the flow stops at the external step, whose URL is the provider's
real sign-in page for the user's own app (tenant, scopes, PKCE, login hint).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from homeassistant import config_entries
from homeassistant.components.application_credentials import (
    ClientCredential,
    async_import_client_credential,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component

from custom_components.mail_relay import config_flow
from custom_components.mail_relay.const import CONF_EMAIL, CONF_PROTOCOL, DOMAIN
from tests.ha.oauth_helpers import served_servers

MICROSOFT_APP = "8f2c1a9e-0d4b-4c55-9e1f-3b7a6c2d9e01"
GOOGLE_APP = "1234567890-abcdef.apps.googleusercontent.com"
MICROSOFT_MAIL_SCOPES = {
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/POP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "offline_access",
}


@pytest.fixture
async def apps(hass: HomeAssistant) -> None:
    """The user's own Microsoft and Google apps."""
    assert await async_setup_component(hass, "application_credentials", {})
    assert await async_setup_component(hass, DOMAIN, {})
    # Each with its own key, as the credentials dialog stores them.
    for client_id, name in ((MICROSOFT_APP, "Entra app"), (GOOGLE_APP, "Google app")):
        await async_import_client_credential(
            hass,
            DOMAIN,
            ClientCredential(client_id, "app-secret", name=name),
            auth_domain=name.replace(" ", "_").lower(),
        )


async def _to_sign_in(hass: HomeAssistant, email: str) -> dict:
    """Type an address without a password; accept the preset's servers."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_EMAIL: email, CONF_PROTOCOL: "imap"}
    )
    assert result["step_id"] == "confirm"
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {config_flow.CONF_EDIT: False}
    )


@pytest.mark.usefixtures("apps", "current_request_with_host")
async def test_microsoft_sign_in_uses_the_tenant_and_the_mail_scopes(
    hass: HomeAssistant,
) -> None:
    result = await _to_sign_in(hass, "jean@outlook.com")
    assert result["type"] is FlowResultType.FORM, result
    assert result["step_id"] == "sign_in"
    # Browser or code, and the tenant; only the Microsoft app is offered.
    fields = {str(key) for key in result["data_schema"].schema}
    assert fields == {"method", "oauth_tenant"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"method": "browser", "oauth_tenant": "contoso.onmicrosoft.com"},
    )
    assert result["type"] is FlowResultType.EXTERNAL_STEP
    url = urlsplit(result["url"])
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert url.netloc == "login.microsoftonline.com"
    assert url.path == "/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
    assert query["client_id"] == MICROSOFT_APP
    assert set(query["scope"].split()) == MICROSOFT_MAIL_SCOPES
    assert query["code_challenge_method"] == "S256"
    assert query["login_hint"] == "jean@outlook.com"
    assert query["redirect_uri"] == "https://example.com/auth/external/callback"
    assert "client_secret" not in query


@pytest.mark.usefixtures("apps", "current_request_with_host")
async def test_microsoft_365_found_by_its_mx_signs_in_with_microsoft(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A company's own domain hosted by Microsoft 365: found by its MX host,
    # then Microsoft's sign-in, even though a password was typed.
    mx = {"contoso-mail.fr": "contoso-mail-fr.mail.protection.outlook.com"}
    async with served_servers(monkeypatch, mx=mx):
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": config_entries.SOURCE_USER}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {
                CONF_EMAIL: "jean@contoso-mail.fr",
                "password": "refused anyway",
                CONF_PROTOCOL: "imap",
            },
        )
        assert result["step_id"] == "confirm", result
        assert "outlook.office365.com" in result["description_placeholders"]["incoming"]
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {config_flow.CONF_EDIT: False}
        )
    assert result["step_id"] == "sign_in"
    assert result["description_placeholders"]["provider"] == "Microsoft"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"method": "browser", "oauth_tenant": "common"}
    )
    assert result["type"] is FlowResultType.EXTERNAL_STEP
    assert result["url"].startswith(
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize?"
    )


@pytest.mark.usefixtures("apps", "current_request_with_host")
async def test_a_bad_tenant_is_refused_on_the_form(hass: HomeAssistant) -> None:
    result = await _to_sign_in(hass, "jean@hotmail.com")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"method": "browser", "oauth_tenant": "not a tenant!"}
    )
    assert result["step_id"] == "sign_in"
    assert result["errors"] == {"oauth_tenant": "invalid_tenant"}


@pytest.mark.usefixtures("apps", "current_request_with_host")
async def test_gmail_without_password_opens_google_sign_in(hass: HomeAssistant) -> None:
    # One Google app, no device code for Gmail's scope: straight to Google.
    result = await _to_sign_in(hass, "jean@gmail.com")
    assert result["type"] is FlowResultType.EXTERNAL_STEP
    url = urlsplit(result["url"])
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert url.netloc == "accounts.google.com"
    assert query["client_id"] == GOOGLE_APP
    assert query["scope"] == "https://mail.google.com/"
    # A refresh token on every consent.
    assert query["access_type"] == "offline"
    assert query["prompt"] == "consent"


@pytest.mark.usefixtures("current_request_with_host")
async def test_without_an_app_home_assistant_offers_to_add_one(
    hass: HomeAssistant,
) -> None:
    assert await async_setup_component(hass, "application_credentials", {})
    result = await _to_sign_in(hass, "jean@gmail.com")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "missing_credentials"


async def test_no_password_and_no_sign_in_asks_for_the_password(
    hass: HomeAssistant,
) -> None:
    # Free offers no OAuth2: an empty password is an error on the first form.
    result = await _to_sign_in(hass, "jean@free.fr")
    assert result["step_id"] == "user"
    assert result["errors"] == {"password": "password_required"}


@pytest.mark.usefixtures("current_request_with_host")
async def test_a_provider_declared_by_its_endpoints_signs_its_domain_in(
    hass: HomeAssistant,
) -> None:
    # configuration.yaml: a self-hosted server for a domain, by its endpoints
    # (no device code endpoint: the sign-in form is skipped).
    declared = {
        "domains": ["free.fr"],
        "name": "Example SSO",
        "authorize_url": "https://sso.example.org/auth",
        "token_url": "https://sso.example.org/token",
        "client_id": "home-assistant",
        "scopes": "openid email offline_access",
    }
    assert await async_setup_component(
        hass, DOMAIN, {DOMAIN: {"oauth_providers": [declared]}}
    )
    result = await _to_sign_in(hass, "jean@free.fr")
    assert result["type"] is FlowResultType.EXTERNAL_STEP
    url = urlsplit(result["url"])
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert (url.netloc, url.path) == ("sso.example.org", "/auth")
    assert query["client_id"] == "home-assistant"
    assert query["scope"] == "openid email offline_access"
    assert query["code_challenge_method"] == "S256"


@pytest.mark.parametrize(
    "declared",
    [
        # Neither an issuer nor endpoints.
        {"domains": ["a.test"], "client_id": "x", "scopes": ["mail"]},
        # Both.
        {
            "domains": ["a.test"],
            "issuer": "https://sso.a.test",
            "authorize_url": "https://sso.a.test/auth",
            "token_url": "https://sso.a.test/token",
            "client_id": "x",
            "scopes": ["mail"],
        },
        # An authorize URL without its token URL.
        {
            "domains": ["a.test"],
            "authorize_url": "https://sso.a.test/auth",
            "client_id": "x",
            "scopes": ["mail"],
        },
        # No domain.
        {"domains": [], "issuer": "https://sso.a.test", "client_id": "x", "scopes": []},
    ],
)
async def test_a_malformed_declared_provider_is_refused(
    hass: HomeAssistant, declared: dict
) -> None:
    assert not await async_setup_component(
        hass, DOMAIN, {DOMAIN: {"oauth_providers": [declared]}}
    )
