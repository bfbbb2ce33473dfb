"""Where the password comes from; never the command line."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from custom_components.mail_relay.mail.models import Security, ServerSettings

from .account import Account
from .errors import usage_error
from .wire import MASKER

PASSWORD_ENV = "MAIL_RELAY_PASSWORD"  # noqa: S105  # a variable name


def _read_fd(fd: int) -> str:
    """Read one line (the password) from a file descriptor, then close it."""
    chunks: list[bytes] = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
            if b"\n" in chunk:
                break
    except OSError as err:
        raise usage_error(f"cannot read the password from fd {fd}: {err}") from None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return b"".join(chunks).split(b"\n", 1)[0].rstrip(b"\r").decode()


class PasswordSource:
    """Where the password comes from; a file descriptor can be read only once."""

    def __init__(self, fd: int | None) -> None:
        """Remember the options; nothing is read yet."""
        self._fd = fd
        self._from_fd: str | None = None

    async def get(self, username: str, spec: dict[str, Any] | None = None) -> str:
        """Return the password: config entry, fd, environment, then a prompt."""
        spec = spec or {}
        if "password_env" in spec:
            name = str(spec["password_env"])
            if name not in os.environ:
                raise usage_error(f"the environment variable {name} is not set")
            return os.environ[name]
        if "password_file" in spec:
            path = Path(str(spec["password_file"])).expanduser()
            try:
                text = await asyncio.to_thread(path.read_text)
            except OSError as err:
                raise usage_error(f"cannot read {path}: {err.strerror}") from None
            return text.splitlines()[0] if text else ""
        if "password" in spec:
            return str(spec["password"])
        # The fd and the prompt block the loop on purpose: nothing else runs
        # yet, and Ctrl-C at the prompt must interrupt at once.
        if self._fd is not None:
            if self._from_fd is None:
                self._from_fd = _read_fd(self._fd)
            return self._from_fd
        if PASSWORD_ENV in os.environ:
            return os.environ[PASSWORD_ENV]
        if sys.stdin.isatty():
            return getpass.getpass(f"Password for {username}: ")
        raise usage_error(
            f"no password: run in a terminal to be asked, set {PASSWORD_ENV},"
            " or pass it on a file descriptor with --password-fd N"
        )


async def add_password(
    account: Account, source: PasswordSource, spec: dict[str, Any] | None = None
) -> Account:
    """Ask for the password once and put it into both servers."""
    login = account.incoming or account.smtp or ServerSettings("", 0, Security.SSL, "")
    password = await source.get(login.username or account.address, spec)
    MASKER.add(login.username, password)
    incoming = (
        replace(account.incoming, password=password) if account.incoming else None
    )
    smtp = account.smtp
    if smtp is not None and smtp.username:
        smtp = replace(smtp, password=password)
        MASKER.add(smtp.username, password)
    return replace(account, incoming=incoming, smtp=smtp)
