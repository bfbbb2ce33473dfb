"""The state file that lets ``watch`` restart without repeating lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from custom_components.mail_relay.mail.models import Protocol, ServerSettings

from .errors import CliError, Exit
from .output import say

STATE_VERSION = 1


def default_state_path() -> Path:
    """Where ``watch`` keeps its state unless told otherwise (XDG)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mail-relay" / "state.json"


def write_atomically(path: Path, text: str) -> None:
    """Write a file so that a crash leaves the old or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class StateFile:
    """The JSON file that lets ``watch`` restart without repeating lines.

    Saves run in a worker thread, one at a time; changes made during a save
    are written by the next one, and ``flush()`` waits for the last.
    """

    def __init__(self, path: Path) -> None:
        """Remember the path; ``load()`` reads it."""
        self.path = path
        self.accounts: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._dirty = False

    def load(self) -> None:
        """Read the file; a missing file is an empty state, a broken one an error."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as err:
            raise CliError(
                f"cannot read the state file {self.path}: {err.strerror}", Exit.OTHER
            ) from None
        try:
            data = json.loads(text)
            accounts = data["accounts"]
            if not isinstance(accounts, dict):
                raise TypeError("accounts is not an object")  # noqa: TRY301
        except (ValueError, KeyError, TypeError) as err:
            raise CliError(
                f"the state file {self.path} is damaged ({err}); fix it or delete it"
                " (then mail already in the mailboxes is not reported again, but"
                " mail that arrived while stopped is not reported either)",
                Exit.OTHER,
            ) from None
        self.accounts = accounts

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Record one watcher's state and save soon."""
        self.accounts[key] = value
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._save())

    async def _save(self) -> None:
        while self._dirty:
            self._dirty = False
            text = json.dumps(
                {"version": STATE_VERSION, "accounts": self.accounts}, indent=1
            )
            try:
                await asyncio.to_thread(write_atomically, self.path, text)
            except OSError as err:
                say(f"error: cannot write the state file {self.path}: {err}")
                return

    async def flush(self) -> None:
        """Wait until everything recorded is on disk."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self._dirty:
            await self._save()


def state_key(protocol: Protocol, settings: ServerSettings, folder: str = "") -> str:
    """Identify a mailbox; another server or login starts afresh."""
    base = f"{protocol.value}://{settings.username}@{settings.host}:{settings.port}"
    return f"{base}/{folder}" if folder else base
