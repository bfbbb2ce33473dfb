"""SMTP scenario: notifications through Mail Relay's notify entity and core smtp.

Both send to the same aiosmtpd (STARTTLS + AUTH, in a process of its own) through
the counting proxy, one notification after the other (each call waits for the
previous), in two rounds per side in A-B-B-A order so that drift on a noisy
machine hits both alike. Twice: on loopback (200 notifications, the issue's
target), and behind a link with a 20 ms round trip (40 notifications), where
round trips rather than CPU set the pace, as they do between a home and a
provider's server.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from homeassistant.core import HomeAssistant

from custom_components.mail_relay.const import CONF_RECIPIENTS
from tests.mailserver import DovecotServer

from .conftest import SmtpProcess
from .proxy import ProxyControl
from .sides import (
    NOT_AVAILABLE,
    core_smtp_notify,
    mail_relay_entry,
    mail_relay_has,
    notify_entity_of,
)

NOTIFICATIONS = 200
LINK_NOTIFICATIONS = 40
LINK_DELAY_MS = 10  # each way: a 20 ms round trip
ROUNDS = 2
SINK = "sink@example.org"  # not a local user: the server accepts it without relaying
PEER_NAME = "Home Assistant core smtp notify"

type Sender = tuple[str, dict[str, Any], str]  # service, target, proxy label


async def _measure(
    hass: HomeAssistant,
    proxy: ProxyControl,
    smtp_process: SmtpProcess,
    senders: dict[str, Sender],
    notifications: int,
) -> dict[str, Any]:
    """Send ``notifications`` per side, one after the other; count what arrived."""
    tokens = {side: secrets.token_hex(3) for side in senders}
    baseline = {side: await proxy.stats(senders[side][2]) for side in senders}
    elapsed = dict.fromkeys(senders, 0.0)
    completions: dict[str, list[float]] = {side: [] for side in senders}
    failures = dict.fromkeys(senders, 0)
    per_round = notifications // ROUNDS
    order = sorted(senders)  # mail_relay, peer
    for rnd in range(ROUNDS):
        for side in order if rnd % 2 == 0 else reversed(order):
            service_name, target, _ = senders[side]
            start = time.perf_counter()
            for i in range(per_round):
                number = rnd * per_round + i
                try:
                    await hass.services.async_call(
                        "notify",
                        service_name,
                        target
                        | {
                            "message": f"Notification {number} from the benchmark.",
                            "title": f"bench smtp {tokens[side]} {number:03d}",
                        },
                        blocking=True,
                    )
                except Exception:
                    failures[side] += 1
                completions[side].append(elapsed[side] + time.perf_counter() - start)
            elapsed[side] += time.perf_counter() - start

    result: dict[str, Any] = {}
    for side in senders:
        stats = await proxy.stats(senders[side][2])
        old_ids = {c["id"] for c in baseline[side]["connections"]}
        new = [c for c in stats["connections"] if c["id"] not in old_ids]
        result[side] = {
            "sent": notifications,
            "accepted": await hass.async_add_executor_job(
                smtp_process.accepted, tokens[side]
            ),
            "errors_raised": failures[side],
            "seconds": round(elapsed[side], 3),
            "messages_per_s": round(notifications / elapsed[side], 1),
            "tcp_connections": len(new),
            # Each TCP handshake plus each wait for the server's answer.
            "round_trips_per_message": round(
                (len(new) + sum(c["turns"] for c in new)) / notifications, 2
            ),
            "bytes_sent": stats["c2s"] - baseline[side]["c2s"],
            "bytes_read": stats["s2c"] - baseline[side]["s2c"],
            "completion_s": [round(t, 4) for t in completions[side]],
        }
    return result


async def bench_smtp(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    smtp_process: SmtpProcess,
    proxy: ProxyControl,
    record: Any,
) -> None:
    """Send notifications with each side, on loopback and over a slower link."""
    upstream = (smtp_process.host, smtp_process.ports["starttls"])
    links = {"loopback": 0, "link": LINK_DELAY_MS}
    users = {link: dovecot.add_user() for link in links}
    for user in users.values():
        smtp_process.add_user(user.address, user.password)
    # The core services first, in one YAML setup (see core_smtp_notify).
    await core_smtp_notify(
        hass,
        proxy,
        upstream,
        users["loopback"],
        SINK,
        {
            f"core_smtp_{link}": (f"smtp:peer:{link}", delay)
            for link, delay in links.items()
        },
    )
    senders: dict[str, dict[str, Sender]] = {
        link: {"peer": (f"core_smtp_{link}", {}, f"smtp:peer:{link}:smtp")}
        for link in links
    }
    result: dict[str, Any] = {
        "notifications": NOTIFICATIONS,
        "rounds": ROUNDS,
        "link": {
            "notifications": LINK_NOTIFICATIONS,
            "round_trip_ms": 2 * LINK_DELAY_MS,
        },
    }
    missing: dict[str, Any] | None = None
    if mail_relay_has("smtp"):
        try:
            for link, delay in links.items():
                label = f"smtp:mail_relay:{link}"
                entry = await mail_relay_entry(
                    hass,
                    proxy,
                    label,
                    dovecot,
                    users[link],
                    smtp=upstream,
                    smtp_delay_ms=delay,
                    options={CONF_RECIPIENTS: [SINK]},
                )
                entity_id = notify_entity_of(hass, entry)
                assert entity_id is not None, "no notify entity"
                senders[link]["mail_relay"] = (
                    "send_message",
                    {"entity_id": entity_id},
                    f"{label}:smtp",
                )
        except Exception as exc:
            missing = {"status": "error", "error": repr(exc)}
    else:
        missing = dict(NOT_AVAILABLE)
    if missing is not None:
        for link in links:
            senders[link].pop("mail_relay", None)

    result |= await _measure(
        hass, proxy, smtp_process, senders["loopback"], NOTIFICATIONS
    )
    result["link"] |= await _measure(
        hass, proxy, smtp_process, senders["link"], LINK_NOTIFICATIONS
    )
    for part in (result, result["link"]):
        if missing is not None:
            part["mail_relay"] = missing
        part["peer"]["name"] = PEER_NAME
    record("smtp", result)
