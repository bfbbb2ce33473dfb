"""The "mail received" device trigger, in real automations, against real Dovecot.

Beside it, State triggers on the event entity show why the README asks for
the ``not_from``/``not_to`` guard there: a reload moves the entity to
unavailable and back, and an unguarded State trigger runs on both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from homeassistant.components.device_automation import (
    DeviceAutomationType,
    async_get_device_automations,
)
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_mock_service,
)

from custom_components.mail_relay.const import DOMAIN
from tests.ha.helpers import wait_for
from tests.ha.test_imap_account import entity_id, setup
from tests.mailserver import DovecotServer, MailUser
from tests.mailserver.dovecot import make_message

pytestmark = pytest.mark.usefixtures("trust_test_cert")

# What the receiving server writes on mail whose DKIM signature of the From
# domain it checked (message.authentication_results reads the topmost one).
DKIM_PASS = (
    b"Authentication-Results: mx.mailrelay.test; dkim=pass header.d=example.org;"
    b" spf=pass smtp.mailfrom=example.org\r\n"
)


def device_id(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    # By config entry: async_get_device is deprecated from Home Assistant 2026.
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    [device] = [d for d in devices if (DOMAIN, entry.entry_id) in d.identifiers]
    return device.id


def device_trigger(device: str, **conditions: Any) -> dict[str, Any]:
    return {
        "trigger": "device",
        "domain": DOMAIN,
        "device_id": device,
        "type": "mail_received",
        **conditions,
    }


def automation(name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    """An automation that records which one ran, and on what mail."""
    return {
        "alias": name,
        "mode": "queued",
        "triggers": [trigger],
        "actions": [
            {
                "action": "test.automation",
                "data": {
                    "name": name,
                    "subject": "{{ trigger.event.data.subject if trigger.event is defined else '' }}",
                    "change": (
                        "{{ (trigger.from_state.state if trigger.from_state else 'none')"
                        " ~ ' > ' ~ (trigger.to_state.state if trigger.to_state else 'none')"
                        " if trigger.platform == 'state' else '' }}"
                    ),
                },
            }
        ],
    }


def runs(calls: list[ServiceCall], name: str) -> list[str]:
    return [c.data["subject"] for c in calls if c.data["name"] == name]


def changes(calls: list[ServiceCall], name: str) -> list[str]:
    """The State trigger's runs as "from > to", a mail's time shown as "mail"."""
    return [
        re.sub(r"\d{4}-\d\d-\d\dT[^ ]+", "mail", c.data["change"])
        for c in calls
        if c.data["name"] == name
    ]


async def deliver(
    hass: HomeAssistant, server: DovecotServer, user: MailUser, raw: bytes
) -> None:
    await hass.async_add_executor_job(server.deliver, user, raw)


async def test_fires_once_per_mail_and_not_on_reload(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(mail_user, smtp_security=None)
    await setup(hass, entry)
    device = device_id(hass, entry)
    offered = await async_get_device_automations(
        hass, DeviceAutomationType.TRIGGER, [device]
    )
    ours = [t["type"] for t in offered[device] if t["domain"] == DOMAIN]
    assert ours == ["mail_received"]

    mail_entity = entity_id(hass, entry, "event", "mail")
    calls = async_mock_service(hass, "test", "automation")

    def state(**guard: list[str]) -> dict[str, Any]:
        return {"trigger": "state", "entity_id": mail_entity, **guard}

    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                automation("device", device_trigger(device)),
                automation("state", state()),
                automation("not_from", state(not_from=["unavailable", "unknown"])),
                automation(
                    "guarded", state(not_from=["unavailable"], not_to=["unavailable"])
                ),
            ]
        },
    )
    await hass.async_block_till_done()

    await deliver(hass, dovecot, mail_user, make_message("Colis livré"))
    await wait_for(hass, lambda: len(runs(calls, "device")) == 1)
    await wait_for(hass, lambda: len(runs(calls, "guarded")) == 1)
    assert runs(calls, "device") == ["Colis livré"]
    assert changes(calls, "state") == ["unknown > mail"]
    # The entity's first event comes from "unknown": that guard drops it.
    assert changes(calls, "not_from") == []

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for(
        hass, lambda: hass.states.get(mail_entity).state != STATE_UNAVAILABLE
    )
    await wait_for(hass, lambda: entry.runtime_data.coordinator.last_check is not None)
    # The reload fired no mail trigger; the unguarded State trigger ran on
    # the way to unavailable and on the way back, not_from alone on the first.
    assert runs(calls, "device") == ["Colis livré"]
    assert changes(calls, "guarded") == ["unknown > mail"]
    assert changes(calls, "state") == [
        "unknown > mail",
        "mail > unavailable",
        "unavailable > mail",
    ]
    assert changes(calls, "not_from") == ["mail > unavailable"]

    await deliver(hass, dovecot, mail_user, make_message("Facture"))
    await wait_for(hass, lambda: len(runs(calls, "device")) == 2)
    assert runs(calls, "device") == ["Colis livré", "Facture"]
    await wait_for(hass, lambda: len(runs(calls, "guarded")) == 2)
    assert changes(calls, "guarded") == ["unknown > mail", "mail > mail"]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_conditions_filter_the_mail(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
) -> None:
    entry = entry_factory(mail_user, smtp_security=None)
    await setup(hass, entry)
    other_user = dovecot.add_user()
    other = entry_factory(other_user, smtp_security=None)
    await setup(hass, other)
    device = device_id(hass, entry)
    calls = async_mock_service(hass, "test", "automation")
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                automation("any", device_trigger(device)),
                automation(
                    "address", device_trigger(device, sender="Alarm@Example.org")
                ),
                automation("domain", device_trigger(device, sender="example.org")),
                automation("at domain", device_trigger(device, sender="@example.org")),
                automation("subject", device_trigger(device, subject_contains="porte")),
                automation("verified", device_trigger(device, sender_verified=True)),
                automation(
                    "all",
                    device_trigger(
                        device,
                        sender="example.org",
                        subject_contains="porte",
                        sender_verified=True,
                    ),
                ),
            ]
        },
    )
    await hass.async_block_till_done()

    await deliver(
        hass,
        dovecot,
        mail_user,
        make_message("La PORTE est ouverte", sender="Alarme <alarm@example.org>"),
    )
    await deliver(
        hass, dovecot, mail_user, make_message("Bonjour", sender="ami@elsewhere.net")
    )
    await deliver(
        hass,
        dovecot,
        mail_user,
        make_message("Porte fermée", sender="alarm@mail.example.org"),
    )
    await deliver(
        hass,
        dovecot,
        mail_user,
        DKIM_PASS + make_message("Porte du garage", sender="garage@example.org"),
    )
    # Mail to another account never runs this device's triggers.
    await deliver(
        hass,
        dovecot,
        other_user,
        DKIM_PASS + make_message("Porte d'à côté", sender="alarm@example.org"),
    )
    await wait_for(hass, lambda: len(runs(calls, "any")) == 4)
    await wait_for(hass, lambda: other.runtime_data.coordinator.last_event is not None)

    assert runs(calls, "any") == [
        "La PORTE est ouverte",
        "Bonjour",
        "Porte fermée",
        "Porte du garage",
    ]
    assert runs(calls, "address") == ["La PORTE est ouverte"]
    # A domain matches its subdomains too, as the account filter does.
    assert runs(calls, "domain") == [
        "La PORTE est ouverte",
        "Porte fermée",
        "Porte du garage",
    ]
    assert runs(calls, "at domain") == runs(calls, "domain")
    assert runs(calls, "subject") == [
        "La PORTE est ouverte",
        "Porte fermée",
        "Porte du garage",
    ]
    assert runs(calls, "verified") == ["Porte du garage"]
    assert runs(calls, "all") == ["Porte du garage"]
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert await hass.config_entries.async_unload(other.entry_id)
