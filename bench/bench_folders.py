"""Several folders of one account: one Mail Relay entry beside one entry per folder.

Home Assistant's core ``imap`` watches one folder per entry (its documentation
says to add an entry per folder), so its side is N entries. Mail Relay runs
both ways: one entry watching the N folders on one connection (NOTIFY on
Dovecot), and N single-folder entries, for the cost of the connections alone.
Every byte goes through the counting proxy; mail is stored by APPEND, unread
(core ``imap`` searches ``UnSeen``).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from typing import Any

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.mail_relay.const import CONF_FOLDERS, EVENT_NEW_MAIL
from custom_components.mail_relay.mail.imap import ImapClient
from custom_components.mail_relay.mail.models import Security, ServerSettings
from tests.mailserver import DovecotServer, MailUser

from .mailbox import tagged_message
from .proxy import ProxyControl
from .sides import (
    CORE_IMAP_EVENT,
    EventLog,
    core_imap_entry,
    mail_relay_entry,
    percentiles,
    wait_quiet,
    wait_until,
)

FOLDERS = ("INBOX", "Alarmes", "Factures", "Colis")
PER_FOLDER = 8  # messages delivered to each folder, one at a time
IDLE_WINDOW = 120.0  # seconds measured with nothing delivered (two IDLE renewals)
PEER_NAME = "Home Assistant core imap (one entry per folder)"


def _plain(dovecot: DovecotServer, user: MailUser) -> ServerSettings:
    return ServerSettings(
        dovecot.host, dovecot.imap_port, Security.NONE, user.username, user.password
    )


async def _make_folders(dovecot: DovecotServer, user: MailUser) -> None:
    client = ImapClient(_plain(dovecot, user), ssl_context=None)
    await client.connect()
    for folder in FOLDERS[1:]:
        await client.create_folder(folder)
    await client.logout()


async def _setup(
    side: str,
    hass: HomeAssistant,
    proxy: ProxyControl,
    dovecot: DovecotServer,
    user: MailUser,
) -> tuple[list[MockConfigEntry], list[str], EventLog]:
    """The side's entries, the proxy labels of their connections, its event log."""
    entries: list[MockConfigEntry] = []
    labels: list[str] = []
    if side == "mail_relay":
        label = "folders:mail_relay"
        entries.append(
            await mail_relay_entry(
                hass, proxy, label, dovecot, user, options={CONF_FOLDERS: FOLDERS}
            )
        )
        labels.append(f"{label}:imap")
    for index, folder in enumerate(FOLDERS if side != "mail_relay" else ()):
        label = f"folders:{side}:{index}"
        if side == "mail_relay_per_folder":
            entry = await mail_relay_entry(
                hass, proxy, label, dovecot, user, options={CONF_FOLDERS: [folder]}
            )
        else:
            entry = await core_imap_entry(
                hass, proxy, label, dovecot, user, folder=folder
            )
        entries.append(entry)
        labels.append(f"{label}:imap")
    event = CORE_IMAP_EVENT if side == "peer" else EVENT_NEW_MAIL
    log = EventLog(hass, event, {e.entry_id for e in entries})
    return entries, labels, log


async def _traffic(proxy: ProxyControl, labels: list[str]) -> tuple[int, int]:
    """Bytes through these labels so far, and their connections."""
    total = connections = 0
    for label in labels:
        stats = await proxy.stats(label)
        total += stats["s2c"] + stats["c2s"]
        connections += len(stats["connections"])
    return total, connections


async def _one_side(
    side: str,
    hass: HomeAssistant,
    dovecot: DovecotServer,
    proxy: ProxyControl,
    token: str,
) -> dict[str, Any]:
    user = dovecot.add_user()
    await _make_folders(dovecot, user)
    entries, labels, log = await _setup(side, hass, proxy, dovecot, user)
    for label in labels:
        await wait_quiet(proxy, label, quiet=2.0)
    # Idle: nothing delivered; what the connections cost to keep.
    before, connections = await _traffic(proxy, labels)
    await asyncio.sleep(IDLE_WINDOW)
    after, _ = await _traffic(proxy, labels)

    rng = random.Random(20261202)
    sent: dict[str, tuple[str, float]] = {}
    client = ImapClient(_plain(dovecot, user), ssl_context=None)
    await client.connect()
    for round_ in range(PER_FOLDER):
        for folder in FOLDERS:
            await asyncio.sleep(rng.uniform(0.3, 1.0))
            subject = f"{folder} {round_} {token}"
            await client.append(
                folder, tagged_message(subject, user.address), seen=False
            )
            sent[subject] = (folder, time.time())
    await client.logout()
    await wait_until(lambda: len(log.first_by_subject()) >= len(sent), timeout=120)
    await asyncio.sleep(2)  # late duplicates would show here

    first = log.first_by_subject()
    per_folder: dict[str, Any] = {}
    for folder in FOLDERS:
        samples = [
            (first[s] - at) * 1000
            for s, (f, at) in sent.items()
            if f == folder and s in first
        ]
        per_folder[folder] = {"events": len(samples)} | percentiles(samples)
    wrong_folder = sum(
        1
        for subject, _, data in log.events
        if side != "peer" and data.get("folder") != sent.get(subject, ("",))[0]
    )
    out = {
        "entries": len(entries),
        "connections": connections,
        "idle_bytes_per_minute": round((after - before) * 60 / IDLE_WINDOW),
        "events": len(log.events),
        "missed": len(sent) - len([s for s in sent if s in first]),
        "duplicates": log.duplicates(),
        "wrong_folder": wrong_folder,
        "latency_by_folder": per_folder,
    }
    if side == "mail_relay":
        out["other_folders_by_notify"] = entries[0].runtime_data.coordinator.notify
    log.close()
    for entry in entries:
        assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    return out


async def bench_multi_folder(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    proxy: ProxyControl,
    record: Any,
) -> None:
    """Four folders of one account watched for 2 idle minutes, then 8 mails each."""
    token = secrets.token_hex(3)
    result: dict[str, Any] = {
        "folders": list(FOLDERS),
        "messages_per_folder": PER_FOLDER,
        "idle_window_s": IDLE_WINDOW,
    }
    for side in ("mail_relay", "mail_relay_per_folder", "peer"):
        try:
            result[side] = await _one_side(side, hass, dovecot, proxy, token)
        except Exception as exc:  # a side that cannot run says why
            result[side] = {"status": "error", "error": repr(exc)}
    result["peer"]["name"] = PEER_NAME
    record("multi_folder", result)
