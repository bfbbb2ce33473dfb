"""Set up each side of a comparison in one Home Assistant: Mail Relay and the peers.

Mail Relay is configured through its config entry (the same data the setup flow
writes); the peers are Home Assistant's own ``imap`` integration (config entry) and
``smtp`` notify platform (YAML). Every connection goes through the counting proxy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from homeassistant.const import CONF_PASSWORD
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.mail_relay import const as mr
from tests.mailserver import DovecotServer, MailUser

from .proxy import ProxyControl

PACKAGE = Path(__file__).resolve().parent.parent / "custom_components" / "mail_relay"
CORE_IMAP_EVENT = "imap_content"
NOT_AVAILABLE = {"status": "not available"}


def mail_relay_has(feature: str) -> bool:
    """Whether the merged code has this piece (imap, pop3 or smtp) yet."""
    files = {
        "imap": ["mail/imap/__init__.py", "coordinator.py"],
        "pop3": ["mail/pop3.py", "coordinator.py"],
        "smtp": ["mail/smtp.py", "notify.py"],
    }[feature]
    return all((PACKAGE / f).is_file() for f in files)


async def mail_relay_entry(
    hass: HomeAssistant,
    proxy: ProxyControl,
    label: str,
    server: DovecotServer,
    user: MailUser,
    *,
    protocol: str = "imap",
    smtp: tuple[str, int] | None = None,
    smtp_delay_ms: float = 0,
    options: dict[str, Any] | None = None,
    setup: bool = True,
) -> MockConfigEntry:
    """Add (and by default set up) a Mail Relay entry whose traffic is counted.

    ``smtp_delay_ms`` puts the SMTP server behind a link with that one-way delay.
    """
    upstream = server.imaps_port if protocol == "imap" else server.pop3s_port
    port = await proxy.add(f"{label}:{protocol}", server.host, upstream)
    data: dict[str, Any] = {
        mr.CONF_EMAIL: user.address,
        CONF_PASSWORD: user.password,
        mr.CONF_PROTOCOL: protocol,
        mr.CONF_INCOMING_HOST: "127.0.0.1",
        mr.CONF_INCOMING_PORT: port,
        mr.CONF_INCOMING_SECURITY: "ssl",
        mr.CONF_INCOMING_USERNAME: user.username,
        # Verified: SSL_CERT_FILE points at the test certificate (bench/conftest.py).
        mr.CONF_VERIFY_SSL: True,
    }
    if smtp is not None:
        smtp_port = await proxy.add(f"{label}:smtp", smtp[0], smtp[1], smtp_delay_ms)
        data |= {
            mr.CONF_SMTP_HOST: "127.0.0.1",
            mr.CONF_SMTP_PORT: smtp_port,
            mr.CONF_SMTP_SECURITY: "starttls",
            mr.CONF_SMTP_USERNAME: user.address,
        }
    opts = {mr.CONF_MARK_SEEN: False} | (options or {})
    entry = MockConfigEntry(
        domain=mr.DOMAIN,
        title=user.address,
        data=data,
        options=opts,
        unique_id=f"{user.address}:{protocol}",
    )
    entry.add_to_hass(hass)
    if setup:
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
    return entry


async def core_imap_entry(
    hass: HomeAssistant,
    proxy: ProxyControl,
    label: str,
    server: DovecotServer,
    user: MailUser,
    *,
    setup: bool = True,
    folder: str = "INBOX",
) -> MockConfigEntry:
    """Add (and set up) Home Assistant's own ``imap`` integration for this user.

    It supports implicit TLS only and checks certificates against certifi, which
    cannot be pointed at a private CA: it runs with ``verify_ssl: False``.
    """
    port = await proxy.add(f"{label}:imap", server.host, server.imaps_port)
    entry = MockConfigEntry(
        domain="imap",
        title=user.address,
        data={
            "username": user.username,
            CONF_PASSWORD: user.password,
            "server": "127.0.0.1",
            "port": port,
            "charset": "utf-8",
            "folder": folder,
            "search": "UnSeen UnDeleted",
            "event_message_data": ["text"],
            "max_message_size": 2048,
            "enable_push": True,
            "verify_ssl": False,
            "ssl_cipher_list": "python_default",
        },
        unique_id=f"{user.username}_{folder}_{port}",
    )
    entry.add_to_hass(hass)
    if setup:
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
    return entry


async def core_smtp_notify(
    hass: HomeAssistant,
    proxy: ProxyControl,
    smtp: tuple[str, int],
    user: MailUser,
    recipient: str,
    routes: dict[str, tuple[str, float]],
) -> None:
    """Set up Home Assistant's ``smtp`` notify services, one per route.

    ``routes`` maps a service name to (proxy label, one-way delay in ms). All go
    in one YAML setup: once an entity platform has loaded the notify
    integration, its YAML configuration is no longer read.
    """
    platforms = []
    for name, (label, delay_ms) in routes.items():
        port = await proxy.add(f"{label}:smtp", smtp[0], smtp[1], delay_ms)
        platforms.append(
            {
                "platform": "smtp",
                "name": name,
                "server": "127.0.0.1",
                "port": port,
                "encryption": "starttls",
                "username": user.address,
                CONF_PASSWORD: user.password,
                "sender": user.address,
                "recipient": recipient,
                "verify_ssl": False,
                "timeout": 15,
            }
        )
    assert await async_setup_component(hass, "notify", {"notify": platforms})
    await hass.async_block_till_done()
    for name in routes:
        assert hass.services.has_service("notify", name)


def notify_entity_of(hass: HomeAssistant, entry: MockConfigEntry) -> str | None:
    """Return the notify entity of a Mail Relay entry."""
    registry = er.async_get(hass)
    for item in er.async_entries_for_config_entry(registry, entry.entry_id):
        if item.domain == "notify":
            return item.entity_id
    return None


class EventLog:
    """Records the new-mail events of some entries with Home Assistant's fire time."""

    def __init__(
        self,
        hass: HomeAssistant,
        event_type: str,
        entry_ids: set[str] | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.events: list[tuple[str, float, dict[str, Any]]] = []
        self._entry_ids = entry_ids
        self._on_event = on_event
        self._unsub = hass.bus.async_listen(event_type, self._handle)

    @callback
    def _handle(self, event: Event) -> None:
        if (
            self._entry_ids is not None
            and event.data.get("entry_id") not in self._entry_ids
        ):
            return
        self.events.append(
            (
                str(event.data.get("subject")),
                event.time_fired_timestamp,
                dict(event.data),
            )
        )
        if self._on_event is not None:
            self._on_event(event)

    def close(self) -> None:
        self._unsub()

    def first_by_subject(self) -> dict[str, float]:
        first: dict[str, float] = {}
        for subject, fired, _ in self.events:
            first.setdefault(subject, fired)
        return first

    def duplicates(self) -> int:
        return len(self.events) - len({s for s, _, _ in self.events})


async def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.02
) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


async def wait_quiet(
    proxy: ProxyControl, label: str, quiet: float = 1.5, timeout: float = 60
) -> dict[str, Any]:
    """Wait until no byte went through ``label`` for ``quiet`` seconds; return stats."""
    deadline = time.monotonic() + timeout
    while True:
        stats = await proxy.stats(label)
        last = max(
            (
                max(c["last_s2c"] or 0, c["last_c2s"] or 0, c["opened"])
                for c in stats["connections"]
            ),
            default=0,
        )
        if (stats["connections"] and time.time() - last >= quiet) or (
            time.monotonic() > deadline
        ):
            return stats
        await asyncio.sleep(0.1)


def percentiles(samples: list[float]) -> dict[str, float | None]:
    """p50 / p95 / max of latencies in milliseconds."""
    if not samples:
        return {"p50_ms": None, "p95_ms": None, "max_ms": None, "min_ms": None}
    ordered = sorted(samples)

    def pct(q: float) -> float:
        pos = (len(ordered) - 1) * q
        lo = int(pos)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return {
        "p50_ms": round(pct(0.50), 1),
        "p95_ms": round(pct(0.95), 1),
        "max_ms": round(ordered[-1], 1),
        "min_ms": round(ordered[0], 1),
    }
