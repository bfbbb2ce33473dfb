"""OAuth2 accounts through Home Assistant, end to end, against real servers.

The local authorization server (tests/mailserver/oauth.py) is declared in
configuration.yaml, as a self-hosted Keycloak would be; Dovecot and aiosmtpd
check every token there by introspection. The sign-in page is filled in with a
real HTTP client and Home Assistant makes its own token requests.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import CONF_PASSWORD
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.mail_relay import config_flow
from custom_components.mail_relay.const import (
    CONF_EMAIL,
    CONF_OAUTH_METHOD,
    CONF_PROTOCOL,
    CONF_SMTP_HOST,
    CONF_TOKEN,
    DOMAIN,
    EVENT_NEW_MAIL,
)
from custom_components.mail_relay.diagnostics import async_get_config_entry_diagnostics
from tests.ha.helpers import wait_for
from tests.ha.oauth_helpers import (
    approve_when_shown,
    declared_provider,
    follow_sign_in,
    register_app,
    served_servers,
)
from tests.ha.test_pop3_account import poll
from tests.mailserver import DovecotServer, MailUser, OAuthServer, SmtpServer
from tests.mailserver.dovecot import make_message

pytestmark = pytest.mark.usefixtures("trust_test_cert", "current_request_with_host")

type ClientFactory = Callable[[], Awaitable[Any]]


@pytest.fixture
async def sign_in_bed(
    hass: HomeAssistant,
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[OAuthServer]:
    """The test domain signs in at the local server and finds the OAuth servers."""
    register_app(oauth_server)
    config = {DOMAIN: {"oauth_providers": [declared_provider(oauth_server)]}}
    assert await async_setup_component(hass, DOMAIN, config)
    # What the account's platforms load registers HTTP views: before the test
    # client (the sign-in's callback) freezes the router.
    for component in ("notify", "diagnostics"):
        assert await async_setup_component(hass, component, {})
    async with served_servers(monkeypatch, oauth_dovecot, oauth_smtp):
        yield oauth_server
    oauth_server.access_token_lifetime = 3600
    oauth_server.token_failure = None


@pytest.fixture
def other_user(oauth_dovecot: DovecotServer, oauth_server: OAuthServer) -> MailUser:
    """Another mailbox whose owner can sign in too."""
    user = oauth_dovecot.add_user()
    oauth_server.add_user(user.address, user.password)
    return user


async def _sign_in_form(
    hass: HomeAssistant, address: str, protocol: str = "imap"
) -> dict[str, Any]:
    """The address without a password, the servers found, then the sign-in form."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_EMAIL: address, CONF_PROTOCOL: protocol}
    )
    assert result["step_id"] == "confirm", result
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {config_flow.CONF_EDIT: False}
    )
    assert result["step_id"] == "sign_in", result
    return result


async def _add_account(
    hass: HomeAssistant,
    client: ClientFactory,
    user: MailUser,
    protocol: str = "imap",
) -> ConfigEntry:
    result = await _sign_in_form(hass, user.address, protocol)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"method": "browser"}
    )
    result = await follow_sign_in(hass, client, result, user.address, user.password)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    entry: ConfigEntry = result["result"]
    return entry


async def _unload(hass: HomeAssistant, entry: ConfigEntry) -> None:
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
@pytest.mark.usefixtures("sign_in_bed")
async def test_browser_sign_in_adds_an_account_that_receives_and_sends(
    hass: HomeAssistant,
    hass_client_no_auth: ClientFactory,
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_smtp: SmtpServer,
    oauth_user: MailUser,
    protocol: str,
) -> None:
    entry = await _add_account(hass, hass_client_no_auth, oauth_user, protocol)

    assert entry.title == f"{oauth_user.address} ({protocol.upper()})"
    assert CONF_PASSWORD not in entry.data
    token = entry.data[CONF_TOKEN]
    issued = {t.access_token for t in oauth_server.tokens_of(oauth_user.address)}
    assert token["access_token"] in issued
    assert token["refresh_token"]
    assert entry.data[CONF_SMTP_HOST] == "127.0.0.1"
    assert entry.state is ConfigEntryState.LOADED

    events = async_capture_events(hass, EVENT_NEW_MAIL)
    raw = make_message("Signed in", to=oauth_user.address)
    await hass.async_add_executor_job(oauth_dovecot.deliver, oauth_user, raw)
    if protocol == "pop3":
        await poll(hass, 300)  # the default interval
    await wait_for(hass, lambda: len(events) == 1)
    assert events[0].data["subject"] == "Signed in"

    await hass.services.async_call(
        DOMAIN,
        "send_mail",
        {"config_entry_id": entry.entry_id, "to": ["friend@example.org"], "text": "Hi"},
        blocking=True,
    )
    received = oauth_smtp.received_by("friend@example.org")
    sent = [m for m in received if m.mail_from == oauth_user.address]
    assert len(sent) == 1
    assert sent[0].login == oauth_user.address  # AUTH XOAUTH2 as the account
    await _unload(hass, entry)


@pytest.mark.usefixtures("sign_in_bed")
async def test_device_code_sign_in_adds_an_account(
    hass: HomeAssistant,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
) -> None:
    result = await _sign_in_form(hass, oauth_user.address)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"method": "device"}
    )
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["progress_action"] == "wait_for_device"
    shown = result["description_placeholders"]
    assert shown["url"].startswith(oauth_server.base)
    # The user types the code on another device; the polling sees it and the
    # flow says so (the frontend then asks for the next step).
    await approve_when_shown(oauth_server, shown["code"], oauth_user.address)
    flow_id = result["flow_id"]
    flows = hass.config_entries.flow
    await wait_for(hass, lambda: flows.async_get(flow_id)["step_id"] == "device_done")
    result = await flows.async_configure(flow_id)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.data[CONF_OAUTH_METHOD] == "device"
    assert entry.data[CONF_EMAIL] == oauth_user.address
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED)
    await _unload(hass, entry)


@pytest.mark.usefixtures("sign_in_bed")
async def test_signing_in_as_another_account_aborts_clearly(
    hass: HomeAssistant,
    hass_client_no_auth: ClientFactory,
    oauth_user: MailUser,
    other_user: MailUser,
) -> None:
    result = await _sign_in_form(hass, oauth_user.address)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"method": "browser"}
    )
    # At the consent page the user picks the other account.
    result = await follow_sign_in(
        hass, hass_client_no_auth, result, other_user.address, other_user.password
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "sign_in_refused"
    assert result["description_placeholders"] == {"email": oauth_user.address}
    assert hass.config_entries.async_entries(DOMAIN) == []


@pytest.mark.usefixtures("sign_in_bed")
async def test_a_token_expiring_while_watching_is_refreshed_without_loss(
    hass: HomeAssistant,
    hass_client_no_auth: ClientFactory,
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_user: MailUser,
) -> None:
    # Home Assistant refreshes 20 s before the announced expiry: a 24 s token
    # is due for renewal after 4 s.
    oauth_server.access_token_lifetime = 24
    entry = await _add_account(hass, hass_client_no_auth, oauth_user)
    first = entry.data[CONF_TOKEN]
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    await hass.async_add_executor_job(
        oauth_dovecot.deliver, oauth_user, make_message("before", to=oauth_user.address)
    )
    await wait_for(hass, lambda: len(events) == 1)
    refreshes = oauth_server.refresh_requests
    logins = len(oauth_dovecot.logins(oauth_user))

    # The token runs out; the next login (here: after the server dropped the
    # session) takes a fresh one.
    await wait_for(hass, lambda: time.time() > first["expires_at"] - 20, 10)
    await hass.async_add_executor_job(oauth_dovecot.restart)
    await hass.async_add_executor_job(
        oauth_dovecot.deliver, oauth_user, make_message("during", to=oauth_user.address)
    )
    await wait_for(hass, lambda: len(events) == 2, 30)
    await hass.async_add_executor_job(
        oauth_dovecot.deliver, oauth_user, make_message("after", to=oauth_user.address)
    )
    await wait_for(hass, lambda: len(events) == 3, 15)

    assert [e.data["subject"] for e in events] == ["before", "during", "after"]
    assert oauth_server.refresh_requests > refreshes
    assert entry.data[CONF_TOKEN]["access_token"] != first["access_token"]
    # The rotated refresh token is the one stored.
    assert entry.data[CONF_TOKEN]["refresh_token"] != first["refresh_token"]
    await wait_for(hass, lambda: len(oauth_dovecot.logins(oauth_user)) > logins, 10)
    await _unload(hass, entry)


@pytest.mark.usefixtures("sign_in_bed")
async def test_a_revoked_grant_asks_to_sign_in_again_and_reauth_restores(
    hass: HomeAssistant,
    hass_client_no_auth: ClientFactory,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
) -> None:
    entry = await _add_account(hass, hass_client_no_auth, oauth_user)
    oauth_server.revoke_all(oauth_user.address)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == ["reauth"]

    flow_id = flows[0]["flow_id"]
    result = await hass.config_entries.flow.async_configure(flow_id)
    assert result["step_id"] == "reauth_sign_in"
    result = await hass.config_entries.flow.async_configure(flow_id, {})
    assert result["step_id"] == "sign_in"
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"method": "browser"}
    )
    result = await follow_sign_in(
        hass, hass_client_no_auth, result, oauth_user.address, oauth_user.password
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    live = {t.access_token for t in oauth_server.tokens_of(oauth_user.address)}
    assert entry.data[CONF_TOKEN]["access_token"] in live
    await _unload(hass, entry)


@pytest.mark.usefixtures("sign_in_bed")
async def test_reconfigure_tests_the_servers_with_the_stored_token(
    hass: HomeAssistant,
    hass_client_no_auth: ClientFactory,
    oauth_dovecot: DovecotServer,
    oauth_user: MailUser,
) -> None:
    entry = await _add_account(hass, hass_client_no_auth, oauth_user)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={
            "source": config_entries.SOURCE_RECONFIGURE,
            "entry_id": entry.entry_id,
        },
    )
    assert result["step_id"] == "reconfigure"
    # STARTTLS on 143 instead of SSL/TLS on 993, same token.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "incoming_host": "127.0.0.1",
            "incoming_port": oauth_dovecot.imap_port,
            "incoming_security": "starttls",
            "incoming_username": oauth_user.address,
            "smtp_host": entry.data["smtp_host"],
            "smtp_port": entry.data["smtp_port"],
            "smtp_security": entry.data["smtp_security"],
            "smtp_username": entry.data["smtp_username"],
            config_flow.SECTION_TLS: {"verify_ssl": True},
        },
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.data["incoming_security"] == "starttls"
    assert entry.data[CONF_TOKEN]["refresh_token"]
    assert entry.state is ConfigEntryState.LOADED
    await _unload(hass, entry)


@pytest.mark.usefixtures("sign_in_bed")
async def test_an_unreachable_sign_in_server_is_unavailable_never_reauth(
    hass: HomeAssistant,
    hass_client_no_auth: ClientFactory,
    oauth_server: OAuthServer,
    oauth_user: MailUser,
) -> None:
    oauth_server.access_token_lifetime = 21  # due for renewal after 1 s
    entry = await _add_account(hass, hass_client_no_auth, oauth_user)
    await _unload(hass, entry)
    await wait_for(
        hass, lambda: time.time() > entry.data[CONF_TOKEN]["expires_at"] - 19
    )
    # The sign-in service fails (503; a refused connection is the same to the
    # token source, see test_oauth_tokens.py).
    oauth_server.token_failure = 503
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []
    oauth_server.token_failure = None
    # Back: the next try refreshes and runs.
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await _unload(hass, entry)


@pytest.mark.usefixtures("sign_in_bed")
async def test_no_token_in_debug_logs_or_diagnostics(
    hass: HomeAssistant,
    hass_client_no_auth: ClientFactory,
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_user: MailUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    oauth_server.access_token_lifetime = 22  # a refresh happens in the test
    entry = await _add_account(hass, hass_client_no_auth, oauth_user)
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    await hass.async_add_executor_job(
        oauth_dovecot.deliver, oauth_user, make_message("x", to=oauth_user.address)
    )
    await wait_for(hass, lambda: len(events) == 1)
    await wait_for(
        hass, lambda: time.time() > entry.data[CONF_TOKEN]["expires_at"] - 20
    )
    await hass.services.async_call(
        DOMAIN,
        "send_mail",
        {"config_entry_id": entry.entry_id, "to": ["friend@example.org"], "text": "x"},
        blocking=True,
    )
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    await _unload(hass, entry)

    secrets: set[str] = set()
    for issued in oauth_server.tokens_of(oauth_user.address):
        secrets |= {issued.access_token, issued.refresh_token or ""}
        for sasl in (
            f"user={oauth_user.address}\x01auth=Bearer {issued.access_token}\x01\x01",
            f"n,a={oauth_user.address},\x01auth=Bearer {issued.access_token}\x01\x01",
        ):
            secrets.add(base64.b64encode(sasl.encode()).decode())
    secrets.discard("")
    assert len(secrets) >= 6  # at least two pairs: the sign-in and a refresh
    # Home Assistant's side only: the authorization server and the mail servers
    # run in this process too, and theirs are the provider's logs.
    ours = [
        logging.Formatter().format(record)
        for record in caplog.records
        if not record.name.startswith(("authlib", "mail.log", "tests."))
    ]
    assert len(ours) > 50  # DEBUG was on: the flow, the logins, the refresh
    assert [s for s in secrets if any(s in line for line in ours)] == []
    assert [s for s in secrets if s in str(diagnostics)] == []
    assert not any("ha-client-secret" in line for line in ours)


@pytest.mark.usefixtures("sign_in_bed")
async def test_a_failing_sign_in_server_while_watching_retries_never_reauth(
    hass: HomeAssistant,
    hass_client_no_auth: ClientFactory,
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_user: MailUser,
) -> None:
    oauth_server.access_token_lifetime = 21  # due for renewal after 1 s
    entry = await _add_account(hass, hass_client_no_auth, oauth_user)
    coordinator = entry.runtime_data.coordinator
    await wait_for(hass, lambda: coordinator.connected)
    await wait_for(
        hass, lambda: time.time() > entry.data[CONF_TOKEN]["expires_at"] - 19
    )
    # The session ends while the sign-in service fails: no token to log in with.
    oauth_server.token_failure = 503
    asked = oauth_server.token_requests
    await hass.async_add_executor_job(oauth_dovecot.restart)
    await wait_for(hass, lambda: oauth_server.token_requests > asked, 15)
    await wait_for(hass, lambda: "503" in (coordinator.last_error or ""), 15)
    assert not coordinator.connected  # shown as a lost connection, with why
    assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []
    assert entry.state is ConfigEntryState.LOADED
    # The service is back: the watcher logs in again by itself, nothing lost.
    oauth_server.token_failure = None
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    await hass.async_add_executor_job(
        oauth_dovecot.deliver, oauth_user, make_message("back", to=oauth_user.address)
    )
    await wait_for(hass, lambda: coordinator.connected, 60)
    await wait_for(hass, lambda: len(events) == 1, 15)
    assert events[0].data["subject"] == "back"
    assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []
    await _unload(hass, entry)


@pytest.mark.usefixtures("sign_in_bed")
async def test_a_denied_device_code_aborts_clearly(
    hass: HomeAssistant, oauth_server: OAuthServer, oauth_user: MailUser
) -> None:
    result = await _sign_in_form(hass, oauth_user.address)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"method": "device"}
    )
    code = result["description_placeholders"]["code"]
    await approve_when_shown(oauth_server, code, oauth_user.address, approve=False)
    flow_id = result["flow_id"]
    flows = hass.config_entries.flow
    await wait_for(hass, lambda: flows.async_get(flow_id)["step_id"] == "device_failed")
    result = await flows.async_configure(flow_id)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "sign_in_denied"
    assert hass.config_entries.async_entries(DOMAIN) == []
