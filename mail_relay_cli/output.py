"""What the command prints: notes on stderr, a spinner, JSON lines on stdout."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from collections.abc import AsyncIterator

from custom_components.mail_relay.mail.message import MailEvent


def say(message: str) -> None:
    """Tell the user something on stderr (stdout is for results)."""
    print(message, file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def progress(message: str) -> AsyncIterator[None]:
    """Show that something slow is running: a spinner on a terminal, else a line."""
    stream = sys.stderr
    started = time.monotonic()
    if not stream.isatty():
        say(message + "...")
        yield
        return

    async def spin() -> None:
        for frame in itertools.cycle("|/-\\"):
            elapsed = time.monotonic() - started
            stream.write(f"\r{frame} {message}... {elapsed:.0f} s ")
            stream.flush()
            await asyncio.sleep(0.1)

    task = asyncio.create_task(spin())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        stream.write("\r\x1b[K")
        stream.flush()


class Output:
    """Print one JSON line per message; stop everything if the reader went away."""

    def __init__(self, stop: asyncio.Event) -> None:
        """Share the stop signal with the watchers."""
        self._stop = stop

    def emit(self, entry_id: str | None, event: MailEvent) -> None:
        """Write the Home Assistant event payload as one line."""
        data = {"entry_id": entry_id, **event.as_dict()}
        try:
            sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader is gone (``| head -1``): nothing more to do.
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            self._stop.set()
