"""The entry's token source: Home Assistant's OAuth2Session against the local server.

Every refresh here is Home Assistant's own token request to the authorization
server of tests/mailserver/oauth.py; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.mail_relay.const import (
    CONF_AUTH_IMPLEMENTATION,
    CONF_EMAIL,
    CONF_PROTOCOL,
    CONF_TOKEN,
    DOMAIN,
)
from custom_components.mail_relay.mail.errors import (
    TokenRefreshRefused,
    TokenServiceUnavailable,
)
from custom_components.mail_relay.oauth import async_entry_implementation, declared_key
from custom_components.mail_relay.token_source import EntryTokenSource
from tests.ha.oauth_helpers import CLIENT_ID, declared_provider, register_app
from tests.mailserver import OAuthServer


@pytest.fixture
def oauth_server() -> Iterator[OAuthServer]:
    """An authorization server of this test's own, which it may take down.

    Started and stopped inside the test, so no thread of it outlives the test
    (Home Assistant's test harness checks).
    """
    server = OAuthServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def provider(hass: HomeAssistant, oauth_server: OAuthServer) -> str:
    """configuration.yaml declares the local server; return its implementation key."""
    register_app(oauth_server)
    declared = declared_provider(oauth_server)
    assert await async_setup_component(
        hass, DOMAIN, {DOMAIN: {"oauth_providers": [declared]}}
    )
    return declared_key(declared)


def _entry(hass: HomeAssistant, key: str, token: dict[str, Any]) -> MockConfigEntry:
    # Only what the token source reads; no mail server is involved here.
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={
            CONF_EMAIL: "ana@mailrelay.test",
            CONF_PROTOCOL: "imap",
            CONF_AUTH_IMPLEMENTATION: key,
            CONF_TOKEN: token,
        },
    )
    entry.add_to_hass(hass)
    return entry


def _token(server: OAuthServer, user: str, *, expired: bool) -> dict[str, Any]:
    """A token pair the server issued, as Home Assistant stores it."""
    issued = server.issue(user, client_id=CLIENT_ID)
    return {
        "access_token": issued.access_token,
        "refresh_token": issued.refresh_token,
        "token_type": "Bearer",
        "expires_in": 3600,
        "expires_at": time.time() - 1 if expired else time.time() + 3600,
    }


async def _source(hass: HomeAssistant, entry: MockConfigEntry) -> EntryTokenSource:
    return EntryTokenSource(hass, entry, await async_entry_implementation(hass, entry))


async def test_a_valid_token_is_used_without_a_request(
    hass: HomeAssistant, oauth_server: OAuthServer, provider: str
) -> None:
    token = _token(oauth_server, "ana@mailrelay.test", expired=False)
    source = await _source(hass, _entry(hass, provider, token))
    before = oauth_server.token_requests
    assert await source.access_token() == token["access_token"]
    assert source.expires_at == token["expires_at"]
    assert oauth_server.token_requests == before


async def test_an_expired_token_is_refreshed_and_the_rotated_pair_stored(
    hass: HomeAssistant, oauth_server: OAuthServer, provider: str
) -> None:
    token = _token(oauth_server, "ana@mailrelay.test", expired=True)
    entry = _entry(hass, provider, token)
    source = await _source(hass, entry)
    refreshes = oauth_server.refresh_requests

    access = await source.access_token()

    assert oauth_server.refresh_requests == refreshes + 1
    stored = entry.data[CONF_TOKEN]
    assert access == stored["access_token"] != token["access_token"]
    # The server rotated the refresh token: the entry keeps the new one.
    assert stored["refresh_token"] != token["refresh_token"]
    assert stored["expires_at"] > time.time() + 60
    assert source.expires_at == stored["expires_at"]
    # And the stored one works for the next refresh (the old one would not).
    await source.access_token(force_refresh=True)
    assert oauth_server.refresh_requests == refreshes + 2
    assert entry.data[CONF_TOKEN]["access_token"] != access


async def test_a_refused_token_is_refreshed_once_for_all_clients(
    hass: HomeAssistant, oauth_server: OAuthServer, provider: str
) -> None:
    # IMAP and SMTP refused the same token at once: one refresh serves both.
    token = _token(oauth_server, "ana@mailrelay.test", expired=False)
    source = await _source(hass, _entry(hass, provider, token))
    refreshes = oauth_server.refresh_requests
    first, second = await asyncio.gather(
        source.access_token(force_refresh=True),
        source.access_token(force_refresh=True),
    )
    assert first == second != token["access_token"]
    assert oauth_server.refresh_requests == refreshes + 1


async def test_a_revoked_grant_is_refused_not_retried(
    hass: HomeAssistant, oauth_server: OAuthServer, provider: str
) -> None:
    token = _token(oauth_server, "bea@mailrelay.test", expired=True)
    source = await _source(hass, _entry(hass, provider, token))
    oauth_server.revoke_all("bea@mailrelay.test")
    with pytest.raises(TokenRefreshRefused) as caught:
        await source.access_token()
    assert caught.value.fatal  # the user must sign in again
    assert token["refresh_token"] not in str(caught.value)


async def test_an_unreachable_server_is_unavailable_not_refused(
    hass: HomeAssistant, oauth_server: OAuthServer, provider: str
) -> None:
    token = _token(oauth_server, "ana@mailrelay.test", expired=True)
    entry = _entry(hass, provider, token)
    source = await _source(hass, entry)
    with oauth_server.down(), pytest.raises(TokenServiceUnavailable) as caught:
        await source.access_token()
    assert not caught.value.fatal  # retried, never a reason to sign in again
    # A failing server (503) is the same; the stored grant is untouched.
    oauth_server.token_failure = 503
    with pytest.raises(TokenServiceUnavailable):
        await source.access_token()
    oauth_server.token_failure = None
    assert entry.data[CONF_TOKEN]["refresh_token"] == token["refresh_token"]
    # Back up: the same grant refreshes.
    assert await source.access_token() != token["access_token"]


async def test_an_account_whose_app_was_removed_asks_to_sign_in_again(
    hass: HomeAssistant, oauth_server: OAuthServer, provider: str
) -> None:
    # The application credential (or the YAML provider) it signed in with is
    # gone: signing in again is the way to pick another one.
    token = _token(oauth_server, "ana@mailrelay.test", expired=False)
    entry = _entry(hass, "a_removed_app", token)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == ["reauth"]
