"""The token file: each account's OAuth2 sign-in, kept between runs.

One JSON file, readable by its owner only (0600 in a 0700 directory), holds
per address and token endpoint the client id (and secret) it was signed in
with and the latest tokens. It is rewritten atomically on every refresh,
because the provider may rotate the refresh token each time (Microsoft does):
losing the new one would mean signing in again.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custom_components.mail_relay.mail.oauth.tokens import OAuthClient, TokenSet

from .errors import usage_error
from .output import say
from .state import write_atomically

TOKENS_VERSION = 1
MAX_TOKEN_FILE = 1024 * 1024


def default_token_path() -> Path:
    """Where sign-ins are kept unless told otherwise (XDG config directory)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mail-relay" / "tokens.json"


@dataclass(frozen=True, slots=True)
class SignIn:
    """One stored sign-in: which app, and its tokens."""

    client: OAuthClient
    tokens: TokenSet = field(repr=False)


def sign_in_key(address: str, token_url: str) -> str:
    """One sign-in per address and authorization server."""
    return f"{address.strip().lower()} {token_url}"


class TokenFile:
    """The sign-ins of every account, read once, written on each change.

    Accounts of one run share one instance per path (``open_token_file``): each
    write holds every account's latest tokens, so one account's refresh never
    writes back another's used refresh token.
    """

    def __init__(self, path: Path) -> None:
        """Nothing is read until ``load``."""
        self.path = path
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        self._loaded = False

    def _read(self) -> None:
        try:
            if self.path.stat().st_size > MAX_TOKEN_FILE:
                raise usage_error(f"{self.path} is too large to be a token file")
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            raise usage_error(
                f"cannot read the token file {self.path}: {err}"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("sign_ins"), dict):
            raise usage_error(f"{self.path} is not a Mail Relay token file")
        if self.path.stat().st_mode & 0o077:
            say(f"warning: {self.path} is readable by other users; making it 0600")
            self.path.chmod(0o600)
        self._entries = {
            k: v for k, v in data["sign_ins"].items() if isinstance(v, dict)
        }

    async def load(self) -> None:
        """Read the file once (off the event loop); a missing file holds nothing."""
        async with self._lock:
            if not self._loaded:
                await asyncio.to_thread(self._read)
                self._loaded = True

    def get(self, key: str) -> SignIn | None:
        """Return the stored sign-in, or None (none, or unreadable)."""
        entry = self._entries.get(key)
        if entry is None or not isinstance(entry.get("client_id"), str):
            return None
        secret = entry.get("client_secret")
        try:
            tokens = TokenSet.from_json(entry.get("tokens") or {})
        except ValueError:
            return None
        return SignIn(
            OAuthClient(
                entry["client_id"], secret if isinstance(secret, str) else None
            ),
            tokens,
        )

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = json.dumps(
            {"version": TOKENS_VERSION, "sign_ins": self._entries}, indent=1
        )
        # mkstemp creates the temporary file 0600; the rename keeps the mode.
        write_atomically(self.path, text + "\n")

    async def put(self, key: str, sign_in: SignIn) -> None:
        """Store a sign-in (the rotated refresh token) before it is used again."""
        async with self._lock:
            self._entries[key] = {
                "client_id": sign_in.client.client_id,
                "client_secret": sign_in.client.client_secret,
                "tokens": sign_in.tokens.to_json(),
            }
            await asyncio.to_thread(self._write)


_OPEN: dict[Path, TokenFile] = {}


async def open_token_file(path: Path) -> TokenFile:
    """Return this run's one instance for a path, loaded."""
    resolved = path.expanduser().absolute()
    store = _OPEN.setdefault(resolved, TokenFile(resolved))
    await store.load()
    return store
