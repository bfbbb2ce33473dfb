"""The setup wizard in a real browser against a real Home Assistant.

A person opens Settings → Devices & services → Add integration, searches for
Mail Relay, types an address and a password, sees the settings found in the
ISP database, confirms, and lands on the new device; then a mail arrives and
the device page shows it. Once in English, once in French, plus the two errors
people meet most: a wrong password and a self-signed certificate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.mailserver import MailUser
from tests.mailserver.dovecot import make_message

from .conftest import SELF_SIGNED_DOMAIN, E2eEnvironment
from .homeassistant import OWNER_PASSWORD, OWNER_USERNAME

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

TIMEOUT_MS = 20_000


@dataclass(frozen=True)
class Ui:
    """The words a person reads, in one language.

    Home Assistant's own words come from its frontend translations; Mail
    Relay's from translations/<lang>.json.
    """

    locale: str
    language: str
    username: str
    password: str
    log_in: str
    settings: str
    devices_services: str
    add_integration: str
    search_brand: str
    submit: str
    # The flow's last step: "Success" with a Finish button until 2026.9,
    # "Name and assign" with the device's name in a text box after.
    finish: re.Pattern[str]
    success: re.Pattern[str]
    device_name: str
    # Mail Relay
    user_title: str
    email: str
    mail_password: str
    found_title: str
    found_in_ispdb: str
    unread: str
    last_message: str
    event: str
    received: str
    send_mail: str
    connection: str
    connected: str
    wrong_password: str
    untrusted_certificate: str
    verify_certificate: str
    # The mailbox of this run and the mail that arrives in it.
    mailbox: str
    subject: str


EN = Ui(
    locale="en-US",
    language="en",
    username="Username",
    password="Password",
    log_in="Log in",
    settings="Settings",
    devices_services="Devices & services",
    add_integration="Add integration",
    search_brand="Search for a brand name",
    submit="Submit",
    finish=re.compile(r"^(Finish|Skip and finish)$"),
    success=re.compile(r"Created configuration for|Name and assign"),
    device_name="Device name",
    user_title="Add a mail account",
    email="Email address",
    mail_password="Password",
    found_title="Settings found",
    found_in_ispdb="found in: Mozilla's ISP database",
    unread="Unread messages",
    last_message="Last message",
    event="Mail",
    received="Received",
    send_mail="Send mail",
    connection="Connection",
    connected="Connected",
    wrong_password="The server refused this address or password.",
    untrusted_certificate="The server's certificate is not trusted",
    verify_certificate="Verify the server certificate",
    mailbox="camille",
    subject="Your parcel is at the door",
)

FR = Ui(
    locale="fr-FR",
    language="fr",
    username="Nom d'utilisateur",
    password="Mot de passe",
    log_in="Se connecter",
    settings="Paramètres",
    devices_services="Appareils et services",
    add_integration="Ajouter une intégration",
    search_brand="Rechercher un nom de marque",
    submit="Valider",
    finish=re.compile(r"^(Terminer|Ignorer et terminer)$"),
    success=re.compile(r"Configuration créée pour|Nommer et attribuer"),
    device_name="Nom de l'appareil",
    user_title="Ajouter un compte de messagerie",
    email="Adresse électronique",
    mail_password="Mot de passe",
    found_title="Paramètres trouvés",
    found_in_ispdb="trouvés dans : la base de données des F.A.I. de Mozilla",
    unread="Messages non lus",
    last_message="Dernier message",
    event="Courrier",
    received="Reçu",
    send_mail="Envoyer un e-mail",
    connection="Connexion",
    connected="Connecté",
    wrong_password="Le serveur a refusé cette adresse ou ce mot de passe.",
    untrusted_certificate="Le certificat du serveur n'est pas reconnu",
    verify_certificate="Vérifier le certificat du serveur",
    mailbox="amelie",
    subject="Votre colis est arrivé",
)


class Session:
    """One person at one browser, logged in to Home Assistant."""

    def __init__(self, page: Page, env: E2eEnvironment, ui: Ui, name: str) -> None:
        """Keep the page and where its screenshots go."""
        self.page = page
        self.env = env
        self.ui = ui
        self.name = name

    def shot(self, step: str, locator: Locator | None = None) -> Path:
        """Save a screenshot of the page (and of ``locator`` alone, if given)."""
        path = self.env.artifacts / f"{self.name}-{step}.png"
        self.page.screenshot(path=path)
        if locator is not None:
            locator.screenshot(path=path.with_name(f"{path.stem}-dialog.png"))
        return path

    def log_in(self) -> None:
        """Sign in on Home Assistant's login page."""
        page, ui = self.page, self.ui
        page.goto(self.env.hass.url)
        page.get_by_role("textbox", name=ui.username).fill(OWNER_USERNAME)
        page.get_by_role("textbox", name=ui.password).fill(OWNER_PASSWORD)
        page.get_by_role("button", name=ui.log_in).click()
        # The default dashboard: /lovelace/0 until 2026.9, /home/overview after.
        page.wait_for_url(re.compile(r"/(lovelace|home)/"))

    def use_server_language(self) -> None:
        """Set Home Assistant's own language (Settings → System → General)."""
        self.page.evaluate(
            """async (language) => {
                const hass = document.querySelector("home-assistant").hass;
                await hass.callWS({type: "config/core/update", language});
            }""",
            self.ui.language,
        )

    def open_add_integration(self) -> None:
        """Settings → Devices & services → Add integration → Mail Relay."""
        self.search_integration("Mail Relay").click()
        self.expect_text(self.ui.user_title)

    def search_integration(self, term: str) -> Locator:
        """Type ``term`` in Add integration's search; return Mail Relay's row."""
        page, ui = self.page, self.ui
        if page.locator("dialog-add-integration").count():
            self.search_box().fill(term)
            return page.locator("ha-integration-list-item", has_text="Mail Relay")
        # The sidebar's entries are options until 2026.9, links after.
        page.get_by_role("option", name=ui.settings).or_(
            page.get_by_role("link", name=re.compile(re.escape(ui.settings)))
        ).first.click()
        page.wait_for_url("**/config/**")
        page.get_by_text(ui.devices_services, exact=True).click()
        page.wait_for_url("**/config/integrations/**")
        page.get_by_role("button", name=ui.add_integration).click()
        self.search_box().fill(term)
        return page.locator("ha-integration-list-item", has_text="Mail Relay")

    def search_box(self) -> Locator:
        """Return Add integration's search field."""
        page, ui = self.page, self.ui
        return (
            page.get_by_role("textbox", name=ui.search_brand)
            .or_(page.get_by_placeholder(ui.search_brand))
            .first
        )

    def fill_user_step(self, email: str, password: str) -> None:
        """Type the address and the password; IMAP stays chosen."""
        page, ui = self.page, self.ui
        page.get_by_role("textbox", name=ui.email).fill(email)
        page.get_by_role("textbox", name=ui.mail_password).fill(password)

    def submit(self) -> None:
        """Press the dialog's submit button."""
        self.dialog().get_by_role("button", name=self.ui.submit).click()

    def dialog(self) -> Locator:
        """Return the flow dialog."""
        return self.page.locator("dialog-data-entry-flow")

    def dialog_surface(self) -> Locator:
        """Return the visible card of the flow dialog (for cropped screenshots)."""
        # Material's surface until 2026.9, Web Awesome's dialog part after.
        return (
            self.dialog().locator(".mdc-dialog__surface, wa-dialog [part=dialog]").first
        )

    def expect_text(self, text: str | re.Pattern[str]) -> Locator:
        """Wait until ``text`` is visible and return it."""
        from playwright.sync_api import expect

        locator = self.page.get_by_text(text).first
        expect(locator).to_be_visible()
        return locator


@pytest.fixture
def page_factory(
    browser: Browser, e2e: E2eEnvironment, request: pytest.FixtureRequest
) -> Iterator[object]:
    """Open browser contexts (one per language) and close them after the test.

    When the test failed, the page it stopped on is saved beside the other
    screenshots.
    """
    contexts = []

    def open_page(ui: Ui) -> Page:
        context = browser.new_context(
            locale=ui.locale,
            timezone_id="Europe/Paris",
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    report = getattr(request.node, "rep_call", None)
    for number, context in enumerate(contexts):
        if report is not None and report.failed:
            for page in context.pages:
                name = f"FAILED-{request.node.name}-{number}.png"
                page.screenshot(path=e2e.artifacts / name)
        context.close()


def _mailbox(env: E2eEnvironment, local_part: str | None = None) -> MailUser:
    user = env.dovecot.add_user(local_part)
    env.smtp.add_user(user.address, user.password)
    return user


def _add_account_and_watch_mail(
    env: E2eEnvironment, session: Session, user: MailUser
) -> None:
    from playwright.sync_api import expect

    ui, page = session.ui, session.page
    session.log_in()
    session.use_server_language()
    session.open_add_integration()
    session.fill_user_step(user.address, user.password)
    session.shot("1-address-and-password", session.dialog_surface())
    session.submit()

    # The settings found in the organisation's ISPDB, before anything is saved.
    session.expect_text(ui.found_title)
    session.expect_text(ui.found_in_ispdb)
    session.expect_text(f"127.0.0.1:{env.dovecot.imaps_port}, SSL/TLS")
    session.expect_text(f"127.0.0.1:{env.smtp.starttls_port}, STARTTLS")
    session.shot("2-settings-found", session.dialog_surface())
    assert all(user.address not in e["title"] for e in env.hass.config_entries())
    session.submit()

    # Login tested, account created, its device offered an area.
    session.expect_text(ui.success)
    device_name = session.dialog().get_by_role("textbox", name=ui.device_name)
    if device_name.count():
        expect(device_name).to_have_value(f"{user.address} (IMAP)")
    else:
        session.expect_text(user.address)
    session.shot("3-created", session.dialog_surface())
    session.dialog().get_by_role("button", name=ui.finish).click()

    # Until 2026.9 the integration page highlights the new account and its
    # device link leads on; after, Finish opens the device page itself.
    page.wait_for_url(
        re.compile(r"/config/(integrations/integration/mail_relay|devices/device/)")
    )
    if "/config/integrations/" in page.url:
        row = page.locator("ha-md-list-item").filter(has_text=user.address)
        row.locator('a[href^="/config/devices/device/"]').click()
        page.wait_for_url("**/config/devices/device/**")
    expect(page.get_by_text(user.address).first).to_be_visible()

    # Its entities, named in the user's language, with their first states.
    unread = page.locator("hui-sensor-entity-row").filter(has_text=ui.unread)
    last = page.locator("hui-sensor-entity-row").filter(has_text=ui.last_message)
    event = page.locator("hui-event-entity-row").filter(has_text=ui.event)
    expect(unread).to_contain_text(re.compile(r"\b0\b"))
    expect(event).not_to_contain_text(ui.received)
    expect(page.get_by_text(ui.send_mail, exact=True)).to_be_visible()
    connection = page.locator("hui-simple-entity-row, hui-toggle-entity-row")
    expect(connection.filter(has_text=ui.connection)).to_contain_text(ui.connected)
    session.shot("4-device")

    # A mail arrives: the device page follows without a reload.
    env.dovecot.deliver(user, make_message(ui.subject, to=user.address))
    expect(last).to_contain_text(ui.subject)
    expect(unread).to_contain_text(re.compile(r"\b1\b"))
    expect(event).to_contain_text(ui.received)
    session.shot("5-mail-arrived")

    title = f"{user.address} (IMAP)"
    entry = next(e for e in env.hass.config_entries() if e["title"] == title)
    assert entry["state"] == "loaded"


def test_add_an_account_in_english_and_see_mail_arrive(
    e2e: E2eEnvironment, page_factory
) -> None:
    session = Session(page_factory(EN), e2e, EN, "en")
    _add_account_and_watch_mail(e2e, session, _mailbox(e2e, EN.mailbox))


def test_add_an_account_in_french_and_see_mail_arrive(
    e2e: E2eEnvironment, page_factory
) -> None:
    session = Session(page_factory(FR), e2e, FR, "fr")
    _add_account_and_watch_mail(e2e, session, _mailbox(e2e, FR.mailbox))


def test_a_wrong_password_is_shown_on_the_first_step(
    e2e: E2eEnvironment, page_factory
) -> None:
    session = Session(page_factory(EN), e2e, EN, "en-error")
    user = _mailbox(e2e)
    session.log_in()
    session.use_server_language()
    session.open_add_integration()
    session.fill_user_step(user.address, "not-the-password")
    session.submit()
    session.expect_text(EN.found_title)
    session.submit()

    # Back on the first step, the address kept, the refusal said plainly.
    session.expect_text(EN.wrong_password)
    session.expect_text(EN.user_title)
    email = session.page.get_by_role("textbox", name=EN.email)
    assert email.input_value() == user.address
    session.shot("wrong-password", session.dialog_surface())
    assert all(user.address not in e["title"] for e in e2e.hass.config_entries())


def test_a_self_signed_certificate_is_refused_with_a_way_out(
    e2e: E2eEnvironment, page_factory
) -> None:
    from playwright.sync_api import expect

    session = Session(page_factory(EN), e2e, EN, "en-error")
    address = f"ana@{SELF_SIGNED_DOMAIN}"
    session.log_in()
    session.use_server_language()
    session.open_add_integration()
    session.fill_user_step(address, "whatever")
    session.submit()
    session.expect_text(EN.found_title)
    session.expect_text(f"127.0.0.1:{e2e.untrusted.imaps_port}, SSL/TLS")
    session.submit()

    # Refused before any password was sent, with the advanced way out offered.
    session.expect_text(EN.untrusted_certificate)
    verify = session.page.get_by_role("checkbox", name=EN.verify_certificate)
    expect(verify).to_be_checked()
    session.shot("self-signed-certificate", session.dialog_surface())
    assert all(address not in e["title"] for e in e2e.hass.config_entries())


def test_searching_a_protocol_finds_mail_relay(
    e2e: E2eEnvironment, page_factory
) -> None:
    """Add integration finds Mail Relay by the protocols it speaks, not only by "mail".

    The dialog searches only an integration's name and domain, and its fuzzy
    search gives up on words further than about 20 characters into the name:
    "Mail Relay (IMAP, SMTP, POP3)" is found by imap and smtp, not by pop3.
    """
    from playwright.sync_api import expect

    session = Session(page_factory(EN), e2e, EN, "en")
    session.log_in()
    session.use_server_language()
    for term in ("imap", "smtp", "mail", "relay"):
        expect(session.search_integration(term), term).to_be_visible()
