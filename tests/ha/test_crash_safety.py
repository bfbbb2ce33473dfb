"""What Home Assistant keeps when it dies in a burst, and what it shows at start.

The mark (IMAP's UID, POP3's UIDLs) is in ``Store`` before the next event
fires, so a crash repeats at most the message in flight; and mail found while
starting, before the event entity exists, still reaches that entity.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.mail_relay.const import (
    CONF_POLL_INTERVAL,
    DOMAIN,
    EVENT_NEW_MAIL,
)
from tests.ha.helpers import wait_for
from tests.mailserver import DovecotServer, MailUser
from tests.mailserver.dovecot import make_message

pytestmark = pytest.mark.usefixtures("trust_test_cert")
BURST = 12


def _stored(hass_storage: dict[str, Any], entry: MockConfigEntry) -> dict[str, Any]:
    return hass_storage.get(f"{DOMAIN}.{entry.entry_id}", {}).get("data", {})


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
async def test_the_mark_is_stored_before_the_next_event(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    protocol: str,
) -> None:
    entry = entry_factory(
        mail_user, protocol=protocol, options={CONF_POLL_INTERVAL: 60}
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    # What Store held at the moment each event fired: what a crash then keeps.
    seen: list[tuple[str, dict[str, Any]]] = []

    @callback
    def on_mail(event: Event) -> None:
        stored = _stored(hass_storage, entry)
        mark = (
            (stored.get("imap_folders") or {}).get("INBOX")
            if protocol == "imap"
            else stored.get("pop3")
        )
        seen.append((event.data["uid"], dict(mark or {})))

    hass.bus.async_listen(EVENT_NEW_MAIL, on_mail)
    await hass.async_add_executor_job(
        dovecot.deliver,
        mail_user,
        [make_message(f"burst {n}", to=mail_user.address) for n in range(BURST)],
    )
    if protocol == "pop3":
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=61))
    await wait_for(hass, lambda: len(seen) == BURST)
    for index, (uid, stored) in enumerate(seen[1:], 1):
        previous = seen[index - 1][0]
        if protocol == "imap":
            assert stored["last_uid"] >= int(previous), (uid, stored)
        else:
            assert previous in stored["seen"], (uid, sorted(stored["seen"]))
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
async def test_mail_found_at_start_reaches_the_event_entity(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_user: MailUser,
    entry_factory: Callable[..., MockConfigEntry],
    protocol: str,
) -> None:
    entry = entry_factory(mail_user, protocol=protocol)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await hass.async_add_executor_job(
        dovecot.deliver, mail_user, make_message("while down", to=mail_user.address)
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    entity_id = er.async_get(hass).async_get_entity_id(
        "event", DOMAIN, f"{entry.entry_id}_mail"
    )
    assert entity_id is not None

    def shown() -> str | None:
        state = hass.states.get(entity_id)
        return state.attributes.get("subject") if state else None

    await wait_for(hass, lambda: shown() == "while down")
    assert await hass.config_entries.async_unload(entry.entry_id)
