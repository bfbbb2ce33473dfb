"""Reliability scenario: a link that dies silently while the account idles.

Mail Relay runs through Home Assistant with its default settings, its IMAP
connection through a proxy (``tests/mailserver/proxy.py``) that at some point
drops every byte both ways and keeps the connection open, as a dead Wi-Fi link
or a NAT that forgot the connection does. Measured: how long until the
connection entity says the link is lost (the promise: under 120 s), and, for a
message delivered during the outage, how long after the link is back it is
reported and how many times (the promise: once). The peer (Home Assistant's
own ``imap``) is not run here: its IDLE is renewed every 29 minutes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.mail_relay.const import (
    CONF_INCOMING_PORT,
    DOMAIN,
    EVENT_NEW_MAIL,
)
from custom_components.mail_relay.mail.options import ImapWatchOptions, Timeouts
from tests.mailserver import DovecotServer
from tests.mailserver.proxy import FaultyProxy, Mode

from .mailbox import deliver_timed, tagged_message
from .sides import EventLog, wait_until

PEER_NOTE = "not run: Home Assistant's imap renews IDLE every 29 minutes"


async def bench_blackhole(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    entry_factory: Callable[..., MockConfigEntry],
    record: Any,
) -> None:
    """Time to notice a silent dead link with the defaults; the mail meanwhile, once."""
    user = dovecot.add_user()
    subject = f"during the blackhole {secrets.token_hex(3)}"
    async with FaultyProxy(dovecot.host, dovecot.imaps_port) as proxy:
        base = entry_factory(user, smtp_security=None)
        entry = MockConfigEntry(
            domain=DOMAIN,
            title=base.title,
            data={**base.data, CONF_INCOMING_PORT: proxy.port},
            options=base.options,
            unique_id=base.unique_id,
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        log = EventLog(hass, EVENT_NEW_MAIL, {entry.entry_id})
        connection = er.async_get(hass).async_get_entity_id(
            "binary_sensor", DOMAIN, f"{entry.entry_id}_connection"
        )
        assert connection is not None

        def state() -> str | None:
            current = hass.states.get(connection)
            return current.state if current else None

        await asyncio.sleep(2)  # in IDLE
        proxy.set_mode(Mode.BLACKHOLE)
        lost_at = time.monotonic()
        noticed = await wait_until(lambda: state() == "off", timeout=600, interval=0.1)
        detect_s = time.monotonic() - lost_at
        await hass.async_add_executor_job(
            deliver_timed, dovecot, user, [tagged_message(subject, user.address)]
        )
        proxy.cut()  # the old connections died with the link
        proxy.set_mode(Mode.PASS)
        back_at = time.monotonic()
        await wait_until(lambda: subject in log.first_by_subject(), timeout=600)
        reported_s = time.monotonic() - back_at
        await asyncio.sleep(5)  # a repeat would come now
        copies = sum(1 for s, _, _ in log.events if s == subject)
        log.close()
        assert await hass.config_entries.async_unload(entry.entry_id)
    record(
        "blackhole",
        {
            "mail_relay": {
                "noticed": noticed,
                "detect_s": round(detect_s, 1),
                # The watcher's dead_link_bound with the defaults: a renewal, then an answer.
                "bound_s": ImapWatchOptions().idle_renew + Timeouts().io,
                "reported_after_link_back_s": round(reported_s, 1),
                "copies": copies,
            },
            "peer": {"status": "not available", "note": PEER_NOTE},
        },
    )
