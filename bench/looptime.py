"""How long any one callback holds the event loop, and whose it was.

Every callback the loop runs (a task step, a protocol's ``data_received``, a
timer) goes through ``asyncio.Handle._run``; while the meter is on, that is
wrapped to time each one. A callback is counted as a side's when the code it
runs lives in that side's package: the task's coroutine for a task step, the
function itself otherwise.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

OURS = "mail_relay/"
PEER = "homeassistant/components/imap/"


@dataclass
class Holds:
    """The longest holds of the loop seen while the meter ran."""

    longest_ms: float = 0.0
    longest_where: str = ""
    by_owner: dict[str, float] = field(default_factory=dict)
    over_50_ms: int = 0
    callbacks: int = 0


def _short(filename: str, name: str) -> str:
    for marker in ("site-packages/", "custom_components/", "lib/python"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{name}"


def _where(handle: asyncio.Handle) -> str:
    callback: Any = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro: Any = owner.get_coro()
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        if code is not None:
            return _short(code.co_filename, code.co_name)
    code = getattr(getattr(callback, "__func__", callback), "__code__", None)
    if code is not None:
        return _short(code.co_filename, code.co_name)
    return repr(callback)


@contextmanager
def measure_holds() -> Iterator[Holds]:
    """Time every callback of the running loop until the block ends."""
    holds = Holds()
    original = asyncio.Handle._run

    def timed(handle: asyncio.Handle) -> None:
        started = time.perf_counter()
        try:
            original(handle)
        finally:
            took = (time.perf_counter() - started) * 1000
            holds.callbacks += 1
            if took > 50:
                holds.over_50_ms += 1
            if took > 1 or took > holds.longest_ms:  # only look closer at long ones
                where = _where(handle)
                for owner, marker in (("mail_relay", OURS), ("peer", PEER)):
                    if marker in where:
                        holds.by_owner[owner] = max(holds.by_owner.get(owner, 0), took)
                if took > holds.longest_ms:
                    holds.longest_ms, holds.longest_where = took, where

    asyncio.Handle._run = timed  # type: ignore[method-assign]
    try:
        yield holds
    finally:
        asyncio.Handle._run = original  # type: ignore[method-assign]
