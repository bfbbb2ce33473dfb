"""Several folders of one IMAP account, and the account filter, through Home Assistant."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from homeassistant.const import CONF_PASSWORD
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.mail_relay.const import (
    CONF_EMAIL,
    CONF_FILTER_SENDERS,
    CONF_FILTER_SUBJECT,
    CONF_FOLDER,
    CONF_FOLDERS,
    CONF_INCOMING_HOST,
    CONF_INCOMING_PORT,
    CONF_INCOMING_SECURITY,
    CONF_INCOMING_USERNAME,
    CONF_PROTOCOL,
    CONF_VERIFY_SSL,
    DOMAIN,
    EVENT_NEW_MAIL,
)
from custom_components.mail_relay.mail.imap import ImapClient
from custom_components.mail_relay.mail.models import Security, ServerSettings
from tests.ha.helpers import wait_for
from tests.mail.test_imap_folders import special_use_list
from tests.mailserver import DovecotServer, MailUser
from tests.mailserver.dovecot import make_message
from tests.mailserver.imap_scripted import ScriptedImapServer

pytestmark = pytest.mark.usefixtures("trust_test_cert")

FOLDERS = ["INBOX", "Alarmes", "Factures"]


def plain(dovecot: DovecotServer, user: MailUser) -> ServerSettings:
    return ServerSettings(
        dovecot.host, dovecot.imap_port, Security.NONE, user.username, user.password
    )


async def make_folders(dovecot: DovecotServer, user: MailUser) -> None:
    client = ImapClient(plain(dovecot, user), ssl_context=None)
    await client.connect()
    for folder in FOLDERS[1:]:
        await client.create_folder(folder)
    await client.logout()


async def deliver(
    hass: HomeAssistant, dovecot: DovecotServer, user: MailUser, tag: str
) -> None:
    """One message into each folder: LMTP for INBOX, APPEND for the others."""
    await hass.async_add_executor_job(
        dovecot.deliver, user, make_message(f"INBOX {tag}", to=user.address)
    )
    client = ImapClient(plain(dovecot, user), ssl_context=None)
    await client.connect()
    for folder in FOLDERS[1:]:
        await client.append(folder, make_message(f"{folder} {tag}", to=user.address))
    await client.logout()


def stored(hass_storage: dict[str, Any], entry: MockConfigEntry) -> dict[str, Any]:
    return hass_storage.get(f"{DOMAIN}.{entry.entry_id}", {}).get("data", {})


async def test_three_folders_one_event_each_exactly_once_across_a_restart(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    await make_folders(dovecot, mail_user)
    entry = entry_factory(mail_user, options={CONF_FOLDERS: FOLDERS})
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator = entry.runtime_data.coordinator
    assert coordinator.notify  # Dovecot pushes the other folders (NOTIFY)

    await deliver(hass, dovecot, mail_user, "1")
    await wait_for(hass, lambda: len(events) == 3)
    # Stopped, mail in every folder meanwhile, started again, then more.
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await deliver(hass, dovecot, mail_user, "2 (while down)")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: len(events) == 6)
    await deliver(hass, dovecot, mail_user, "3")
    await wait_for(hass, lambda: len(events) == 9)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await deliver(hass, dovecot, mail_user, "4 (after a reload)")
    await wait_for(hass, lambda: len(events) == 12, timeout=15)

    got = sorted((e.data["folder"], e.data["subject"]) for e in events)
    tags = ["1", "2 (while down)", "3", "4 (after a reload)"]
    assert got == sorted((f, f"{f} {t}") for f in FOLDERS for t in tags)

    def marks() -> dict[str, int]:
        saved = stored(hass_storage, entry).get("imap_folders", {})
        return {f: m["last_uid"] for f, m in saved.items()}

    await wait_for(hass, lambda: marks() == dict.fromkeys(FOLDERS, 4))
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_single_folder_mark_of_an_older_version_is_taken_over(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    """An entry saved with one ``folder`` and one ``imap`` mark: nothing repeated, nothing lost."""
    await make_folders(dovecot, mail_user)
    await hass.async_add_executor_job(
        dovecot.deliver,
        mail_user,
        [make_message("reported before", to=mail_user.address)],
    )
    client = ImapClient(plain(dovecot, mail_user), ssl_context=None)
    await client.connect()
    uidvalidity, _ = await client.select("INBOX")
    await client.logout()
    entry = entry_factory(mail_user, options={CONF_FOLDER: "INBOX"})
    hass_storage[f"{DOMAIN}.{entry.entry_id}"] = {
        "version": 1,
        "key": f"{DOMAIN}.{entry.entry_id}",
        "data": {
            "imap": {
                "folder": "INBOX",
                "uidvalidity": uidvalidity,
                "last_uid": 1,
                "last_arrival": None,
                "recent_ids": [],
            }
        },
    }
    await hass.async_add_executor_job(
        dovecot.deliver,
        mail_user,
        make_message("while upgrading", to=mail_user.address),
    )
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: len(events) == 1)
    assert entry.runtime_data.coordinator.folders == ("INBOX",)

    def inbox_mark() -> int | None:
        data = stored(hass_storage, entry)
        assert "imap" not in data
        return data.get("imap_folders", {}).get("INBOX", {}).get("last_uid")

    await wait_for(hass, lambda: inbox_mark() == 2)

    # Now with a second folder: its mail already there is not reported.
    client = ImapClient(plain(dovecot, mail_user), ssl_context=None)
    await client.connect()
    await client.append("Alarmes", make_message("old alarm", to=mail_user.address))
    await client.logout()
    hass.config_entries.async_update_entry(
        entry, options={CONF_FOLDERS: ["INBOX", "Alarmes"]}
    )
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await deliver(hass, dovecot, mail_user, "new")
    await wait_for(hass, lambda: len(events) == 3)
    await hass.async_block_till_done()
    subjects = [e.data["subject"] for e in events]
    assert subjects[0] == "while upgrading"
    assert sorted(subjects[1:]) == ["Alarmes new", "Factures new", "INBOX new"][::2]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_filter_fires_only_for_matching_mail_and_a_change_replays_nothing(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(
        mail_user,
        options={
            CONF_FOLDERS: ["INBOX"],
            CONF_FILTER_SENDERS: ["alarm@example.org", "maison.fr"],
            CONF_FILTER_SUBJECT: "porte",
        },
    )
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await hass.async_add_executor_job(
        dovecot.deliver,
        mail_user,
        [
            make_message("Porte ouverte", sender="spam@example.net"),
            make_message("Facture", sender="alarm@example.org"),
            make_message("La porte du garage", sender="Cave <capteur@cave.maison.fr>"),
        ],
    )
    await wait_for(hass, lambda: len(events) == 1)
    await hass.async_add_executor_job(
        dovecot.deliver, mail_user, make_message("porte close", sender="x@maison.fr")
    )
    await wait_for(hass, lambda: len(events) == 2)
    assert [e.data["subject"] for e in events] == ["La porte du garage", "porte close"]

    # The user clears the filter in the options: what it passed over stays passed.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {CONF_FOLDERS: ["INBOX"], CONF_FILTER_SENDERS: [], CONF_FILTER_SUBJECT: ""},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.runtime_data.coordinator.options.filter.senders == ()
    await hass.async_add_executor_job(
        dovecot.deliver, mail_user, make_message("Bonjour", sender="ami@example.net")
    )
    await wait_for(hass, lambda: len(events) == 3)
    await hass.async_block_till_done()
    assert [e.data["subject"] for e in events][2:] == ["Bonjour"]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_options_offer_the_folders_with_special_ones_labelled(
    hass: HomeAssistant,
) -> None:
    """In the user's language; a sender that is neither address nor domain is refused."""
    hass.config.language = "fr"
    async with ScriptedImapServer(answers={"LIST": special_use_list}) as server:
        entry = MockConfigEntry(
            domain=DOMAIN,
            data={
                CONF_EMAIL: "u@example.org",
                CONF_PASSWORD: "p",
                CONF_PROTOCOL: "imap",
                CONF_INCOMING_HOST: "127.0.0.1",
                CONF_INCOMING_PORT: server.port,
                CONF_INCOMING_SECURITY: "none",
                CONF_INCOMING_USERNAME: "u",
                CONF_VERIFY_SSL: True,
            },
            options={CONF_FOLDER: "Alarmes"},
        )
        entry.add_to_hass(hass)
        result = await hass.config_entries.options.async_init(entry.entry_id)
        selector = result["data_schema"].schema[CONF_FOLDERS]
        assert selector.config["options"] == [
            {"value": "Alarmes", "label": "Alarmes"},  # the watched one first
            {"value": "INBOX", "label": "INBOX"},
            {"value": "Envoyés", "label": "Envoyés (Envoyés)"},
            {"value": "Spam", "label": "Spam (Indésirables)"},
        ]
        flow = result["flow_id"]
        result = await hass.config_entries.options.async_configure(
            flow, {CONF_FOLDERS: ["INBOX"], CONF_FILTER_SENDERS: ["pas une adresse"]}
        )
        assert result["errors"] == {CONF_FILTER_SENDERS: "invalid_sender_filter"}
        result = await hass.config_entries.options.async_configure(
            flow, {CONF_FOLDERS: [], CONF_FILTER_SENDERS: []}
        )
        assert result["errors"] == {CONF_FOLDERS: "no_folder"}
        result = await hass.config_entries.options.async_configure(
            flow,
            {CONF_FOLDERS: ["INBOX", "Spam"], CONF_FILTER_SENDERS: ["@maison.fr"]},
        )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_FOLDER not in entry.options  # the single folder, replaced
    assert entry.options[CONF_FOLDERS] == ["INBOX", "Spam"]
    assert entry.options[CONF_FILTER_SENDERS] == ["@maison.fr"]
