"""A newcomer's first hour: an account from its address alone, then an automation.

The person adds the mailbox with nothing but its address and password (the
servers come from the ISP database, as the demo of ``scripts/develop`` serves
them), then builds an automation in Home Assistant's automation editor (YAML
mode: the visual editor's widgets differ too much between frontends), saves it
and sees it run when a mail arrives. The second test picks the "mail received"
device trigger and its subject condition in the visual editor (the one place
where the point is what the editor offers), then writes the action in YAML.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.mailserver.dovecot import make_message

from .conftest import E2eEnvironment
from .test_setup_wizard import EN, TIMEOUT_MS, Session, Ui

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SUBJECT = "Your first automated mail"
ALIAS = "Tell me about new mail"


def automation_yaml(address: str) -> str:
    """Return the automation a newcomer writes: a notification per new mail."""
    return (
        f"alias: {ALIAS}\n"
        "description: A persistent notification for each mail to this account\n"
        "triggers:\n"
        "  - trigger: event\n"
        "    event_type: mail_relay_new_mail\n"
        "    event_data:\n"
        f"      account: {address}\n"
        "actions:\n"
        "  - action: persistent_notification.create\n"
        "    data:\n"
        "      title: New mail\n"
        '      message: "{{ trigger.event.data.subject }}"\n'
        "mode: queued\n"
    )


@pytest.fixture
def page(
    browser: Browser, e2e: E2eEnvironment, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """Open one English browser page; save it when the test failed."""
    context = browser.new_context(
        locale=EN.locale,
        timezone_id="Europe/Paris",
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=e2e.artifacts / f"FAILED-{request.node.name}.png")
    context.close()


class Newcomer(Session):
    """The same person as the setup wizard's, now also writing automations."""

    def __init__(self, page: Page, env: E2eEnvironment, ui: Ui) -> None:
        """Screenshots are named first-hour-*."""
        super().__init__(page, env, ui, "first-hour")

    def add_account(self, address: str, password: str) -> None:
        """Add the account from its address and password only."""
        page, ui = self.page, self.ui
        self.open_add_integration()
        self.fill_user_step(address, password)
        self.shot("1-address-and-password", self.dialog_surface())
        self.submit()
        # Nothing else typed: the servers come from the ISP database.
        self.expect_text(ui.found_title)
        self.expect_text(ui.found_in_ispdb)
        self.expect_text(f"127.0.0.1:{self.env.dovecot.imaps_port}, SSL/TLS")
        self.expect_text(f"127.0.0.1:{self.env.smtp.starttls_port}, STARTTLS")
        self.shot("2-settings-found", self.dialog_surface())
        self.submit()
        self.expect_text(ui.success)
        self.dialog().get_by_role("button", name=ui.finish).click()
        page.wait_for_url(
            re.compile(r"/config/(integrations/integration/mail_relay|devices/device/)")
        )

    def open_automation_editor(self) -> None:
        """Settings → Automations & scenes → Create automation → from scratch."""
        page = self.page
        page.get_by_role("option", name=self.ui.settings).or_(
            page.get_by_role("link", name=re.compile(re.escape(self.ui.settings)))
        ).first.click()
        page.wait_for_url("**/config/**")
        page.get_by_text("Automations & scenes", exact=True).click()
        page.wait_for_url("**/config/automation/**")
        page.get_by_role("button", name=re.compile(r"^Create automation$", re.I)).or_(
            page.get_by_role("link", name=re.compile(r"^Create automation$", re.I))
        ).first.click()
        page.get_by_text("Start with an empty automation").or_(
            page.get_by_text("Create new automation")
        ).first.click()
        page.wait_for_url("**/config/automation/edit/new**")

    def overflow_menu(self) -> Locator:
        """Return the editor's ⋮ button (top right)."""
        page = self.page
        return (
            page.locator("ha-automation-editor")
            .get_by_role("button", name=re.compile(r"^Menu$"))
            .first
        )

    def write_yaml(self, text: str) -> None:
        """⋮ → Edit in YAML, then replace the editor's text with ``text``."""
        page = self.page
        self.overflow_menu().click()
        page.get_by_role("menuitem", name=re.compile("Edit in YAML")).or_(
            page.get_by_role("option", name=re.compile("Edit in YAML"))
        ).first.click()
        editor = page.locator("ha-automation-editor .cm-content").first
        editor.click()
        page.keyboard.press("ControlOrMeta+A")
        # As pasted: typing would let the editor indent each new line again.
        page.keyboard.insert_text(text)

    def save(self) -> str:
        """Save (naming it when asked) and return the automation's id."""
        page = self.page
        page.get_by_role("button", name=re.compile(r"^Save$", re.I)).first.click()
        # Until 2026.x a new automation asks for its name (prefilled from the
        # alias), with a Rename button; later releases save an alias at once.
        dialogs = page.get_by_role("alertdialog").or_(page.get_by_role("dialog"))
        confirm = page.get_by_role("button", name="Rename", exact=True).or_(
            dialogs.get_by_role("button", name="Save", exact=True)
        )
        saved = re.compile(r"/config/automation/edit/(?!new)([^/?#]+)")
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while not saved.search(page.url):
            if confirm.first.is_visible():
                self.shot("4-name")
                confirm.first.click()
            assert time.monotonic() < deadline, "the automation was not saved"
            page.wait_for_timeout(200)
        self.shot("4-saved")
        match = saved.search(page.url)
        assert match is not None
        return match.group(1)


def automation_state(env: E2eEnvironment, automation_id: str) -> dict[str, Any]:
    """Return the state of the automation with this config id."""
    for state in env.hass.states().values():
        if (
            state["entity_id"].startswith("automation.")
            and state["attributes"].get("id") == automation_id
        ):
            return state
    raise AssertionError(f"no automation entity with id {automation_id}")


def wait_for(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``condition`` until it returns something true."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.25)
    return result


@pytest.fixture
def newcomer(page: Page, e2e: E2eEnvironment) -> Newcomer:
    """A person logged in to Home Assistant in English."""
    person = Newcomer(page, e2e, EN)
    person.log_in()
    person.use_server_language()
    return person


def test_a_newcomer_adds_an_account_and_an_automation_that_runs_on_mail(
    e2e: E2eEnvironment, newcomer: Newcomer
) -> None:
    from playwright.sync_api import expect

    user = e2e.dovecot.add_user("newcomer")
    e2e.smtp.add_user(user.address, user.password)
    newcomer.add_account(user.address, user.password)
    title = f"{user.address} (IMAP)"
    entry = next(e for e in e2e.hass.config_entries() if e["title"] == title)
    assert entry["state"] == "loaded"

    newcomer.open_automation_editor()
    newcomer.write_yaml(automation_yaml(user.address))
    expect(newcomer.page.get_by_text("mail_relay_new_mail").first).to_be_visible()
    newcomer.shot("3-automation-yaml")
    automation_id = newcomer.save()

    # Saved into automations.yaml and loaded: an entity, never triggered yet.
    saved = (e2e.hass.config_dir / "automations.yaml").read_text()
    assert f"id: '{automation_id}'" in saved or f"id: {automation_id}" in saved
    state = wait_for(lambda: automation_state(e2e, automation_id))
    assert state["state"] == "on"
    assert state["attributes"]["last_triggered"] is None

    # A mail arrives: the automation runs once and leaves its notification.
    e2e.dovecot.deliver(user, make_message(SUBJECT, to=user.address))
    state = wait_for(
        lambda: (s := automation_state(e2e, automation_id))["attributes"][
            "last_triggered"
        ]
        and s
    )
    notifications = newcomer.page.evaluate(
        """async () => {
            const hass = document.querySelector("home-assistant").hass;
            return await hass.callWS({type: "persistent_notification/get"});
        }"""
    )
    assert any(n["message"] == SUBJECT for n in notifications), notifications

    # The automations list says it ran.
    newcomer.page.goto(e2e.hass.url + "/config/automation/dashboard")
    row = newcomer.page.get_by_text(ALIAS, exact=True).first
    expect(row).to_be_visible()
    newcomer.shot("5-automation-ran")


DOORBELL = "Doorbell: someone is at the door"
DEVICE_ALIAS = "Doorbell mail"
DEVICE_ACTIONS = (
    "actions:\n"
    "  - action: persistent_notification.create\n"
    "    data:\n"
    "      title: Doorbell\n"
    '      message: "{{ trigger.event.data.subject }}"\n'
)


class DeviceTriggerAuthor(Newcomer):
    """The newcomer again, now picking the account's trigger in the editor."""

    def __init__(self, page: Page, env: E2eEnvironment, ui: Ui) -> None:
        """Screenshots are named device-trigger-*."""
        Session.__init__(self, page, env, ui, "device-trigger")

    def add_device_trigger(self, device_name: str, subject_contains: str) -> None:
        """Add trigger → Device → the account → Mail received, with a condition.

        Older frontends list "Device" among the trigger types and edit it in
        place; newer ones open the dialog "By target", keep "Device" under
        "By type" (a group holding the one Device trigger) and edit the new
        trigger in a sidebar.
        """
        from playwright.sync_api import expect

        page = self.page
        editor = page.locator("ha-automation-editor")
        editor.get_by_role(
            "button", name=re.compile(r"^Add trigger$", re.I)
        ).first.click()
        picker = page.locator("add-automation-element-dialog")
        by_type = picker.get_by_role("button", name="By type", exact=True)
        device_item = picker.get_by_text("Device", exact=True).first
        expect(by_type.or_(device_item).first).to_be_visible()
        if by_type.is_visible():
            by_type.click()
            device_item.click()
            # The group shows its triggers on the right: the one Device trigger.
            device_item = (
                picker.locator("ha-automation-add-items")
                .get_by_role("listitem")
                .filter(has_text=re.compile(r"^\s*Device\b"))
            )
            self.shot("3-by-type")
        device_item.click()
        self.shot("3-device")
        device = editor.locator("ha-device-picker").first
        self.pick(device, device_name)
        trigger = editor.locator("ha-device-trigger-picker").first
        self.pick(trigger, "Mail received")
        expect(
            editor.get_by_text("Only from verified senders (DMARC or DKIM)").first
        ).to_be_visible()
        # The editor writes the fields' defaults into the trigger once they
        # show; typing before that lands may be overwritten.
        page.wait_for_timeout(500)
        subject = editor.get_by_role("textbox", name="Subject contains")
        subject.fill(subject_contains)
        subject.press("Tab")  # the label floats up once the field is left
        expect(subject).to_have_value(subject_contains)
        page.wait_for_timeout(300)
        self.shot("3-mail-received")

    def pick(self, picker: Locator, name: str) -> None:
        """Open a picker and choose ``name`` from its list.

        Older frontends drop a list of options down; newer ones open a
        popover with its own search field (searched here, as a person with
        many devices would) over a list of items.
        """
        from playwright.sync_api import expect

        page = self.page
        search = picker.locator("ha-picker-combo-box input")
        choice = page.get_by_role("option", name=re.compile(re.escape(name))).or_(
            picker.locator("ha-picker-combo-box ha-combo-box-item").filter(
                has_text=name
            )
        )
        # A picker that has just appeared (the device's triggers still
        # loading) may swallow the first click: click again, as a person would.
        for attempt in range(3):
            picker.click()
            try:
                expect(search.or_(choice).first).to_be_visible(timeout=5_000)
                break
            except AssertionError:
                if attempt == 2:
                    raise
        if search.is_visible():
            search.fill(name)
        choice.first.click()

    def yaml_text(self) -> str:
        """⋮ → Edit in YAML; return what the editor shows."""
        page = self.page
        self.overflow_menu().click()
        page.get_by_role("menuitem", name=re.compile("Edit in YAML")).or_(
            page.get_by_role("option", name=re.compile("Edit in YAML"))
        ).first.click()
        editor = page.locator("ha-automation-editor .cm-content").first
        editor.wait_for()
        return editor.inner_text()

    def replace_yaml(self, text: str) -> None:
        """Replace the YAML editor's text with ``text``, as pasted."""
        page = self.page
        page.locator("ha-automation-editor .cm-content").first.click()
        page.keyboard.press("ControlOrMeta+A")
        page.keyboard.insert_text(text)


@pytest.fixture
def author(page: Page, e2e: E2eEnvironment) -> DeviceTriggerAuthor:
    """A person logged in to Home Assistant in English."""
    person = DeviceTriggerAuthor(page, e2e, EN)
    person.log_in()
    person.use_server_language()
    return person


def test_a_device_trigger_built_in_the_editor_runs_on_matching_mail(
    e2e: E2eEnvironment, author: DeviceTriggerAuthor
) -> None:
    from playwright.sync_api import expect

    user = e2e.dovecot.add_user("doorbell")
    e2e.smtp.add_user(user.address, user.password)
    author.add_account(user.address, user.password)
    title = f"{user.address} (IMAP)"

    author.open_automation_editor()
    author.add_device_trigger(title, "doorbell")
    # The visual editor wrote the device trigger; the action goes in as YAML.
    written = author.yaml_text()
    assert "type: mail_received" in written, written
    assert "subject_contains: doorbell" in written, written
    assert re.search(r"device_id: \w{32}", written), written
    text = re.sub(r"^actions: \[\]\n?", "", written, flags=re.M)
    author.replace_yaml(f"alias: {DEVICE_ALIAS}\n{text.rstrip()}\n{DEVICE_ACTIONS}")
    expect(
        author.page.get_by_text("persistent_notification.create").first
    ).to_be_visible()
    author.shot("3-yaml")
    automation_id = author.save()
    state = wait_for(lambda: automation_state(e2e, automation_id))
    assert state["attributes"]["last_triggered"] is None

    # Mail that does not match runs nothing; the doorbell's mail runs it once.
    e2e.dovecot.deliver(user, make_message("Weekly newsletter", to=user.address))
    e2e.dovecot.deliver(user, make_message(DOORBELL, to=user.address))
    wait_for(
        lambda: automation_state(e2e, automation_id)["attributes"]["last_triggered"]
    )
    notifications = author.page.evaluate(
        """async () => {
            const hass = document.querySelector("home-assistant").hass;
            return await hass.callWS({type: "persistent_notification/get"});
        }"""
    )
    doorbell = [n for n in notifications if n["title"] == "Doorbell"]
    assert [n["message"] for n in doorbell] == [DOORBELL], notifications

    # Its trace says what started it.
    author.page.goto(e2e.hass.url + f"/config/automation/trace/{automation_id}")
    # "Trace Timeline" until 2025, "Trace timeline" since.
    timeline = re.compile(r"^\s*Trace timeline\s*$", re.I)
    author.page.get_by_role("tab", name=timeline).or_(
        author.page.get_by_text(timeline)
    ).first.click()
    received = re.compile(f"mail received by {re.escape(user.address)}")
    expect(author.page.get_by_text(received).first).to_be_visible()
    author.shot("5-trace")
