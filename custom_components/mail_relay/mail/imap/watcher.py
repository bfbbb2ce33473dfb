"""The IMAP watcher: turns new mail in one folder into events, exactly once.

Messages are tracked by UID and UIDVALIDITY with a high-water mark: each
change runs ``UID FETCH mark+1:* (UID)`` and fetches headers, structure and
only the first bytes of the text part; attachments are never downloaded.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import (
    ConnectError,
    MailError,
)
from ..message import MailEvent
from ..models import ServerSettings
from ..options import EventOptions, ImapWatchOptions, Timeouts
from ..trace import Trace
from .client import BATCH_SIZE, ImapClient
from .parse import FetchedMessage, build_event, text_bytes_for
from .syntax import _chunks

_LOGGER = logging.getLogger(__name__)


# -- state shared with the host ----------------------------------------------


@dataclass
class FolderState:
    """Where the watcher stands in one folder; the host persists it (``asdict``)."""

    uidvalidity: int | None
    last_uid: int  # highest UID already reported (UIDNEXT-1 at first start)


@dataclass
class WatchStatus:
    """What the host shows: connection, unread count, push in use, last error."""

    connected: bool
    unread: int | None
    idle: bool
    last_error: str | None


# -- the watcher ---------------------------------------------------------------


class ImapWatcher:
    """Watch one folder: exactly one ``on_message`` per new message.

    The high-water mark advances (and ``on_state`` runs) after each message,
    so a crash in the middle of a burst neither repeats nor loses mail.
    """

    def __init__(
        self,
        settings: ServerSettings,
        *,
        account: str,
        state: FolderState | None,
        on_message: Callable[[MailEvent], Awaitable[None]],
        on_state: Callable[[FolderState], None] | None = None,
        on_status: Callable[[WatchStatus], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        options: ImapWatchOptions | None = None,
        event: EventOptions | None = None,
        timeouts: Timeouts | None = None,
        trace: Trace | None = None,
    ) -> None:
        """Configure; nothing connects before ``connect_once()`` or ``run()``.

        ``state`` is the host's saved mark (None: first start, mail already in
        the folder is not reported); with a saved mark, mail that arrived
        while away is reported unless older than ``options.catchup_hours``.
        """
        options = options or ImapWatchOptions()
        self.settings = settings
        self.account = account
        self.folder = options.folder
        self.state = (
            FolderState(state.uidvalidity, state.last_uid)
            if state is not None
            else FolderState(None, 0)
        )
        self.status = WatchStatus(
            connected=False, unread=None, idle=False, last_error=None
        )
        self._on_message = on_message
        self._on_state = on_state
        self._on_status = on_status
        self._ssl_context = ssl_context
        self._options = options
        self._event = event or EventOptions()
        self._timeouts = timeouts or Timeouts()
        self._catchup_since = (
            datetime.now(UTC) - timedelta(hours=options.catchup_hours)
            if state is not None
            else None
        )
        self._trace = trace
        self._client: ImapClient | None = None

    # -- status ---------------------------------------------------------------

    def _set_status(
        self,
        *,
        connected: bool | None = None,
        idle: bool | None = None,
        unread: int | None = None,
        last_error: str | None = None,
        clear_error: bool = False,
    ) -> None:
        """Update the status; arguments left at None keep their value."""
        current = self.status
        updated = WatchStatus(
            connected=current.connected if connected is None else connected,
            unread=current.unread if unread is None else unread,
            idle=current.idle if idle is None else idle,
            last_error=None
            if clear_error
            else (current.last_error if last_error is None else last_error),
        )
        if updated == current:
            return
        self.status = updated
        if self._on_status is not None:
            self._on_status(updated)

    def _advance(self, state: FolderState) -> None:
        self.state = state
        if self._on_state is not None:
            self._on_state(FolderState(state.uidvalidity, state.last_uid))

    # -- connecting -------------------------------------------------------------

    async def connect_once(self) -> None:
        """Connect, log in, select the folder and settle the mark.

        Raises mail.errors; hosts use it at setup to tell "server down"
        from "password refused" before starting ``run()``.
        """
        await self._drop()
        client = ImapClient(
            self.settings,
            ssl_context=self._ssl_context,
            timeout=self._timeouts.io,
            trace=self._trace,
        )
        try:
            await client.connect()
            uidvalidity, uidnext = await client.select(self.folder)
        except BaseException:
            await client.logout()
            raise
        self._client = client
        self._settle_mark(uidvalidity, uidnext)
        if self.status.connected is False and self.status.last_error is not None:
            # Debug only: the host hears it through on_status and logs it once.
            _LOGGER.debug("Connection to %s is back", self.settings.host)
        self._set_status(
            connected=True,
            idle=self._options.push and "IDLE" in client.capabilities,
            clear_error=True,
        )

    def _settle_mark(self, uidvalidity: int, uidnext: int) -> None:
        known = self.state.uidvalidity
        if known == uidvalidity:
            return
        if known is not None:
            _LOGGER.warning(
                "UIDVALIDITY of %s on %s changed (%s -> %s): the server renumbered"
                " the folder; skipping its current mail instead of reporting it again",
                self.folder,
                self.settings.host,
                known,
                uidvalidity,
            )
        self._advance(FolderState(uidvalidity, max(uidnext - 1, 0)))

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.logout()

    async def close(self) -> None:
        """Log out; idempotent."""
        await self._drop()
        self._set_status(connected=False, idle=False)

    # -- running --------------------------------------------------------------

    async def run(self) -> None:
        """Watch until cancelled, reconnecting with backoff after failures.

        Fatal errors (refused password, OAuth-only, no STARTTLS, untrusted
        certificate) propagate: only the user can fix them.
        """
        failures = 0
        while True:
            try:
                client = self._client
                if client is None or not client.connected:
                    await self.connect_once()
                    client = self._client
                    assert client is not None
                await self.sync(client)
                failures = 0
                await self._watch(client)
            except Exception as err:
                await self._drop()
                if isinstance(err, MailError) and err.fatal:
                    self._set_status(connected=False, idle=False, last_error=str(err))
                    raise
                # Every other failure retries.
                if self.status.connected:
                    _LOGGER.debug("Connection to %s lost: %s", self.settings.host, err)
                if not isinstance(err, MailError):
                    _LOGGER.exception("Unexpected error while watching %s", self.folder)
                self._set_status(
                    connected=False,
                    idle=False,
                    last_error=str(err) or type(err).__name__,
                )
                failures += 1
                delay = self._timeouts.reconnect.delay(failures)
                _LOGGER.debug("Reconnecting to %s in %.1f s", self.settings.host, delay)
                await asyncio.sleep(delay)

    async def _watch(self, client: ImapClient) -> None:
        use_idle = self._options.push and "IDLE" in client.capabilities
        while True:
            if use_idle:
                await client.idle_wait(self._options.idle_renew)
            else:
                if await client.wait_closed(self._options.poll_interval):
                    raise ConnectError("the server closed the connection")
                await client.noop()
            await self.sync(client)

    async def sync(self, client: ImapClient) -> None:
        """Report every message above the mark, then refresh the unread count."""
        while True:
            client.take_new_mail_hint()
            uids = await client.new_uids(self.state.last_uid)
            for batch in _chunks(uids, BATCH_SIZE):
                await self._deliver(client, batch)
            unread = await client.unread_count()
            self._set_status(unread=unread)
            self._catchup_since = None
            # New mail announced while we were busy: aioimaplib drops such
            # notices outside IDLE, so look again rather than idle past it.
            if not client.take_new_mail_hint():
                return

    async def _deliver(self, client: ImapClient, batch: list[int]) -> None:
        fetched = await client.fetch_messages(
            batch, text_bytes=text_bytes_for(self._event.text_limit)
        )
        uidvalidity = self.state.uidvalidity
        delivered: list[int] = []
        for uid in batch:
            message = fetched.get(uid)
            if message is not None and not self._too_old(message):
                event = build_event(
                    message,
                    account=self.account,
                    folder=self.folder,
                    uidvalidity=uidvalidity,
                    text_limit=self._event.text_limit,
                    include_headers=self._event.include_headers,
                )
                try:
                    await self._on_message(event)
                except Exception:
                    _LOGGER.exception("Handler failed for message UID %s", uid)
                delivered.append(uid)
            self._advance(FolderState(uidvalidity, uid))
        if self._options.mark_seen and delivered:
            await client.mark_seen(delivered, check=False)

    def _too_old(self, message: FetchedMessage) -> bool:
        since = self._catchup_since
        if since is None or message.internal_date is None:
            return False
        if since.tzinfo is None:
            return message.internal_date.replace(tzinfo=None) < since
        return message.internal_date < since
