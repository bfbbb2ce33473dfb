"""What a user does at the local authorization server, done with a real HTTP client.

The sign-in page is the server's real HTML form; its redirect goes to Home
Assistant's real callback view (``/auth/external/callback``), which resumes the
flow; Home Assistant then makes its own token request to the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest
from homeassistant.core import HomeAssistant

from custom_components.mail_relay import config_flow
from custom_components.mail_relay.mail.autoconfig import AutoconfigSettings
from tests.mailserver import DovecotServer, OAuthServer, SmtpServer
from tests.mailserver.dns import DnsTestServer
from tests.mailserver.http import ConfigHttpServer, config_xml

CALLBACK = "https://example.com/auth/external/callback"
CLIENT_ID = "ha-mail-relay"
CLIENT_SECRET = "ha-client-secret"  # the test app's secret
TEST_DOMAIN = "mailrelay.test"


class _Form(HTMLParser):
    """The first form of a page: its action and its fields' values."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
        elif tag == "input" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")


def declared_provider(server: OAuthServer) -> dict[str, Any]:
    """configuration.yaml's provider for the test domain, by its issuer."""
    return {
        "domains": [TEST_DOMAIN],
        "name": "Test sign-in",
        "issuer": server.base,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["mail", "offline_access"],
    }


def register_app(server: OAuthServer) -> None:
    """The app the administrator registered for Home Assistant."""
    server.register_client(CLIENT_ID, CLIENT_SECRET, redirect_uris=(CALLBACK,))


async def sign_in_page(
    url: str, address: str, password: str, *, allow: bool = True
) -> str:
    """Fill in and send the sign-in page; return the redirect it answers with."""
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as page:
            assert page.status == 200, await page.text()
            form = _Form()
            form.feed(await page.text())
        assert form.action is not None
        data = {
            **form.fields,
            "username": address,
            "password": password,
            "action": "allow" if allow else "deny",
        }
        async with session.post(
            urljoin(url, form.action), data=data, allow_redirects=False
        ) as answer:
            assert answer.status in (302, 303), await answer.text()
            return answer.headers["Location"]


async def follow_sign_in(
    hass: HomeAssistant,
    client_factory: Callable[[], Awaitable[Any]],
    result: dict[str, Any],
    address: str,
    password: str,
) -> dict[str, Any]:
    """Sign in from the flow's external step; return the flow's next result."""
    assert result["type"] == "external", result
    location = await sign_in_page(result["url"], address, password)
    assert location.startswith(CALLBACK), location
    client = await client_factory()
    answer = await client.get(f"/auth/external/callback?{urlsplit(location).query}")
    assert answer.status == 200
    return await hass.config_entries.flow.async_configure(result["flow_id"])


@asynccontextmanager
async def served_servers(
    monkeypatch: pytest.MonkeyPatch,
    dovecot: DovecotServer | None = None,
    smtp: SmtpServer | None = None,
    *,
    mx: dict[str, str] | None = None,
) -> AsyncIterator[None]:
    """Autodetection finds the test domain's servers on 127.0.0.1.

    ``mx``: domain -> MX host answered by the local DNS server.
    """
    records = {(domain, "MX"): [(10, host)] for domain, host in (mx or {}).items()}
    async with ConfigHttpServer() as http, DnsTestServer(records=records) as dns:
        if dovecot is not None and smtp is not None:
            xml = config_xml(
                domain=TEST_DOMAIN,
                imap=("127.0.0.1", dovecot.imaps_port, "SSL"),
                pop3=("127.0.0.1", dovecot.pop3s_port, "SSL"),
                smtp=("127.0.0.1", smtp.starttls_port, "STARTTLS"),
            )
            http.files[f"/autoconfig/{TEST_DOMAIN}/mail/config-v1.1.xml"] = xml
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
        yield


async def approve_when_shown(
    server: OAuthServer, code: str, address: str, *, approve: bool = True
) -> None:
    """Approve (or deny) a device code, as the user does on another device."""
    await asyncio.to_thread(server.approve_device, code, address, approve=approve)
