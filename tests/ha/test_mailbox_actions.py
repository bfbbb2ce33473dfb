"""The IMAP actions against a real Dovecot, through Home Assistant."""

from __future__ import annotations

import imaplib
from collections.abc import Callable

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.mail_relay.const import DOMAIN, EVENT_NEW_MAIL
from tests.ha.helpers import wait_for
from tests.mailserver import DovecotServer, MailUser, TestCertificate
from tests.mailserver.dovecot import make_message

pytestmark = pytest.mark.usefixtures("trust_test_cert")


def imap(
    dovecot: DovecotServer, user: MailUser, cert: TestCertificate
) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL(
        dovecot.host, dovecot.imaps_port, ssl_context=cert.client_context()
    )
    client.login(user.username, user.password)
    return client


async def loaded_entry_with_mail(hass, dovecot, user, entry_factory, subjects):
    entry = entry_factory(user)
    entry.add_to_hass(hass)
    events = async_capture_events(hass, EVENT_NEW_MAIL)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_add_executor_job(
        dovecot.deliver, user, [make_message(s, body=f"body of {s}") for s in subjects]
    )
    await wait_for(hass, lambda: len(events) == len(subjects))
    return entry, [int(e.data["uid"]) for e in events]


async def test_fetch_mark_seen_move_delete(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    mail_cert: TestCertificate,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry, uids = await loaded_entry_with_mail(
        hass, dovecot, mail_user, entry_factory, ["one", "two", "three"]
    )

    response = await hass.services.async_call(
        DOMAIN,
        "fetch",
        {"config_entry_id": entry.entry_id, "uid": uids[0]},
        blocking=True,
        return_response=True,
    )
    assert response["subject"] == "one"
    assert "body of one" in response["text"]

    await hass.services.async_call(
        DOMAIN,
        "mark_seen",
        {"config_entry_id": entry.entry_id, "uid": [uids[0]]},
        blocking=True,
    )

    def unseen_after_creating_archives() -> list[bytes]:
        client = imap(dovecot, mail_user, mail_cert)
        client.create("Archives")
        client.select("INBOX", readonly=True)
        unseen: list[bytes] = client.uid("SEARCH", "UNSEEN")[1][0].split()
        client.logout()
        return unseen

    # A second client checks the server, off the event loop.
    unseen = await hass.async_add_executor_job(unseen_after_creating_archives)
    assert unseen == [str(u).encode() for u in uids[1:]]

    await hass.services.async_call(
        DOMAIN,
        "move",
        {
            "config_entry_id": entry.entry_id,
            "uid": [uids[1]],
            "target_folder": "Archives",
        },
        blocking=True,
    )
    await hass.services.async_call(
        DOMAIN,
        "delete",
        {"config_entry_id": entry.entry_id, "uid": [uids[2]]},
        blocking=True,
    )

    def archives_count_and_inbox_uids() -> tuple[list[bytes], list[bytes]]:
        client = imap(dovecot, mail_user, mail_cert)
        archived = client.select("Archives", readonly=True)[1]
        client.select("INBOX", readonly=True)
        inbox: list[bytes] = client.uid("SEARCH", "ALL")[1][0].split()
        client.logout()
        return archived, inbox

    archived, inbox = await hass.async_add_executor_job(archives_count_and_inbox_uids)
    assert archived == [b"1"]
    assert inbox == [str(uids[0]).encode()]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_actions_reject_unknown_and_pop3_entries(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(mail_user, protocol="pop3")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "mark_seen",
            {"config_entry_id": entry.entry_id, "uid": [1]},
            blocking=True,
        )
    assert err.value.translation_key == "imap_only"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "delete", {"config_entry_id": "nope", "uid": [1]}, blocking=True
        )
    assert err.value.translation_key == "entry_not_found"
    assert await hass.config_entries.async_unload(entry.entry_id)
