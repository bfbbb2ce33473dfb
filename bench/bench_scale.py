"""Scale: 50 IMAP accounts idling in one Home Assistant, then one message each.

Run once per side, each in a fresh pytest process (scripts/bench does this), so
that memory freed by one side cannot be reused by the other. CPU time, resident
memory and sockets are read from /proc for this process only: Dovecot and the
counting proxy are separate processes.
"""

from __future__ import annotations

import asyncio
import gc
import smtplib
import time
from typing import Any

import pytest
from homeassistant.core import HomeAssistant

from custom_components.mail_relay.const import EVENT_NEW_MAIL
from tests.mailserver import DovecotServer, MailUser

from .mailbox import tagged_message
from .proxy import ProxyControl
from .sides import (
    CORE_IMAP_EVENT,
    NOT_AVAILABLE,
    EventLog,
    core_imap_entry,
    mail_relay_entry,
    mail_relay_has,
    percentiles,
    wait_quiet,
    wait_until,
)
from .sysstats import cpu_seconds, open_sockets, rss_bytes

ACCOUNTS = 50
IDLE_SECONDS = 60
BASELINE_SECONDS = 10
PEER_NAME = "Home Assistant core imap"


def deliver_each(
    server: DovecotServer, items: list[tuple[MailUser, bytes]]
) -> list[float]:
    """One LMTP session, one message per recipient; acceptance times."""
    accepted = []
    with smtplib.LMTP(
        server.host, server.lmtp_port, local_hostname="localhost", timeout=60
    ) as lmtp:
        for user, message in items:
            lmtp.sendmail("sender@example.org", [user.address], message)
            accepted.append(time.time())
    return accepted


@pytest.mark.parametrize("side", ["mail_relay", "peer"])
async def bench_scale(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    proxy: ProxyControl,
    record: Any,
    side: str,
) -> None:
    """Measure one side; the report puts the two runs together."""
    if side == "mail_relay" and not mail_relay_has("imap"):
        record("scale", {side: dict(NOT_AVAILABLE)}, part=side)
        return
    label = f"scale:{side}"
    users = [dovecot.add_user() for _ in range(ACCOUNTS)]

    async def add(user: MailUser) -> Any:
        if side == "mail_relay":
            return await mail_relay_entry(hass, proxy, label, dovecot, user)
        return await core_imap_entry(hass, proxy, label, dovecot, user)

    # An empty Home Assistant first: what the harness itself costs.
    await hass.async_block_till_done()
    gc.collect()
    cpu0, rss0, sockets0 = cpu_seconds(), rss_bytes(), open_sockets()
    await asyncio.sleep(BASELINE_SECONDS)
    baseline_cpu = cpu_seconds() - cpu0

    start = time.perf_counter()
    entries = [await add(users[0])]
    await wait_quiet(proxy, f"{label}:imap", quiet=1.0)
    gc.collect()
    rss1 = rss_bytes()  # code loaded, one account: the rest is per-account cost
    entries += [await add(user) for user in users[1:]]
    setup_seconds = time.perf_counter() - start
    await wait_quiet(proxy, f"{label}:imap", quiet=2.0)
    gc.collect()
    cpu_a, rss_a, sockets_a = cpu_seconds(), rss_bytes(), open_sockets()
    wire_a = await proxy.stats(f"{label}:imap")
    await asyncio.sleep(IDLE_SECONDS)
    cpu_b, rss_b = cpu_seconds(), rss_bytes()
    wire_b = await proxy.stats(f"{label}:imap")
    idle_cpu = cpu_b - cpu_a

    event_type = EVENT_NEW_MAIL if side == "mail_relay" else CORE_IMAP_EVENT
    by_entry = {entry.entry_id: i for i, entry in enumerate(entries)}
    log = EventLog(hass, event_type, set(by_entry))
    items = [
        (user, tagged_message(f"scale {i:02d}", user.address))
        for i, user in enumerate(users)
    ]
    accepted = await hass.async_add_executor_job(deliver_each, dovecot, items)
    await wait_until(
        lambda: len({d["entry_id"] for _, _, d in log.events}) >= ACCOUNTS, 30
    )
    first: dict[int, float] = {}
    for _, fired, data in log.events:
        first.setdefault(by_entry[data["entry_id"]], fired)
    latencies = [(first[i] - accepted[i]) * 1000 for i in sorted(first)]
    log.close()

    out: dict[str, Any] = {
        "accounts": ACCOUNTS,
        "idle_seconds": IDLE_SECONDS,
        "setup_seconds": round(setup_seconds, 2),
        "cpu_seconds_idle": round(idle_cpu, 3),
        "cpu_percent_of_one_core": round(idle_cpu / IDLE_SECONDS * 100, 2),
        "cpu_percent_empty_home_assistant": round(
            baseline_cpu / BASELINE_SECONDS * 100, 2
        ),
        "rss_growth_bytes": rss_a - rss0,
        "rss_per_account_bytes": round((rss_a - rss1) / (ACCOUNTS - 1)),
        "rss_growth_while_idle_bytes": rss_b - rss_a,
        "open_sockets": sockets_a - sockets0,
        "open_connections_at_server": wire_a["open"],
        "bytes_while_idle": (wire_b["s2c"] - wire_a["s2c"])
        + (wire_b["c2s"] - wire_a["c2s"]),
        "events": len(log.events),
        "accounts_with_event": len(first),
        "duplicates": log.duplicates(),
        "samples_ms": latencies,
    } | percentiles(latencies)
    if side == "peer":
        out["name"] = PEER_NAME
    for entry in entries:
        assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    record("scale", {side: out}, part=side)
