"""Application credentials: the user's own Microsoft (Entra) or Google app.

One platform for both: a Google client id ends in
``.apps.googleusercontent.com``, a Microsoft one is a GUID, so the credential
alone says whose endpoints it uses. Microsoft's tenant is chosen per account
in the config flow (``common`` by default).
"""

from __future__ import annotations

from homeassistant.components.application_credentials import ClientCredential
from homeassistant.core import HomeAssistant
from homeassistant.helpers.config_entry_oauth2_flow import (
    MY_AUTH_CALLBACK_PATH,
    AbstractOAuth2Implementation,
)

from .oauth import implementation_for_credential


async def async_get_auth_implementation(
    hass: HomeAssistant, auth_domain: str, credential: ClientCredential
) -> AbstractOAuth2Implementation:
    """Return the implementation of a Microsoft or Google app."""
    return implementation_for_credential(
        hass,
        auth_domain,
        credential.client_id,
        credential.client_secret,
        credential.name,
    )


async def async_get_description_placeholders(hass: HomeAssistant) -> dict[str, str]:
    """Fill the credentials dialog's help text."""
    return {
        "redirect_url": MY_AUTH_CALLBACK_PATH,
        "entra_url": "https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade",
        "google_url": "https://console.cloud.google.com/apis/credentials",
        "docs_url": "https://github.com/mail-relay/mail-relay#sign-in-with-microsoft-or-google-oauth2",
    }
