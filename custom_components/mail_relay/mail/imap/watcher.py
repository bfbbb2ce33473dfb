"""The IMAP watcher: turns new mail in one folder into events, exactly once.

Messages are tracked by UID and UIDVALIDITY with a high-water mark: each
change runs ``UID FETCH mark+1:* (UID)`` and fetches headers, structure and
only the first bytes of the text part; attachments are never downloaded.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from ..errors import (
    ConnectError,
    MailError,
    TokenExpiredError,
)
from ..message import MailEvent
from ..models import ServerSettings
from ..options import EventOptions, ImapWatchOptions, Timeouts
from ..trace import Trace
from .client import BATCH_SIZE, SEARCH_WINDOW, ImapClient
from .parse import FetchedMessage, build_event, text_bytes_for
from .syntax import _chunks

_LOGGER = logging.getLogger(__name__)

# Message-IDs remembered for a renumbered folder: more than one burst's worth.
RECENT_IDS_KEPT = 200
# An OAuth2 session is renewed this long before its token expires (Exchange
# ends it at expiry with "* BYE ... AccessTokenExpired").
TOKEN_RENEW_MARGIN = 120.0


# -- state shared with the host ----------------------------------------------


@dataclass
class FolderState:
    """Where the watcher stands in one folder; the host persists it (``asdict``)."""

    uidvalidity: int | None
    last_uid: int  # highest UID already reported (UIDNEXT-1 at first start)
    # When the newest reported mail arrived (INTERNALDATE, ISO), and the
    # Message-IDs of the last ones: after the server renumbers the folder
    # (UIDVALIDITY changed, the folder recreated) old UIDs mean nothing, so
    # mail that arrived after that moment is reported, and what was already
    # reported is recognised by its Message-ID.
    last_arrival: str | None = None
    recent_ids: list[str] = field(default_factory=list)

    @classmethod
    def from_saved(cls, saved: object) -> FolderState | None:
        """Read what a host saved (``asdict``); None if it is not a state."""
        if not isinstance(saved, dict):
            return None
        try:
            ids = saved.get("recent_ids") or []
            return cls(
                uidvalidity=None
                if saved["uidvalidity"] is None
                else int(saved["uidvalidity"]),
                last_uid=int(saved["last_uid"]),
                last_arrival=saved.get("last_arrival") or None,
                recent_ids=[str(i) for i in ids][-RECENT_IDS_KEPT:],
            )
        except (KeyError, TypeError, ValueError):
            return None

    def copy(self) -> FolderState:
        """Return an independent copy (the host keeps what it is given)."""
        return replace(self, recent_ids=list(self.recent_ids))


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
        self.state = state.copy() if state is not None else FolderState(None, 0)
        # Set when the server renumbered the folder: (UIDVALIDITY, UIDNEXT).
        self._renumbered: tuple[int, int] | None = None
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

    @property
    def dead_link_bound(self) -> float:
        """The longest a silently dead link can go unnoticed in IDLE, in seconds.

        A renewal's DONE is sent at most ``idle_renew`` after the link died and
        is declared unanswered ``io`` seconds later (see ``ImapWatchOptions``).
        """
        return self._options.idle_renew + self._timeouts.io

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
            self._on_state(state.copy())

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
        if known is not None and self.state.last_arrival is not None:
            _LOGGER.warning(
                "UIDVALIDITY of %s on %s changed (%s -> %s): the server renumbered"
                " the folder; reporting the mail that arrived after %s",
                self.folder,
                self.settings.host,
                known,
                uidvalidity,
                self.state.last_arrival,
            )
            # The mark stays in the old numbering until the catch-up is done:
            # a crash meanwhile redoes it (Message-IDs prevent repeats).
            self._renumbered = (uidvalidity, uidnext)
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
        self._advance(
            replace(
                self.state.copy(), uidvalidity=uidvalidity, last_uid=max(uidnext - 1, 0)
            )
        )

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
        renew = False  # sign in with a fresh token next
        expired_again = False  # the last session also ended with its token
        while True:
            try:
                if renew:
                    renew = False
                    await self._renew_token()
                client = self._client
                if client is None or not client.connected:
                    await self.connect_once()
                    client = self._client
                    assert client is not None
                await self.sync(client)
                failures = 0
                expired_again = False
                renew = await self._watch(client)
            except Exception as err:
                await self._drop()
                if isinstance(err, TokenExpiredError) and not expired_again:
                    # Not a failure: sign in again now, with a fresh token
                    # (a server that keeps doing it gets the usual backoff).
                    _LOGGER.debug("%s ended the session: %s", self.settings.host, err)
                    self._set_status(connected=False, idle=False)
                    renew = expired_again = True
                    continue
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

    async def _watch(self, client: ImapClient) -> bool:
        """Wait for changes and sync; return True when the token needs renewing.

        An OAuth2 session ends ``TOKEN_RENEW_MARGIN`` before its token
        expires; ``run()`` then signs in again with a fresh token and syncs
        from the mark, so nothing is missed or reported twice.
        """
        use_idle = self._options.push and "IDLE" in client.capabilities
        renew_at = self._renew_at()
        while True:
            wait = self._options.idle_renew if use_idle else self._options.poll_interval
            if renew_at is not None:
                left = renew_at - time.time()
                if left <= 0:
                    await self._drop()
                    return True
                wait = min(wait, left)
            if use_idle:
                await client.idle_wait(wait)
            else:
                if await client.wait_closed(wait):
                    raise ConnectError("the server closed the connection")
                await client.noop()
            await self.sync(client)

    def _renew_at(self) -> float | None:
        """When this session should be renewed (None: not OAuth, or no expiry).

        A token that already expires within the margin (a provider with very
        short tokens) is not renewed early: its session runs until the server
        ends it.
        """
        source = self.settings.token_source
        expires_at = source.expires_at if source is not None else None
        if expires_at is None:
            return None
        renew_at = expires_at - TOKEN_RENEW_MARGIN
        return renew_at if renew_at > time.time() else None

    async def _renew_token(self) -> None:
        """Get a fresh token for the next sign-in (the old one is about to die)."""
        source = self.settings.token_source
        if source is not None:
            _LOGGER.debug("Renewing the OAuth2 session with %s", self.settings.host)
            await source.access_token(force_refresh=True)

    async def sync(self, client: ImapClient) -> None:
        """Report every message above the mark, then refresh the unread count.

        The folder's UIDNEXT, asked first, bounds the search: each round
        covers at most ``SEARCH_WINDOW`` UIDs below it, and the mark moves to
        the end of the round (no UID there can appear later: new mail gets
        UIDNEXT or above). Without UIDNEXT, rounds go on while they are full.
        """
        if self._renumbered is not None:
            await self._catch_up_renumbered(client, *self._renumbered)
            self._renumbered = None
        while True:
            client.take_new_mail_hint()
            uidnext = await client.uidnext(self.folder)
            while True:
                mark = self.state.last_uid
                uids = await client.new_uids(mark, uidnext)
                for batch in _chunks(uids, BATCH_SIZE):
                    await self._deliver(client, batch)
                if uidnext is None:
                    if len(uids) < SEARCH_WINDOW:
                        break
                    continue
                end = min(uidnext - 1, mark + SEARCH_WINDOW)
                if self.state.last_uid < end:
                    self._advance(replace(self.state.copy(), last_uid=end))
                if end >= uidnext - 1:
                    break
            unread = await client.unread_count()
            self._set_status(unread=unread)
            self._catchup_since = None
            # New mail announced while we were busy: aioimaplib drops such
            # notices outside IDLE, so look again rather than idle past it.
            if not client.take_new_mail_hint():
                return

    async def _deliver(
        self, client: ImapClient, batch: list[int], *, renumbered: int | None = None
    ) -> None:
        """Report the messages of ``batch``, advancing the mark after each.

        With ``renumbered`` (the new UIDVALIDITY) the batch comes from a
        renumbered folder: mail reported before (by Message-ID) is skipped and
        the mark keeps the old numbering; the caller moves it at the end.
        """
        fetched = await client.fetch_messages(
            batch, text_bytes=text_bytes_for(self._event.text_limit)
        )
        uidvalidity = self.state.uidvalidity if renumbered is None else renumbered
        delivered: list[int] = []
        for uid in batch:
            state = self.state.copy()
            if renumbered is None:
                state.last_uid = uid
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
                if renumbered is None or event.message_id not in state.recent_ids:
                    try:
                        await self._on_message(event)
                    except Exception:
                        _LOGGER.exception("Handler failed for message UID %s", uid)
                    delivered.append(uid)
                    _remember(state, message, event)
            self._advance(state)
        if self._options.mark_seen and delivered:
            await client.mark_seen(delivered, check=False)

    async def _catch_up_renumbered(
        self, client: ImapClient, uidvalidity: int, uidnext: int
    ) -> None:
        """Report what arrived after the last reported mail, in the new numbering."""
        last = self.state.last_arrival
        assert last is not None  # _settle_mark only renumbers with one
        since = max(
            datetime.fromisoformat(last),
            datetime.now(UTC) - timedelta(hours=self._options.catchup_hours),
        )
        self._catchup_since = since
        # SEARCH SINCE ignores the time and the zone: a day earlier, then
        # INTERNALDATE decides (_too_old).
        uids = await client.search_arrived_since(
            (since - timedelta(days=1)).date(), uidnext
        )
        for batch in _chunks(uids, BATCH_SIZE):
            await self._deliver(client, batch, renumbered=uidvalidity)
        self._advance(
            replace(self.state.copy(), uidvalidity=uidvalidity, last_uid=uidnext - 1)
        )

    def _too_old(self, message: FetchedMessage) -> bool:
        """Say whether the message arrived before the catch-up window starts."""
        since = self._catchup_since
        if since is None or message.internal_date is None:
            return False
        if since.tzinfo is None:
            return message.internal_date.replace(tzinfo=None) < since
        return message.internal_date < since


def _remember(state: FolderState, message: FetchedMessage, event: MailEvent) -> None:
    """Note a reported message in ``state``: its arrival and its Message-ID."""
    if message.internal_date is not None:
        arrival = message.internal_date.isoformat()
        if (
            state.last_arrival is None
            or datetime.fromisoformat(state.last_arrival) < message.internal_date
        ):
            state.last_arrival = arrival
    if event.message_id:
        state.recent_ids.append(event.message_id)
        del state.recent_ids[:-RECENT_IDS_KEPT]
