"""Signing in instead of typing a password, in a real browser and Home Assistant.

The organisation's sign-in server (the local authorization server, declared in
configuration.yaml as a self-hosted Keycloak would be) opens in a popup, as
Microsoft's or Google's page does; the person signs in there, the popup
closes, the account is created and a mail arrives on its device page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import pytest_socket

from tests.ha.oauth_helpers import CLIENT_ID, CLIENT_SECRET
from tests.mailserver import (
    DovecotServer,
    MailUser,
    OAuthServer,
    SmtpServer,
    TestCertificate,
)
from tests.mailserver.dovecot import make_message
from tests.mailserver.http import config_xml

from .conftest import MAIL_DOMAIN, E2eEnvironment, chromium_or_fail
from .homeassistant import HomeAssistantProcess, StaticIspdb
from .test_setup_wizard import EN, Session, page_factory  # noqa: F401 (a fixture)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def e2e(
    tmp_path_factory: pytest.TempPathFactory,
    mail_cert: TestCertificate,
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
    oauth_smtp: SmtpServer,
    artifacts,
) -> Iterator[E2eEnvironment]:
    """Home Assistant whose configuration.yaml declares the sign-in server."""
    chromium_or_fail()
    pytest_socket.enable_socket()
    root = tmp_path_factory.mktemp("e2e-oauth")
    ispdb = StaticIspdb(root / "ispdb")
    declared = (
        "  oauth_providers:\n"
        f"    - domains: [{MAIL_DOMAIN}]\n"
        "      name: Example sign-in\n"
        f"      issuer: {oauth_server.base}\n"
        f"      client_id: {CLIENT_ID}\n"
        f"      client_secret: {CLIENT_SECRET}\n"
        "      scopes: [mail, offline_access]\n"
    )
    hass = HomeAssistantProcess(
        root / "config", ispdb.url, mail_cert.cert, mail_relay_yaml=declared
    )
    # Without My Home Assistant, the sign-in returns to this instance itself.
    oauth_server.register_client(
        CLIENT_ID,
        CLIENT_SECRET,
        redirect_uris=(f"{hass.url}/auth/external/callback",),
    )
    ispdb.publish(
        MAIL_DOMAIN,
        config_xml(
            domain=MAIL_DOMAIN,
            name="Mail Relay test mail",
            imap=("127.0.0.1", oauth_dovecot.imaps_port, "SSL"),
            smtp=("127.0.0.1", oauth_smtp.starttls_port, "STARTTLS"),
        ),
    )
    try:
        ispdb.start()
        hass.start()
        hass.onboard()
        yield E2eEnvironment(
            hass, ispdb, oauth_dovecot, oauth_smtp, oauth_dovecot, artifacts
        )
    finally:
        hass.stop()
        ispdb.stop()


def _sign_in_in_popup(popup: Page, user: MailUser, session: Session) -> None:
    popup.get_by_label("Email address").fill(user.address)
    popup.get_by_label("Password").fill(user.password)
    popup.screenshot(path=session.env.artifacts / "oauth-2-sign-in-page.png")
    # Home Assistant's callback closes the popup (listened for before the
    # click: it may close at once).
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Sign in and allow").click()


def test_sign_in_with_the_organisation_and_see_mail_arrive(
    e2e: E2eEnvironment,
    oauth_server: OAuthServer,
    page_factory,  # noqa: F811 (the fixture imported above)
) -> None:
    from playwright.sync_api import expect

    user = e2e.dovecot.add_user("dominique")
    oauth_server.add_user(user.address, user.password)
    session = Session(page_factory(EN), e2e, EN, "oauth")
    page = session.page
    session.log_in()
    session.use_server_language()
    session.open_add_integration()
    # The address only: no password, so Mail Relay offers to sign in.
    page.get_by_role("textbox", name=EN.email).fill(user.address)
    session.submit()
    session.expect_text(EN.found_title)
    session.submit()

    session.expect_text("Sign in to Example sign-in")
    session.shot("1-how-to-sign-in", session.dialog_surface())
    with page.expect_popup() as opened:
        session.submit()
    _sign_in_in_popup(opened.value, user, session)

    # The login with the token was tested; the account is created.
    session.expect_text(EN.success)
    session.shot("3-created", session.dialog_surface())
    session.dialog().get_by_role("button", name=EN.finish).click()
    page.wait_for_url(
        re.compile(r"/config/(integrations/integration/mail_relay|devices/device/)")
    )
    if "/config/integrations/" in page.url:
        row = page.locator("ha-md-list-item").filter(has_text=user.address)
        row.locator('a[href^="/config/devices/device/"]').click()
        page.wait_for_url("**/config/devices/device/**")

    last = page.locator("hui-sensor-entity-row").filter(has_text=EN.last_message)
    connection = page.locator("hui-simple-entity-row, hui-toggle-entity-row")
    expect(connection.filter(has_text=EN.connection)).to_contain_text(EN.connected)
    e2e.dovecot.deliver(user, make_message("Signed in, not typed", to=user.address))
    expect(last).to_contain_text("Signed in, not typed")
    session.shot("4-mail-arrived")

    entry = next(
        e for e in e2e.hass.config_entries() if e["title"] == f"{user.address} (IMAP)"
    )
    assert entry["state"] == "loaded"
    assert e2e.hass.errors_in_log() == []
