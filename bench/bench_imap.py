"""IMAP scenarios: push latency, burst, large message, big mailbox start.

Mail Relay and Home Assistant's core ``imap`` integration run in the same Home
Assistant against the same Dovecot; every byte goes through the counting proxy.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from homeassistant.core import Event, HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.mail_relay.const import EVENT_NEW_MAIL
from tests.mailserver import DovecotServer, MailUser, TestCertificate
from tests.reliability.corpus import CORPUS

from .looptime import measure_holds
from .mailbox import (
    IdleFloor,
    deliver_timed,
    fill_maildir,
    large_message,
    tagged_message,
)
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

PUSH_MESSAGES = 50
BURST_MESSAGES = 200
BIG_MAILBOX = 10_000
SIDES = ("mail_relay", "peer")
PEER_NAME = "Home Assistant core imap"


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "status": "error",
        "error": "".join(traceback.format_exception_only(exc)).strip(),
    }


async def _setup_side(
    side: str,
    hass: HomeAssistant,
    proxy: ProxyControl,
    label: str,
    dovecot: DovecotServer,
    user: MailUser,
) -> tuple[MockConfigEntry, EventLog]:
    if side == "mail_relay":
        entry = await mail_relay_entry(hass, proxy, label, dovecot, user)
        log = EventLog(hass, EVENT_NEW_MAIL, {entry.entry_id})
    else:
        entry = await core_imap_entry(hass, proxy, label, dovecot, user)
        log = EventLog(hass, CORE_IMAP_EVENT, {entry.entry_id})
    return entry, log


def _available(side: str) -> bool:
    return side == "peer" or mail_relay_has("imap")


async def _each_side[T](
    result: dict[str, Any], run: Callable[[str], Awaitable[T]]
) -> dict[str, T]:
    """Run ``run(side)`` for each side; a side that cannot run says why in ``result``."""
    done: dict[str, T] = {}
    for side in SIDES:
        if not _available(side):
            result[side] = dict(NOT_AVAILABLE)
            continue
        try:
            done[side] = await run(side)
        except Exception as exc:
            result[side] = _error(exc)
    return done


async def _start_floor(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_cert: TestCertificate,
    proxy: ProxyControl,
    label: str,
    user: MailUser,
    on_exists: Callable[[int, float], None],
) -> IdleFloor:
    """A bare IDLE client on ``user``'s INBOX, through the proxy as ``label``."""
    floor = IdleFloor(on_exists)
    port = await proxy.add(label, dovecot.host, dovecot.imaps_port)
    context = await hass.async_add_executor_job(mail_cert.client_context)
    await floor.start("127.0.0.1", port, user, context)
    return floor


async def _side_logs(
    sides: dict[str, Any],
    hass: HomeAssistant,
    proxy: ProxyControl,
    scenario: str,
    dovecot: DovecotServer,
    user: MailUser,
) -> dict[str, EventLog]:
    """Set up every side on ``user``'s mailbox; return each one's event log."""
    entries = await _each_side(
        sides,
        lambda side: _setup_side(
            side, hass, proxy, f"{scenario}:{side}", dovecot, user
        ),
    )
    return {side: log for side, (_, log) in entries.items()}


async def bench_push_latency(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_cert: TestCertificate,
    proxy: ProxyControl,
    record: Any,
) -> None:
    """50 single messages at random intervals, all three clients watching together."""
    user = dovecot.add_user()
    token = secrets.token_hex(3)
    floor_seen: dict[int, float] = {}

    def on_exists(count: int, when: float) -> None:
        for index in range(count):
            floor_seen.setdefault(index, when)

    floor = await _start_floor(
        hass, dovecot, mail_cert, proxy, "push:floor", user, on_exists
    )
    sides: dict[str, Any] = {}
    logs = await _side_logs(sides, hass, proxy, "push", dovecot, user)
    await asyncio.sleep(2)  # every client reaches IDLE

    rng = random.Random(20250423)
    subjects = [f"push {i:03d} {token}" for i in range(PUSH_MESSAGES)]
    accepted: list[float] = []
    for subject in subjects:
        await asyncio.sleep(rng.uniform(0.3, 1.5))
        message = tagged_message(subject, user.address)
        accepted += await hass.async_add_executor_job(
            deliver_timed, dovecot, user, [message]
        )

    def complete() -> bool:
        return len(floor_seen) >= PUSH_MESSAGES and all(
            len(log.first_by_subject()) >= PUSH_MESSAGES for log in logs.values()
        )

    await wait_until(complete, timeout=10)
    await floor.stop()

    floor_ms = [
        (floor_seen[i] - accepted[i]) * 1000
        for i in range(PUSH_MESSAGES)
        if i in floor_seen
    ]
    result: dict[str, Any] = {
        "messages": PUSH_MESSAGES,
        "interval_s": [0.3, 1.5],
        "floor": {"client": "bare IDLE client (asyncio + ssl)", "samples_ms": floor_ms}
        | percentiles(floor_ms),
    }
    for side, log in logs.items():
        first = log.first_by_subject()
        samples = [
            (first[s] - accepted[i]) * 1000
            for i, s in enumerate(subjects)
            if s in first
        ]
        stats = await proxy.stats(f"push:{side}:imap")
        sides[side] = {
            "events": len(log.events),
            "distinct": len(first),
            "missed": PUSH_MESSAGES - len(first),
            "duplicates": log.duplicates(),
            "samples_ms": samples,
            "bytes_read": stats["s2c"],
            "bytes_sent": stats["c2s"],
        } | percentiles(samples)
        log.close()
    # Percentiles over different sets of messages are not comparable when one
    # side misses messages: also compare on the messages every client reported.
    firsts = {side: log.first_by_subject() for side, log in logs.items()}
    common = [
        i
        for i, s in enumerate(subjects)
        if i in floor_seen and all(s in f for f in firsts.values())
    ]
    paired: dict[str, Any] = {"messages": len(common)}
    paired["floor"] = percentiles(
        [(floor_seen[i] - accepted[i]) * 1000 for i in common]
    )
    for side, first in firsts.items():
        paired[side] = percentiles(
            [(first[subjects[i]] - accepted[i]) * 1000 for i in common]
        )
    if len(firsts) == 2:
        diffs = sorted(
            (firsts["mail_relay"][subjects[i]] - firsts["peer"][subjects[i]]) * 1000
            for i in common
        )
        paired["mail_relay_minus_peer_median_ms"] = (
            round(diffs[len(diffs) // 2], 1) if diffs else None
        )
    result["paired"] = paired
    sides["peer"]["name"] = PEER_NAME
    record("push_latency", result | sides)


async def bench_burst(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_cert: TestCertificate,
    proxy: ProxyControl,
    record: Any,
) -> None:
    """200 messages in one LMTP session, as fast as Dovecot takes them."""
    user = dovecot.add_user()
    token = secrets.token_hex(3)
    floor_seen: list[tuple[int, float]] = []
    floor = await _start_floor(
        hass,
        dovecot,
        mail_cert,
        proxy,
        "burst:floor",
        user,
        lambda n, t: floor_seen.append((n, t)),
    )
    sides: dict[str, Any] = {}
    logs = await _side_logs(sides, hass, proxy, "burst", dovecot, user)
    await asyncio.sleep(2)

    subjects = [f"burst {i:03d} {token}" for i in range(BURST_MESSAGES)]
    messages = [tagged_message(s, user.address) for s in subjects]
    started = time.time()
    accepted = await hass.async_add_executor_job(deliver_timed, dovecot, user, messages)
    last_delivery = accepted[-1]

    # Wait for completeness, or until nothing new arrived for 5 s (15 s at most).
    def settled() -> bool:
        if all(len(log.first_by_subject()) >= BURST_MESSAGES for log in logs.values()):
            return True
        latest = max(
            (t for log in logs.values() for _, t, _ in log.events),
            default=last_delivery,
        )
        return time.time() - max(latest, last_delivery) > 5

    await wait_until(settled, timeout=15, interval=0.1)
    await asyncio.sleep(1)  # late duplicates would show up here
    await floor.stop()

    floor_last = max((t for n, t in floor_seen if n >= BURST_MESSAGES), default=None)
    result: dict[str, Any] = {
        "messages": BURST_MESSAGES,
        "delivery_s": round(last_delivery - started, 3),
        "floor": {
            "client": "bare IDLE client (asyncio + ssl)",
            "last_exists_after_last_delivery_ms": None
            if floor_last is None
            else round((floor_last - last_delivery) * 1000, 1),
            "exists_notifications": len(floor_seen),
        },
    }
    for side, log in logs.items():
        first = log.first_by_subject()
        wanted = [s for s in subjects if s in first]
        last_event = max((first[s] for s in wanted), default=None)
        stats = await proxy.stats(f"burst:{side}:imap")
        sides[side] = {
            "events": len(log.events),
            "distinct": len(first),
            "missed": BURST_MESSAGES - len(wanted),
            "duplicates": log.duplicates(),
            "last_delivery_to_last_event_ms": None
            if last_event is None
            else round((last_event - last_delivery) * 1000, 1),
            "bytes_read": stats["s2c"],
            "bytes_sent": stats["c2s"],
            # Completeness over time, for the chart: seconds after the last delivery.
            "event_offsets_s": sorted(
                round(first[s] - last_delivery, 3) for s in wanted
            ),
        }
        log.close()
    sides["peer"]["name"] = PEER_NAME
    record("burst", result | sides)


async def bench_loop_latency(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_cert: TestCertificate,
    proxy: ProxyControl,
    record: Any,
) -> None:
    """The longest any one callback holds the loop: a burst, then hostile mail.

    Each side alone on its own mailbox (both share aioimaplib, so a callback
    inside it belongs to whichever side is running): 200 messages in one LMTP
    session, then every mail of the hostile corpus (tests/reliability).
    """
    result: dict[str, Any] = {"messages": BURST_MESSAGES, "hostile": sorted(CORPUS)}
    token = secrets.token_hex(3)

    async def run(side: str) -> dict[str, Any]:
        user = dovecot.add_user()
        entry, log = await _setup_side(side, hass, proxy, f"loop:{side}", dovecot, user)
        await asyncio.sleep(2)
        burst = [
            tagged_message(f"loop {i:03d} {token}", user.address)
            for i in range(BURST_MESSAGES)
        ]
        hostile = [CORPUS[name]() for name in sorted(CORPUS)]
        out: dict[str, Any] = {}
        for phase, messages in (("burst", burst), ("hostile", hostile)):
            seen = len(log.events)
            with measure_holds() as holds:
                await hass.async_add_executor_job(
                    deliver_timed, dovecot, user, messages
                )
                # Every message reported (Mail Relay), or 20 s (core imap
                # reports one message per change), then quiet.
                wanted = seen + len(messages)
                await wait_until(lambda: len(log.events) >= wanted, timeout=20)  # noqa: B023
                await wait_quiet(proxy, f"loop:{side}:imap", quiet=3, timeout=90)
            out[phase] = {
                "events": len(log.events) - seen,
                "longest_hold_ms": round(holds.longest_ms, 1),
                "longest_where": holds.longest_where,
                "longest_own_hold_ms": round(holds.by_owner.get(side, 0.0), 1),
                "holds_over_50_ms": holds.over_50_ms,
                "callbacks": holds.callbacks,
            }
        log.close()
        await hass.config_entries.async_unload(entry.entry_id)
        return out

    sides = await _each_side(result, run)
    result.update(sides)
    result.setdefault("peer", {})["name"] = PEER_NAME
    record("loop_latency", result)


async def bench_large_message(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    proxy: ProxyControl,
    record: Any,
) -> None:
    """One 20 MB message with attachments; each side alone on its own mailbox."""
    result: dict[str, Any] = {}
    result |= await _each_side(
        result, lambda side: _large_one(hass, dovecot, proxy, side)
    )
    result["peer"]["name"] = PEER_NAME
    record("large_message", result)


async def _large_one(
    hass: HomeAssistant, dovecot: DovecotServer, proxy: ProxyControl, side: str
) -> dict[str, Any]:
    user = dovecot.add_user()
    label = f"large:{side}"
    entry, log = await _setup_side(side, hass, proxy, label, dovecot, user)
    at_event: list[asyncio.Task[dict[str, Any]]] = []

    def snapshot(_event: Event) -> None:
        if not at_event:
            at_event.append(hass.async_create_task(proxy.stats(f"{label}:imap")))

    log._on_event = snapshot
    before = await wait_quiet(proxy, f"{label}:imap", quiet=1.0)
    message = await hass.async_add_executor_job(
        large_message, user.address, f"large {side}"
    )
    accepted = await hass.async_add_executor_job(
        deliver_timed, dovecot, user, [message]
    )
    await wait_until(lambda: bool(log.events), timeout=90, interval=0.05)
    stats_at_event = await at_event[0] if at_event else None
    after = await wait_quiet(proxy, f"{label}:imap", quiet=1.5)
    data = log.events[0][2] if log.events else {}
    out: dict[str, Any] = {
        "message_bytes": len(message),
        "event": bool(log.events),
        "latency_ms": round((log.events[0][1] - accepted[0]) * 1000, 1)
        if log.events
        else None,
        "bytes_read_before_event": None
        if stats_at_event is None
        else stats_at_event["s2c"] - before["s2c"],
        "bytes_read_total": after["s2c"] - before["s2c"],
        "event_has_subject": data.get("subject") == f"large {side}",
        "event_attachments": [a.get("filename") for a in data.get("attachments", [])]
        if isinstance(data.get("attachments"), list)
        else None,
        "event_text_chars": len(data.get("text") or ""),
    }
    log.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    return out


async def bench_big_mailbox(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    mail_cert: TestCertificate,
    proxy: ProxyControl,
    record: Any,
) -> None:
    """Start watching a folder that already holds 10,000 messages."""
    user = dovecot.add_user()
    await hass.async_add_executor_job(fill_maildir, dovecot, user, BIG_MAILBOX)
    # Let Dovecot build its index first (not measured), so neither side pays for it.
    context = await hass.async_add_executor_job(mail_cert.client_context)
    warm = IdleFloor(lambda n, t: None)
    exists = await warm.start(dovecot.host, dovecot.imaps_port, user, context)
    await warm.stop()
    assert exists == BIG_MAILBOX, exists

    result: dict[str, Any] = {"messages_in_folder": exists}
    result |= await _each_side(
        result, lambda side: _big_one(hass, dovecot, proxy, side, user)
    )
    result["peer"]["name"] = PEER_NAME
    record("big_mailbox", result)


async def _big_one(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    proxy: ProxyControl,
    side: str,
    user: MailUser,
) -> dict[str, Any]:
    label = f"big:{side}"
    start = time.time()
    entry, log = await _setup_side(side, hass, proxy, label, dovecot, user)
    setup_done = time.time()
    stats = await wait_quiet(proxy, f"{label}:imap", quiet=2.0)
    last_byte = max(
        max(c["last_s2c"] or 0, c["last_c2s"] or 0) for c in stats["connections"]
    )
    await asyncio.sleep(1)
    out = {
        "setup_call_s": round(setup_done - start, 3),
        "ready_s": round(max(last_byte, setup_done) - start, 3),
        "bytes_read": stats["s2c"],
        "bytes_sent": stats["c2s"],
        "events_fired": len(log.events),
        "connections": len(stats["connections"]),
    }
    log.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    return out
