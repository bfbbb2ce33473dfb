"""The setup wizard through Home Assistant, against real Dovecot/aiosmtpd and local HTTP/DNS."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PASSWORD
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData, section
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.translation import async_get_translations
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.mail_relay import compat, config_flow
from custom_components.mail_relay.config_flow import SECTION_TLS
from custom_components.mail_relay.const import (
    CONF_EMAIL,
    CONF_FOLDER,
    CONF_FOLDERS,
    CONF_INCOMING_HOST,
    CONF_INCOMING_PORT,
    CONF_INCOMING_SECURITY,
    CONF_INCOMING_USERNAME,
    CONF_POLL_INTERVAL,
    CONF_PROTOCOL,
    CONF_PROVIDER,
    CONF_RECIPIENTS,
    CONF_RETENTION,
    CONF_SMTP_HOST,
    CONF_SMTP_PORT,
    CONF_SMTP_SECURITY,
    CONF_SMTP_USERNAME,
    CONF_SOURCE,
    CONF_VERIFY_SSL,
    DOMAIN,
)
from custom_components.mail_relay.mail.autoconfig import AutoconfigSettings
from custom_components.mail_relay.mail.providers import PROVIDERS
from tests.ha.helpers import wait_for
from tests.mailserver import DovecotServer, MailUser, SmtpServer
from tests.mailserver.dns import DnsTestServer
from tests.mailserver.http import ConfigHttpServer, config_xml
from tests.mailserver.ports import free_port


@dataclass
class LocalAutoconfig:
    http: ConfigHttpServer
    dns: DnsTestServer

    def serve(self, domain: str, xml: str) -> None:
        self.http.files[f"/autoconfig/{domain}/mail/config-v1.1.xml"] = xml


@pytest.fixture
async def local_autoconfig(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[LocalAutoconfig]:
    """Point the flow's autodetection at servers on 127.0.0.1 (its documented hook)."""
    async with ConfigHttpServer() as http, DnsTestServer() as dns:
        settings = AutoconfigSettings(
            autoconfig_url=http.base + "/autoconfig/{domain}/mail/config-v1.1.xml",
            well_known_url=http.base + "/wk/{domain}",
            ispdb_url=http.base + "/ispdb/",
            nameservers=(dns.nameserver,),
            deadline=3,
            dns_timeout=0.5,
            guess_imap_ports=(),
            guess_pop3_ports=(),
            guess_smtp_ports=(),
        )
        monkeypatch.setattr(config_flow, "autoconfig_settings", lambda hass: settings)
        yield LocalAutoconfig(http, dns)


@pytest.fixture
def served_account(
    local_autoconfig: LocalAutoconfig, dovecot: DovecotServer, smtp_server: SmtpServer
) -> LocalAutoconfig:
    """Publish an autoconfig file for the test domain pointing at the real servers."""
    local_autoconfig.serve(
        "mailrelay.test",
        config_xml(
            domain="mailrelay.test",
            imap=("127.0.0.1", dovecot.imaps_port, "SSL"),
            pop3=("127.0.0.1", dovecot.pop3s_port, "SSL"),
            smtp=("127.0.0.1", smtp_server.starttls_port, "STARTTLS"),
        ),
    )
    return local_autoconfig


async def _start(hass: HomeAssistant, **context) -> dict:
    return await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER, **context}
    )


async def _user(
    hass: HomeAssistant, email: str, password: str, protocol: str = "imap"
) -> dict:
    result = await _start(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_EMAIL: email, CONF_PASSWORD: password, CONF_PROTOCOL: protocol},
    )


def _manual_input(
    host: str,
    port: int,
    security: str,
    username: str,
    *,
    verify_ssl: bool = True,
    **smtp,
) -> dict:
    data = {
        CONF_INCOMING_HOST: host,
        CONF_INCOMING_PORT: port,
        CONF_INCOMING_SECURITY: security,
        CONF_INCOMING_USERNAME: username,
        SECTION_TLS: {CONF_VERIFY_SSL: verify_ssl},
    }
    data.update(smtp)
    return data


async def test_every_seed_provider_is_proposed_without_network(
    hass: HomeAssistant, local_autoconfig: LocalAutoconfig
) -> None:
    for provider in PROVIDERS:
        for domain in provider.domains:
            protocol = "imap" if provider.imap else "pop3"
            result = await _user(hass, f"Jean@{domain.upper()}", "secret", protocol)
            if provider.imap is None:
                # Lagoon, VINI: only SMTP is known; the rest is typed by hand.
                assert result["step_id"] == "manual"
                schema = result["data_schema"](
                    {
                        CONF_INCOMING_HOST: "x",
                        CONF_INCOMING_PORT: 993,
                        CONF_INCOMING_SECURITY: "ssl",
                        CONF_INCOMING_USERNAME: "u",
                        SECTION_TLS: {},
                    }
                )
                assert schema[CONF_SMTP_HOST] == provider.smtp.host
            else:
                assert result["step_id"] == "confirm", (domain, result)
                placeholders = result["description_placeholders"]
                assert placeholders["source"] == "Mail Relay's provider presets"
                assert provider.imap.host in placeholders["incoming"]
            hass.config_entries.flow.async_abort(result["flow_id"])
    assert local_autoconfig.http.requests == []
    assert local_autoconfig.dns.queries == []


async def test_apple_pop3_has_no_preset_server(
    hass: HomeAssistant, local_autoconfig
) -> None:
    result = await _user(hass, "jean@icloud.com", "secret", "pop3")
    assert result["step_id"] == "manual"
    assert (
        result["data_schema"](
            {
                CONF_INCOMING_HOST: "pop.example",
                CONF_INCOMING_PORT: 995,
                CONF_INCOMING_SECURITY: "ssl",
                CONF_INCOMING_USERNAME: "jean",
                SECTION_TLS: {},
            }
        )[CONF_SMTP_HOST]
        == "smtp.mail.me.com"
    )


@pytest.mark.usefixtures("trust_test_cert")
async def test_detected_account_is_tested_and_created(
    hass: HomeAssistant,
    served_account: LocalAutoconfig,
    mail_user: MailUser,
    dovecot,
    smtp_server,
) -> None:
    result = await _user(hass, f"  {mail_user.address.upper()} ", mail_user.password)
    assert result["step_id"] == "confirm"
    placeholders = result["description_placeholders"]
    assert placeholders["source"] == "the domain's autoconfig file"
    assert f"127.0.0.1:{dovecot.imaps_port}, SSL/TLS" in placeholders["incoming"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"edit": False}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    data = result["data"]
    assert result["title"] == f"{mail_user.address} (IMAP)"
    assert result["result"].unique_id == f"{mail_user.address}:imap"
    assert data[CONF_EMAIL] == mail_user.address
    assert data[CONF_INCOMING_PORT] == dovecot.imaps_port
    assert data[CONF_SMTP_PORT] == smtp_server.starttls_port
    assert data[CONF_SMTP_SECURITY] == "starttls"
    assert data[CONF_SOURCE] == "autoconfig"
    assert data[CONF_PROVIDER] is None
    assert data[CONF_VERIFY_SSL] is True

    # The same mailbox cannot be added twice.
    again = await _user(hass, mail_user.address, mail_user.password)
    assert again["type"] is FlowResultType.ABORT
    assert again["reason"] == "already_configured"


@pytest.mark.usefixtures("trust_test_cert")
async def test_wrong_password_then_right_one(
    hass: HomeAssistant, served_account, mail_user: MailUser
) -> None:
    result = await _user(hass, mail_user.address, "wrong", "pop3")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"edit": False}
    )
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_EMAIL: mail_user.address,
            CONF_PASSWORD: mail_user.password,
            CONF_PROTOCOL: "pop3",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_PROTOCOL] == "pop3"


@pytest.mark.usefixtures("trust_test_cert")
async def test_app_password_hint_for_providers_that_need_one(
    hass: HomeAssistant, local_autoconfig, dovecot: DovecotServer
) -> None:
    result = await _user(hass, "jean@gmail.com", "my usual password")
    assert result["step_id"] == "confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"edit": True}
    )
    assert result["step_id"] == "manual"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        _manual_input(
            "127.0.0.1",
            dovecot.imaps_port,
            "ssl",
            "jean@gmail.com",
            **{CONF_SMTP_HOST: ""},
        ),
    )
    assert result["step_id"] == "user"
    assert result["errors"] == {
        "base": "invalid_auth",
        CONF_PASSWORD: "app_password_required",
    }
    assert result["description_placeholders"]["help_url"].startswith(
        "https://support.google.com/"
    )


async def test_invalid_email(hass: HomeAssistant, local_autoconfig) -> None:
    result = await _user(hass, "not-an-address", "x")
    assert result["errors"] == {CONF_EMAIL: "invalid_email"}


async def test_closed_port_and_nothing_detected(
    hass: HomeAssistant, local_autoconfig, dovecot: DovecotServer
) -> None:
    result = await _user(hass, "jean@nowhere.test", "secret")
    assert result["step_id"] == "manual"
    defaults = result["data_schema"](
        {
            CONF_INCOMING_HOST: "x",
            CONF_INCOMING_PORT: 1,
            CONF_INCOMING_SECURITY: "ssl",
            SECTION_TLS: {},
        }
    )
    assert defaults[CONF_INCOMING_USERNAME] == "jean@nowhere.test"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _manual_input("127.0.0.1", free_port(), "ssl", "jean")
    )
    assert result["step_id"] == "manual"
    assert result["errors"] == {"base": "cannot_connect"}


async def test_self_signed_certificate_offers_to_skip_verification(
    hass: HomeAssistant, served_account, mail_user: MailUser
) -> None:
    result = await _user(hass, mail_user.address, mail_user.password)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"edit": False}
    )
    assert result["step_id"] == "confirm"
    assert result["errors"] == {"base": "tls_error"}
    assert CONF_VERIFY_SSL in result["data_schema"].schema
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"edit": False, CONF_VERIFY_SSL: False}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_VERIFY_SSL] is False


async def test_server_without_starttls_and_clear_text_confirmation(
    hass: HomeAssistant,
    local_autoconfig,
    dovecot_without_tls: DovecotServer,
    smtp_server: SmtpServer,
) -> None:
    user = dovecot_without_tls.add_user()
    smtp_server.add_user(user.address, user.password)
    result = await _user(hass, user.address, user.password)
    assert result["step_id"] == "manual"
    starttls = _manual_input(
        "127.0.0.1", dovecot_without_tls.imap_port, "starttls", user.address
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], starttls)
    assert result["errors"] == {"base": "starttls_unavailable"}

    clear = _manual_input(
        "127.0.0.1",
        dovecot_without_tls.imap_port,
        "none",
        user.address,
        **{
            CONF_SMTP_HOST: "127.0.0.1",
            CONF_SMTP_PORT: smtp_server.plain_port,
            CONF_SMTP_SECURITY: "none",
            CONF_SMTP_USERNAME: user.address,
        },
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], clear)
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "insecure"
    assert result["menu_options"] == ["insecure_accept", "manual"]
    # Going back keeps the user on the manual form, nothing was sent.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "manual"}
    )
    assert result["step_id"] == "manual"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], clear)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "insecure_accept"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_INCOMING_SECURITY] == "none"
    assert result["data"][CONF_SMTP_SECURITY] == "none"
    assert result["data"][CONF_SOURCE] == "manual"


async def test_outlook_signs_in_instead_of_a_password(
    hass: HomeAssistant, local_autoconfig
) -> None:
    # Outlook.com refuses passwords: its servers, then Microsoft's sign-in,
    # which first needs the user's own app (Home Assistant offers to add it).
    result = await _user(hass, "jean@outlook.com", "app-password")
    assert result["step_id"] == "confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {config_flow.CONF_EDIT: False}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "missing_credentials"
    assert local_autoconfig.http.requests == []


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


async def test_silent_server_times_out(
    hass: HomeAssistant,
    local_autoconfig,
    silent_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real timeout is 15 s; the test does not wait that long.
    monkeypatch.setattr(config_flow, "LOGIN_TIMEOUT", 0.5)
    result = await _user(hass, "jean@nowhere.test", "secret")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _manual_input("127.0.0.1", silent_port, "ssl", "jean")
    )
    assert result["errors"] == {"base": "timeout"}


async def test_unexpected_answer_is_unknown(
    hass: HomeAssistant, local_autoconfig, dovecot: DovecotServer
) -> None:
    result = await _user(hass, "jean@nowhere.test", "secret", "pop3")
    # A POP3 client talking to an IMAP port gets an answer it cannot use.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _manual_input("127.0.0.1", dovecot.imap_port, "none", "jean")
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "insecure_accept"}
    )
    assert result["errors"] == {"base": "unknown"}


@pytest.mark.usefixtures("trust_test_cert")
async def test_reauth(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(mail_user)
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: "wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: mail_user.password}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()


@pytest.mark.usefixtures("trust_test_cert")
async def test_reauth_hints_at_app_passwords(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = _receive_only_entry(
        hass, entry_factory, mail_user, {CONF_PROVIDER: "yahoo", CONF_SOURCE: "preset"}
    )
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: "wrong"}
    )
    assert result["errors"] == {
        "base": "invalid_auth",
        CONF_PASSWORD: "app_password_required",
    }
    assert result["description_placeholders"]["provider"] == "Yahoo"


@pytest.mark.usefixtures("trust_test_cert")
async def test_reconfigure(
    hass: HomeAssistant,
    mail_user: MailUser,
    dovecot: DovecotServer,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(mail_user)
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    closed = _manual_input(
        "127.0.0.1", free_port(), "ssl", mail_user.username, **{CONF_SMTP_HOST: ""}
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], closed)
    assert result["step_id"] == "reconfigure"
    assert result["errors"] == {"base": "cannot_connect"}
    clear = _manual_input(
        "127.0.0.1",
        dovecot.imap_port,
        "none",
        mail_user.username,
        **{CONF_SMTP_HOST: ""},
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], clear)
    assert result["menu_options"] == ["insecure_accept", "reconfigure"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "reconfigure"}
    )
    good = _manual_input(
        "127.0.0.1",
        dovecot.imap_port,
        "starttls",
        mail_user.username,
        **{CONF_SMTP_HOST: ""},
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], good)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_INCOMING_SECURITY] == "starttls"
    assert entry.data[CONF_SMTP_HOST] is None
    assert entry.data[CONF_PASSWORD] == mail_user.password
    await hass.async_block_till_done()


async def _set_up(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


async def _logins(
    hass: HomeAssistant, dovecot: DovecotServer, user: MailUser, at_least: int
) -> int:
    """The user's logins so far, once ``at_least`` are logged and no more follow."""
    await wait_for(hass, lambda: len(dovecot.logins(user)) >= at_least)
    # A second reload would log in a moment later: leave it the time to.
    await asyncio.sleep(0.5)
    return len(dovecot.logins(user))


def _receive_only_entry(
    hass: HomeAssistant,
    entry_factory: Callable[..., MockConfigEntry],
    user: MailUser,
    extra: dict[str, Any],
) -> MockConfigEntry:
    """Add an IMAP entry without SMTP whose data also holds ``extra``."""
    entry = entry_factory(user, smtp_security=None)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=entry.title,
        unique_id=entry.unique_id,
        data={**entry.data, **extra},
    )
    entry.add_to_hass(hass)
    return entry


async def _assert_reloaded_once(
    hass: HomeAssistant, dovecot: DovecotServer, user: MailUser, entry: MockConfigEntry
) -> None:
    """One login by the flow (or options) and one by the reloaded account, loaded."""
    await hass.async_block_till_done()
    # The user's first session, then two: a second reload would make it four.
    assert await _logins(hass, dovecot, user, 3) == 3
    assert entry.state is ConfigEntryState.LOADED


@pytest.fixture
async def loaded_entry(
    hass: HomeAssistant,
    mail_user: MailUser,
    dovecot: DovecotServer,
    entry_factory: Callable[..., MockConfigEntry],
    trust_test_cert: Path,
) -> MockConfigEntry:
    """A receive-only IMAP account, set up: one session on Dovecot."""
    entry = entry_factory(mail_user, smtp_security=None)
    await _set_up(hass, entry)
    assert await _logins(hass, dovecot, mail_user, 1) == 1
    # Home Assistant 2025.8+ reloads for the options flow; only older ones
    # need the integration's own listener (and 2026.12 refuses both at once).
    assert bool(entry.update_listeners) is not compat.OPTIONS_FLOW_RELOADS
    return entry


async def test_reconfigure_reloads_once(
    hass: HomeAssistant,
    mail_user: MailUser,
    dovecot: DovecotServer,
    loaded_entry: MockConfigEntry,
) -> None:
    # The server sees the flow's login test, then the reloaded account's
    # session: two new logins, not three (a second reload).
    result = await loaded_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        _manual_input(
            "127.0.0.1",
            dovecot.imap_port,
            "starttls",
            mail_user.username,
            **{CONF_SMTP_HOST: ""},
        ),
    )
    assert result["reason"] == "reconfigure_successful"
    await _assert_reloaded_once(hass, dovecot, mail_user, loaded_entry)
    assert loaded_entry.runtime_data.incoming.port == dovecot.imap_port


async def test_reauth_reloads_once(
    hass: HomeAssistant,
    mail_user: MailUser,
    dovecot: DovecotServer,
    loaded_entry: MockConfigEntry,
) -> None:
    changed = dovecot.set_password(mail_user, "a-new-password")
    await asyncio.sleep(1.1)  # Dovecot checks a passwd-file at most once a second
    result = await loaded_entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: changed.password}
    )
    assert result["reason"] == "reauth_successful"
    # The login test with the new password, then one reloaded session.
    await _assert_reloaded_once(hass, dovecot, mail_user, loaded_entry)
    assert loaded_entry.runtime_data.incoming.password == changed.password


async def test_options_change_reloads_once(
    hass: HomeAssistant,
    mail_user: MailUser,
    dovecot: DovecotServer,
    loaded_entry: MockConfigEntry,
) -> None:
    # Opening the options lists the folders (one login); saving a change
    # reloads the account with it (one more).
    before = loaded_entry.runtime_data.coordinator
    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_FOLDERS: ["INBOX"], CONF_POLL_INTERVAL: 600}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await _assert_reloaded_once(hass, dovecot, mail_user, loaded_entry)
    assert loaded_entry.runtime_data.coordinator is not before
    assert loaded_entry.runtime_data.coordinator.options.imap.poll_interval == 600


def _tls_section(result: dict) -> section:
    """The certificate section of a servers form."""
    fields = {str(key): value for key, value in result["data_schema"].schema.items()}
    assert CONF_VERIFY_SSL not in fields  # only inside the section
    return fields[SECTION_TLS]


async def test_certificate_choice_is_a_collapsed_section(
    hass: HomeAssistant, local_autoconfig
) -> None:
    result = await _user(hass, "a@nowhere.test", "x")
    assert result["step_id"] == "manual"
    tls = _tls_section(result)
    assert tls.options["collapsed"] is True
    assert tls({}) == {CONF_VERIFY_SSL: True}
    closed = _manual_input("127.0.0.1", free_port(), "ssl", "a", verify_ssl=False)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], closed)
    assert result["errors"] == {"base": "cannot_connect"}
    # The choice is kept, and a check turned off is not hidden.
    tls = _tls_section(result)
    assert tls({}) == {CONF_VERIFY_SSL: False}
    assert tls.options["collapsed"] is False


async def test_untrusted_certificate_opens_the_section_on_the_manual_form(
    hass: HomeAssistant,
    local_autoconfig,
    mail_user: MailUser,
    dovecot: DovecotServer,
) -> None:
    # No trust_test_cert: the test server's self-signed certificate is refused.
    result = await _user(hass, mail_user.address, mail_user.password)
    assert result["step_id"] == "manual"
    assert _tls_section(result).options["collapsed"] is True
    servers = _manual_input(
        "127.0.0.1",
        dovecot.imaps_port,
        "ssl",
        mail_user.username,
        **{CONF_SMTP_HOST: ""},
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], servers)
    assert result["step_id"] == "manual"
    assert result["errors"] == {"base": "tls_error"}
    tls = _tls_section(result)
    assert tls.options["collapsed"] is False
    assert tls({}) == {CONF_VERIFY_SSL: True}  # turning it off is the user's call
    servers[SECTION_TLS] = {CONF_VERIFY_SSL: False}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], servers)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_VERIFY_SSL] is False


async def test_reconfigure_keeps_the_certificate_choice(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = _receive_only_entry(
        hass, entry_factory, mail_user, {CONF_VERIFY_SSL: False}
    )
    result = await entry.start_reconfigure_flow(hass)
    tls = _tls_section(result)
    assert tls({}) == {CONF_VERIFY_SSL: False}
    assert tls.options["collapsed"] is False


async def test_receive_only_account_is_described(
    hass: HomeAssistant, local_autoconfig
) -> None:
    local_autoconfig.serve("receive.test", config_xml(domain="receive.test", smtp=None))
    result = await _user(hass, "jean@receive.test", "secret")
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"]["smtp"] == "—"
    assert (
        result["description_placeholders"]["incoming"]
        == "imap.example.org:993, SSL/TLS, jean@receive.test"
    )


def test_autodetection_defaults_are_the_public_ones(hass: HomeAssistant) -> None:
    settings = config_flow.autoconfig_settings(hass)
    assert settings.ispdb_url == "https://autoconfig.thunderbird.net/v1.1/"
    assert settings.deadline == 10
    assert settings.nameservers == ()


async def test_reauth_of_an_outlook_account(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="jean@outlook.com",
        unique_id="jean@outlook.com:imap",
        data={
            CONF_EMAIL: "jean@outlook.com",
            CONF_PASSWORD: "old",
            CONF_PROTOCOL: "imap",
            CONF_INCOMING_HOST: "outlook.office365.com",
            CONF_INCOMING_PORT: 993,
            CONF_INCOMING_SECURITY: "ssl",
            CONF_INCOMING_USERNAME: "jean@outlook.com",
            CONF_PROVIDER: "outlook",
            CONF_SOURCE: "preset",
        },
    )
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: "app-password"}
    )
    assert result["errors"] == {"base": "oauth_required"}


@pytest.mark.usefixtures("trust_test_cert")
async def test_imap_options(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(mail_user)
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["step_id"] == "imap"
    schema = result["data_schema"].schema
    folder_selector = schema[CONF_FOLDERS]
    assert folder_selector.config["multiple"] is True
    assert {"value": "INBOX", "label": "INBOX"} in folder_selector.config["options"]
    base = {CONF_FOLDERS: ["INBOX"], CONF_POLL_INTERVAL: 10}
    with pytest.raises(InvalidData, match="poll_interval"):
        await hass.config_entries.options.async_configure(result["flow_id"], base)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {CONF_FOLDERS: ["INBOX"], CONF_RECIPIENTS: ["not an address"]},
    )
    assert result["errors"] == {CONF_RECIPIENTS: "invalid_recipient"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_FOLDERS: ["INBOX"],
            CONF_POLL_INTERVAL: 60,
            CONF_RECIPIENTS: ["a@example.org"],
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_POLL_INTERVAL] == 60
    assert entry.options[CONF_RECIPIENTS] == ["a@example.org"]
    assert entry.options["push"] is True


async def test_imap_options_when_server_is_down(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    # Without the trusted certificate the folder list cannot be read: the
    # current folder (of an entry made before several folders) is still offered.
    entry = entry_factory(mail_user, options={CONF_FOLDER: "Archive"})
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    selector = result["data_schema"].schema[CONF_FOLDERS]
    assert selector.config["options"] == [{"value": "Archive", "label": "Archive"}]


async def test_pop3_options(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(mail_user, protocol="pop3")
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = result["data_schema"].schema
    assert CONF_FOLDERS not in schema
    assert CONF_RETENTION in schema
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_RETENTION: "days",
            "retention_days": 7,
            CONF_RECIPIENTS: ["a@example.org", " b@example.org", ""],
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_RETENTION] == "days"
    assert entry.options["retention_days"] == 7
    assert entry.options[CONF_RECIPIENTS] == ["a@example.org", "b@example.org"]


def _defaults(result: dict) -> dict:
    """What a servers form shows before the user types anything."""
    return result["data_schema"](
        {CONF_INCOMING_HOST: "x", CONF_INCOMING_USERNAME: "u", SECTION_TLS: {}}
    )


@pytest.mark.parametrize(
    ("protocol", "port"), [("imap", 993), ("pop3", 995)], ids=["imap", "pop3"]
)
async def test_manual_form_prefills_the_usual_ports(
    hass: HomeAssistant, local_autoconfig, protocol: str, port: int
) -> None:
    result = await _user(hass, "jean@nowhere.test", "secret", protocol)
    assert result["step_id"] == "manual"
    shown = _defaults(result)
    assert (shown[CONF_INCOMING_SECURITY], shown[CONF_INCOMING_PORT]) == ("ssl", port)
    assert (shown[CONF_SMTP_SECURITY], shown[CONF_SMTP_PORT]) == ("starttls", 587)


@pytest.mark.parametrize(
    ("protocol", "security", "port", "smtp_security", "smtp_port"),
    [("imap", "starttls", 143, "ssl", 465), ("pop3", "none", 110, "none", 587)],
    ids=["imap", "pop3"],
)
async def test_changing_only_the_security_takes_its_usual_port(
    hass: HomeAssistant,
    local_autoconfig,
    protocol: str,
    security: str,
    port: int,
    smtp_security: str,
    smtp_port: int,
) -> None:
    result = await _user(hass, "jean@nowhere.test", "secret", protocol)
    shown = _defaults(result)
    # The user picks another security and leaves the prefilled ports alone.
    submitted = _manual_input(
        "127.0.0.1",
        shown[CONF_INCOMING_PORT],
        security,
        "jean",
        **{
            CONF_SMTP_HOST: "127.0.0.1",
            CONF_SMTP_PORT: shown[CONF_SMTP_PORT],
            CONF_SMTP_SECURITY: smtp_security,
        },
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], submitted
    )
    if result["type"] is FlowResultType.MENU:  # clear text asks first
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "manual"}
        )
    assert result["step_id"] == "manual"
    shown = _defaults(result)
    assert (shown[CONF_INCOMING_SECURITY], shown[CONF_INCOMING_PORT]) == (
        security,
        port,
    )
    assert (shown[CONF_SMTP_SECURITY], shown[CONF_SMTP_PORT]) == (
        smtp_security,
        smtp_port,
    )


async def test_a_typed_port_is_kept_when_the_security_changes(
    hass: HomeAssistant, local_autoconfig
) -> None:
    result = await _user(hass, "jean@nowhere.test", "secret")
    closed = free_port()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _manual_input("127.0.0.1", closed, "ssl", "jean")
    )
    assert result["errors"] == {"base": "cannot_connect"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _manual_input("127.0.0.1", closed, "starttls", "jean")
    )
    assert _defaults(result)[CONF_INCOMING_PORT] == closed


async def _abort_text(hass: HomeAssistant, reason: str) -> str:
    strings = await async_get_translations(hass, "en", "config", {DOMAIN})
    return strings[f"component.{DOMAIN}.config.abort.{reason}"]


@pytest.mark.usefixtures("trust_test_cert")
async def test_a_flow_left_open_does_not_block_the_address(
    hass: HomeAssistant, served_account, mail_user: MailUser
) -> None:
    # The first try is abandoned on the confirm step (the tab was closed).
    left_open = await _user(hass, mail_user.address, mail_user.password)
    assert left_open["step_id"] == "confirm"
    second = await _user(hass, mail_user.address, mail_user.password)
    assert second["step_id"] == "confirm"
    second = await hass.config_entries.flow.async_configure(
        second["flow_id"], {"edit": False}
    )
    assert second["type"] is FlowResultType.CREATE_ENTRY
    # Back in the old tab: a translated message, no second entry.
    result = await hass.config_entries.flow.async_configure(
        left_open["flow_id"], {"edit": False}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert await _abort_text(hass, result["reason"]) == (
        "This mailbox is already configured."
    )
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1
    # A new try for the configured address stops at once, translated too.
    again = await _user(hass, mail_user.address, mail_user.password)
    assert again["type"] is FlowResultType.ABORT
    assert again["reason"] == "already_configured"
    await hass.async_block_till_done()


@pytest.mark.usefixtures("trust_test_cert")
async def test_imap_and_pop3_accounts_of_one_address_are_told_apart(
    hass: HomeAssistant, served_account, mail_user: MailUser
) -> None:
    titles = []
    for protocol in ("imap", "pop3"):
        result = await _user(hass, mail_user.address, mail_user.password, protocol)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"edit": False}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        titles.append(result["title"])
    await hass.async_block_till_done()
    assert titles == [f"{mail_user.address} (IMAP)", f"{mail_user.address} (POP3)"]
    devices = dr.async_get(hass)
    entries = hass.config_entries.async_entries(DOMAIN)
    names = sorted(
        device.name
        for entry in entries
        for device in dr.async_entries_for_config_entry(devices, entry.entry_id)
    )
    assert names == titles
    # New accounts' entity ids carry the protocol, so they differ too.
    slug = mail_user.address.replace("@", "_").replace(".", "_").replace("-", "_")
    ids = {
        entity.entity_id
        for entry in entries
        for entity in er.async_entries_for_config_entry(
            er.async_get(hass), entry.entry_id
        )
        if entity.unique_id.endswith("_last_message")
    }
    assert ids == {
        f"sensor.{slug}_imap_last_message",
        f"sensor.{slug}_pop3_last_message",
    }
    for entry in entries:
        assert await hass.config_entries.async_unload(entry.entry_id)


async def _option_texts(hass: HomeAssistant, step: str) -> dict[str, str]:
    strings = await async_get_translations(hass, "en", "options", {DOMAIN})
    prefix = f"component.{DOMAIN}.options.step.{step}.data_description."
    return {k[len(prefix) :]: v for k, v in strings.items() if k.startswith(prefix)}


async def test_pop3_options_speak_of_pop3_and_receive_only_ones_of_no_sending(
    hass: HomeAssistant,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    pop3 = entry_factory(mail_user, protocol="pop3", smtp_security=None)
    imap = entry_factory(mail_user, smtp_security=None)
    shown = {}
    for entry in (pop3, imap):
        entry.add_to_hass(hass)
        result = await hass.config_entries.options.async_init(entry.entry_id)
        shown[result["step_id"]] = {str(key) for key in result["data_schema"].schema}
        hass.config_entries.options.async_abort(result["flow_id"])
    sending = {CONF_RECIPIENTS, "sender_name", "save_sent"}
    assert shown["pop3"] & sending == set()
    assert shown["imap"] & sending == set()
    assert {CONF_POLL_INTERVAL, CONF_RETENTION} <= shown["pop3"]
    texts = await _option_texts(hass, "pop3")
    # A section (auto-save) is described under "sections", its fields there.
    assert set(texts) >= shown["pop3"] - {"attachments"}
    assert not [t for t in texts.values() if "push" in t.lower() or "IDLE" in t]
    assert "push" in (await _option_texts(hass, "imap"))["poll_interval"]


async def test_user_step_explains_imap_and_pop3_once(hass: HomeAssistant) -> None:
    strings = await async_get_translations(hass, "en", "config", {DOMAIN})
    user = f"component.{DOMAIN}.config.step.user."
    explanation = strings[user + "data_description.protocol"]
    assert "mail stays on the server" in explanation
    labels = await async_get_translations(hass, "en", "selector", {DOMAIN})
    options = f"component.{DOMAIN}.selector.protocol.options."
    assert [labels[options + p] for p in ("imap", "pop3")] == [
        "IMAP (recommended)",
        "POP3",
    ]
    description = strings[user + "description"]
    assert "IMAP" not in description
    assert "POP3" not in description


async def test_a_server_with_a_broken_search_is_named_before_the_entry(
    hass: HomeAssistant, local_autoconfig
) -> None:
    from tests.mail.test_imap_mailutils import GREETING, MAILUTILS
    from tests.mailserver.scripted import ScriptedImapServer

    script = dict(MAILUTILS, LIST='* LIST (\\HasNoChildren) "/" INBOX')
    async with ScriptedImapServer(script, GREETING) as server:
        result = await _user(hass, "ann@mailrelay.test", "secret")
        assert result["step_id"] == "manual"
        manual = _manual_input("127.0.0.1", server.port, "none", "ann@mailrelay.test")
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], manual
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "insecure_accept"}
        )
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "server_quirk"
        assert result["description_placeholders"]["server"] == "127.0.0.1"
        translations = await async_get_translations(hass, "en", "config", [DOMAIN])
        description = translations[
            f"component.{DOMAIN}.config.step.server_quirk.description"
        ]
        assert "UID SEARCH" in description
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_INCOMING_PORT] == server.port
