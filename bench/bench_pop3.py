"""POP3 scenario: a 5,000-message maildrop polled with nothing new, then with 10 new.

Mail Relay polls through Home Assistant (its entry, its scheduler: the poll is
started by moving Home Assistant's clock past the poll interval). No Home
Assistant integration speaks POP3, so the peer is a plain ``poplib`` script doing
what a naive client does on every poll: LIST, then RETR every message.
"""

from __future__ import annotations

import asyncio
import poplib
import ssl
import statistics
import time
import traceback
from datetime import timedelta
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.mail_relay.const import CONF_POLL_INTERVAL, EVENT_NEW_MAIL
from tests.mailserver import DovecotServer, MailUser, TestCertificate

from .mailbox import deliver_timed, fill_maildir, tagged_message
from .proxy import ProxyControl
from .sides import NOT_AVAILABLE, EventLog, mail_relay_entry, mail_relay_has

MAILDROP = 5_000
NEW = 10
REPEAT = 3
INTERVAL = 300
PEER_NAME = "plain poplib script (LIST + RETR all, as a naive client)"


def naive_poll(port: int, user: MailUser, context: ssl.SSLContext) -> dict[str, Any]:
    """What a client without state does: download everything, every time."""
    start = time.perf_counter()
    client = poplib.POP3_SSL("127.0.0.1", port, context=context, timeout=60)
    try:
        client.user(user.username)
        client.pass_(user.password)
        _, listing, _ = client.list()
        for line in listing:
            client.retr(int(line.split()[0]))
        client.quit()
    finally:
        client.close()
    return {"seconds": time.perf_counter() - start, "messages": len(listing)}


def _warm(server: DovecotServer, user: MailUser, context: ssl.SSLContext) -> int:
    """Let Dovecot index the maildrop before anything is measured."""
    client = poplib.POP3_SSL(server.host, server.pop3s_port, context=context)
    try:
        client.user(user.username)
        client.pass_(user.password)
        count = client.stat()[0]
        client.uidl()
        client.quit()
    finally:
        client.close()
    return count


async def _new_connection(
    proxy: ProxyControl, label: str, known: int, timeout: float = 120
) -> dict[str, Any]:
    """Wait for the next proxied connection to finish; return its counters."""
    found: dict[str, Any] = {}

    async def done() -> bool:
        stats = await proxy.stats(label)
        conns = stats["connections"]
        if len(conns) > known and conns[known]["closed"] is not None:
            found.update(conns[known])
            return True
        return False

    deadline = time.monotonic() + timeout
    while not await done() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return found


async def bench_pop3(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_cert: TestCertificate,
    proxy: ProxyControl,
    record: Any,
) -> None:
    """Poll a big maildrop: Mail Relay through Home Assistant vs naive poplib."""
    user = dovecot.add_user()
    await hass.async_add_executor_job(fill_maildir, dovecot, user, MAILDROP)
    context = await hass.async_add_executor_job(mail_cert.client_context)
    count = await hass.async_add_executor_job(_warm, dovecot, user, context)
    assert count == MAILDROP, count
    naive_port = await proxy.add("pop3:peer:pop3", dovecot.host, dovecot.pop3s_port)

    result: dict[str, Any] = {"maildrop": MAILDROP, "new": NEW, "repeat": REPEAT}
    ours: dict[str, Any] = {}
    entry = None
    log = None
    if mail_relay_has("pop3"):
        try:
            start = time.time()
            entry = await mail_relay_entry(
                hass,
                proxy,
                "pop3:mail_relay",
                dovecot,
                user,
                protocol="pop3",
                options={CONF_POLL_INTERVAL: INTERVAL},
                setup=False,
            )
            log = EventLog(hass, EVENT_NEW_MAIL, {entry.entry_id})
            assert await hass.config_entries.async_setup(entry.entry_id)
            await hass.async_block_till_done()
            first = await _new_connection(proxy, "pop3:mail_relay:pop3", 0)
            ours["first_poll"] = {
                "seconds": round(first["closed"] - start, 3),
                "bytes_read": first["s2c"],
                "bytes_sent": first["c2s"],
                "events": len(log.events),
            }
        except Exception as exc:
            ours = {
                "status": "error",
                "error": traceback.format_exception_only(exc)[-1],
            }
            entry = None
    else:
        ours = dict(NOT_AVAILABLE)

    async def poll_ours() -> dict[str, Any]:
        assert log is not None
        known = len((await proxy.stats("pop3:mail_relay:pop3"))["connections"])
        before = len(log.events)
        trigger = time.time()
        async_fire_time_changed(
            hass, dt_util.utcnow() + timedelta(seconds=INTERVAL + 1)
        )
        conn = await _new_connection(proxy, "pop3:mail_relay:pop3", known)
        await hass.async_block_till_done()
        return {
            "seconds": conn["closed"] - trigger,
            "bytes_read": conn["s2c"],
            "bytes_sent": conn["c2s"],
            "events": len(log.events) - before,
        }

    async def poll_naive() -> dict[str, Any]:
        known = len((await proxy.stats("pop3:peer:pop3"))["connections"])
        out = await hass.async_add_executor_job(naive_poll, naive_port, user, context)
        conn = await _new_connection(proxy, "pop3:peer:pop3", known)
        return out | {"bytes_read": conn["s2c"], "bytes_sent": conn["c2s"]}

    def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "seconds_median": round(statistics.median(r["seconds"] for r in runs), 3),
            "seconds_runs": [round(r["seconds"], 3) for r in runs],
            "bytes_read": runs[-1]["bytes_read"],
            "bytes_sent": runs[-1]["bytes_sent"],
        } | ({"events": runs[-1]["events"]} if "events" in runs[-1] else {})

    # Nothing new: alternate the two sides, REPEAT times each.
    ours_idle: list[dict[str, Any]] = []
    naive_idle: list[dict[str, Any]] = []
    for _ in range(REPEAT):
        if entry is not None:
            ours_idle.append(await poll_ours())
        naive_idle.append(await poll_naive())

    # Ten new messages, then one poll each.
    subjects = [f"pop3 new {i}" for i in range(NEW)]
    await hass.async_add_executor_job(
        deliver_timed,
        dovecot,
        user,
        [tagged_message(s, user.address) for s in subjects],
    )
    if entry is not None:
        new_poll = await poll_ours()
        ours |= {
            "poll_nothing_new": summary(ours_idle),
            "poll_10_new": summary([new_poll]),
        }
        assert log is not None
        ours["events_for_new"] = sorted(s for s, _, _ in log.events if s in subjects)
        ours["events_total"] = len(log.events)
        log.close()
    naive_new = await poll_naive()
    result["mail_relay"] = ours
    result["peer"] = {
        "name": PEER_NAME,
        "poll_nothing_new": summary(naive_idle),
        "poll_10_new": summary([naive_new]),
    }
    record("pop3", result)
