"""SMTP scenario: 200 notifications through Mail Relay's notify entity and core smtp.

Both send to the same aiosmtpd (STARTTLS + AUTH, in a process of its own) through the counting proxy, one
notification after the other (each call waits for the previous), in two rounds per
side in A-B-B-A order so that drift on a noisy machine hits both alike.
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
ROUNDS = 2
SINK = "sink@example.org"  # not a local user: the server accepts it without relaying
PEER_NAME = "Home Assistant core smtp notify"


async def bench_smtp(
    hass: HomeAssistant,
    dovecot: DovecotServer,
    smtp_process: SmtpProcess,
    proxy: ProxyControl,
    record: Any,
) -> None:
    """Send 200 notifications with each side; count what the server accepted."""
    mail_user = dovecot.add_user()
    smtp_process.add_user(mail_user.address, mail_user.password)
    upstream = (smtp_process.host, smtp_process.ports["starttls"])
    senders: dict[str, Any] = {}
    result: dict[str, Any] = {"notifications": NOTIFICATIONS, "rounds": ROUNDS}
    # The YAML notify platform first: once an entity platform has loaded the
    # notify integration, its YAML configuration is no longer read.
    service = await core_smtp_notify(
        hass, proxy, "smtp:peer", upstream, mail_user, SINK
    )
    senders["peer"] = (service, {})
    if mail_relay_has("smtp"):
        try:
            entry = await mail_relay_entry(
                hass,
                proxy,
                "smtp:mail_relay",
                dovecot,
                mail_user,
                smtp=upstream,
                options={CONF_RECIPIENTS: [SINK]},
            )
            entity_id = notify_entity_of(hass, entry)
            assert entity_id is not None, "no notify entity"
            senders["mail_relay"] = ("send_message", {"entity_id": entity_id})
        except Exception as exc:
            result["mail_relay"] = {"status": "error", "error": repr(exc)}
    else:
        result["mail_relay"] = dict(NOT_AVAILABLE)

    tokens = {side: secrets.token_hex(3) for side in senders}
    baseline = {side: await proxy.stats(f"smtp:{side}:smtp") for side in senders}
    elapsed = dict.fromkeys(senders, 0.0)
    completions: dict[str, list[float]] = {side: [] for side in senders}
    failures = dict.fromkeys(senders, 0)
    per_round = NOTIFICATIONS // ROUNDS
    order = sorted(senders)  # mail_relay, peer
    for rnd in range(ROUNDS):
        for side in order if rnd % 2 == 0 else reversed(order):
            service_name, target = senders[side]
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

    for side in senders:
        stats = await proxy.stats(f"smtp:{side}:smtp")
        old_ids = {c["id"] for c in baseline[side]["connections"]}
        new = [c for c in stats["connections"] if c["id"] not in old_ids]
        result[side] = {
            "sent": NOTIFICATIONS,
            "accepted": await hass.async_add_executor_job(
                smtp_process.accepted, tokens[side]
            ),
            "errors_raised": failures[side],
            "seconds": round(elapsed[side], 3),
            "messages_per_s": round(NOTIFICATIONS / elapsed[side], 1),
            "tcp_connections": len(new),
            # Each TCP handshake plus each wait for the server's answer.
            "round_trips_per_message": round(
                (len(new) + sum(c["turns"] for c in new)) / NOTIFICATIONS, 2
            ),
            "bytes_sent": stats["c2s"] - baseline[side]["c2s"],
            "bytes_read": stats["s2c"] - baseline[side]["s2c"],
            "completion_s": [round(t, 4) for t in completions[side]],
        }
    result["peer"]["name"] = PEER_NAME
    record("smtp", result)
