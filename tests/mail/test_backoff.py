"""One backoff policy: the numbers, and the IMAP watcher follows them."""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

import pytest

from custom_components.mail_relay.mail.backoff import Backoff
from custom_components.mail_relay.mail.imap import ImapWatcher
from custom_components.mail_relay.mail.imap import watcher as watcher_module
from custom_components.mail_relay.mail.message import MailEvent
from custom_components.mail_relay.mail.models import Security, ServerSettings
from custom_components.mail_relay.mail.options import Timeouts


def test_default_is_one_second_to_five_minutes() -> None:
    backoff = Backoff()
    assert [backoff.base(n) for n in range(1, 12)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        300,
        300,
    ]
    assert backoff.base(10_000) == 300.0  # no overflow after days of outage


def test_jitter_bounds() -> None:
    backoff = Backoff(initial=1.0, maximum=300.0, jitter=(0.8, 1.2))
    for attempt in (1, 5, 9, 20):
        for _ in range(50):
            assert 0.8 * backoff.base(attempt) <= backoff.delay(attempt)
            assert backoff.delay(attempt) <= 1.2 * backoff.base(attempt)


def test_no_jitter_is_exact() -> None:
    backoff = Backoff(maximum=60.0, jitter=(1.0, 1.0))
    assert [backoff.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        Backoff().initial = 2.0  # type: ignore[misc]


async def _ignore(_event: MailEvent) -> None:
    raise AssertionError("no message without a server")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("pick", [min, max], ids=["low", "high"])
async def test_imap_watcher_waits_as_backoff_says(
    monkeypatch: pytest.MonkeyPatch, pick: Any
) -> None:
    """The watcher's reconnect waits equal ``Backoff``'s for the first tries.

    The server refuses connections; jitter is pinned to one end of its range
    and the watcher's sleeps are recorded instead of slept.
    """
    monkeypatch.setattr(random, "uniform", lambda a, b: pick(a, b))
    slept: list[float] = []
    real_sleep = asyncio.sleep
    attempts = 11

    async def record(delay: float, *args: Any) -> Any:
        if delay == 0:
            return await real_sleep(0, *args)
        slept.append(delay)
        if len(slept) >= attempts:
            raise asyncio.CancelledError
        return await real_sleep(0)

    monkeypatch.setattr(watcher_module.asyncio, "sleep", record)
    settings = ServerSettings(
        host="127.0.0.1",
        port=_closed_port(),
        security=Security.NONE,
        username="nobody",
        password="x",
    )
    watcher = ImapWatcher(
        settings,
        account="nobody",
        state=None,
        on_message=_ignore,
        on_state=lambda _state: None,
        on_status=lambda _status: None,
        ssl_context=None,
        timeouts=Timeouts(io=5.0),
    )
    with pytest.raises(asyncio.CancelledError):
        await watcher.run()
    await watcher.close()
    assert slept == [Backoff().delay(n) for n in range(1, attempts + 1)]
