"""Helpers for Home Assistant tests that wait on real mail servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from homeassistant.core import HomeAssistant


async def wait_for(
    hass: HomeAssistant, predicate: Callable[[], bool], timeout: float = 10.0
) -> float:
    """Wait (real time: the servers are real) until predicate holds; return when."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
    await hass.async_block_till_done()
    return time.monotonic()
