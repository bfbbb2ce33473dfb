"""The IMAP watcher: turns new mail in an account's folders into events, exactly once.

Messages are tracked per folder by UID and UIDVALIDITY with a high-water
mark: each change runs ``UID FETCH mark+1:* (UID)`` and fetches headers,
structure and only the first bytes of the text part; attachments are never
downloaded.

All folders share one connection. The first stays selected and is watched
with IDLE; the others are pushed by NOTIFY (RFC 5465) when the server offers
it, else asked for their UIDNEXT (STATUS, one short line each) at every IDLE
renewal or poll. A folder with new mail is selected, read and left. Why not a
connection per folder: providers cap them (Gmail at 15 per user), and each
costs a login and its own renewals.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from ..errors import (
    ConnectError,
    MailError,
    ProtocolError,
    TokenExpiredError,
)
from ..filtering import accepts
from ..message import MailEvent
from ..models import ServerSettings
from ..options import EventOptions, FilterOptions, ImapWatchOptions, Timeouts
from ..trace import Trace
from .client import BATCH_SIZE, SEARCH_WINDOW, ImapClient
from .parse import FetchedMessage, build_event, text_bytes_for
from .syntax import _chunks, encode_mailbox, search_criteria

_LOGGER = logging.getLogger(__name__)

# Message-IDs remembered for a renumbered folder: more than one burst's worth.
RECENT_IDS_KEPT = 200
# Under NOTIFY the other folders are asked only when the server says they
# changed, and every this many renewals anyway (10 minutes by default): a
# notice lost in a reconnection or a server's own slip is found by then.
FULL_CHECK_ROUNDS = 10
# An OAuth2 session is renewed this long before its token expires (Exchange
# ends it at expiry with "* BYE ... AccessTokenExpired").
TOKEN_RENEW_MARGIN = 120.0
# After NOTIFY is set again (a folder besides the first was read), Dovecot
# 2.3 may miss mail that lands in the next moments until its own 30 s check:
# the next IDLE lasts this long, then the others are asked once (a STATUS each).
NOTIFY_SETTLE = 2.0


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
    folder: str = "INBOX"  # which folder this mark is of

    @classmethod
    def from_saved(cls, saved: object, folder: str | None = None) -> FolderState | None:
        """Read what a host saved (``asdict``); None if it is not a state.

        ``folder`` names the folder when the saved form does not (the CLI
        keys its states by folder); a saved form naming another is refused.
        """
        if not isinstance(saved, dict):
            return None
        named = saved.get("folder")
        if folder is not None and named is not None and named != folder:
            return None  # another folder's mark says nothing about this one
        try:
            ids = saved.get("recent_ids") or []
            return cls(
                uidvalidity=None
                if saved["uidvalidity"] is None
                else int(saved["uidvalidity"]),
                last_uid=int(saved["last_uid"]),
                last_arrival=saved.get("last_arrival") or None,
                recent_ids=[str(i) for i in ids][-RECENT_IDS_KEPT:],
                folder=str(named or folder or "INBOX"),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def copy(self) -> FolderState:
        """Return an independent copy (the host keeps what it is given)."""
        return replace(self, recent_ids=list(self.recent_ids))


@dataclass
class WatchStatus:
    """What the host shows: connection, unread count, push in use, last error.

    ``unread`` counts the watched folders together; ``notify`` says the other
    folders are pushed (NOTIFY) rather than looked at on each renewal.
    """

    connected: bool
    unread: int | None
    idle: bool
    last_error: str | None
    notify: bool = False


# -- the watcher ---------------------------------------------------------------


@dataclass
class _Folder:
    """One watched folder while the watcher runs."""

    name: str
    state: FolderState
    # After a restart: mail older than this is not reported (None: all).
    catchup_since: datetime | None
    # Set when the server renumbered the folder: (UIDVALIDITY, UIDNEXT).
    renumbered: tuple[int, int] | None = None
    unseen: int | None = None
    available: bool = True  # False while the server refuses its STATUS
    pushed: bool = False  # its news comes by NOTIFY


class ImapWatcher:
    """Watch an account's folders: exactly one ``on_message`` per new message.

    Each folder has its own high-water mark, advanced (and ``on_state`` run
    with that folder's state) after each message, so a crash in the middle
    of a burst neither repeats nor loses mail in any folder.
    """

    def __init__(
        self,
        settings: ServerSettings,
        *,
        account: str,
        state: FolderState | Mapping[str, FolderState] | None,
        on_message: Callable[[MailEvent], Awaitable[None]],
        on_state: Callable[[FolderState], None] | None = None,
        on_status: Callable[[WatchStatus], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        options: ImapWatchOptions | None = None,
        event: EventOptions | None = None,
        filter: FilterOptions | None = None,
        timeouts: Timeouts | None = None,
        trace: Trace | None = None,
        on_check: Callable[[], None] | None = None,
    ) -> None:
        """Configure; nothing connects before ``connect_once()`` or ``run()``.

        ``state`` is the host's saved marks, by folder (a single state is the
        first folder's). A folder without one starts fresh: mail already
        there is not reported; with one, mail that arrived while away is
        reported unless older than ``options.catchup_hours``.
        ``on_check`` runs after each round the server answered in full (after
        login, each IDLE answer or renewal, each NOOP): proof the account works.
        """
        options = options or ImapWatchOptions()
        self.settings = settings
        self.account = account
        names = list(dict.fromkeys(options.folders)) or ["INBOX"]
        if isinstance(state, FolderState):
            state = {names[0]: state}
        saved = dict(state or {})
        now = datetime.now(UTC)
        self._folders = [
            _Folder(
                name=name,
                state=replace(saved[name].copy(), folder=name)
                if name in saved
                else FolderState(None, 0, folder=name),
                catchup_since=now - timedelta(hours=options.catchup_hours)
                if name in saved
                else None,
            )
            for name in names
        ]
        self.status = WatchStatus(
            connected=False, unread=None, idle=False, last_error=None
        )
        self._on_message = on_message
        self._on_state = on_state
        self._on_status = on_status
        self._ssl_context = ssl_context
        self._options = options
        self._event = event or EventOptions()
        self._filter = filter or FilterOptions()
        self._criteria = search_criteria(
            self._filter.senders,
            self._filter.subject_contains,
            self._filter.unseen_only,
        )
        self._timeouts = timeouts or Timeouts()
        self._trace = trace
        self._on_check = on_check
        self._client: ImapClient | None = None
        self._notified = False  # NOTIFY is in force on this connection
        self._settling = False  # NOTIFY was set again: look once more soon
        self._search_ok: bool | None = None  # SEARCH agrees with FETCH here

    @property
    def folder(self) -> str:
        """The first folder: kept selected, watched with IDLE."""
        return self._folders[0].name

    @property
    def folders(self) -> list[str]:
        """The watched folders, the first first."""
        return [f.name for f in self._folders]

    @property
    def state(self) -> FolderState:
        """The first folder's mark."""
        return self._folders[0].state

    @property
    def states(self) -> dict[str, FolderState]:
        """Every folder's mark, by folder (copies)."""
        return {f.name: f.state.copy() for f in self._folders}

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
        notify: bool | None = None,
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
            notify=current.notify if notify is None else notify,
        )
        if updated == current:
            return
        self.status = updated
        if self._on_status is not None:
            self._on_status(updated)

    def _advance(self, folder: _Folder, state: FolderState) -> None:
        folder.state = state
        if self._on_state is not None:
            self._on_state(state.copy())

    # -- connecting -------------------------------------------------------------

    async def connect_once(self) -> None:
        """Connect, log in, select the first folder and settle every mark.

        Raises mail.errors; hosts use it at setup to tell "server down"
        from "password refused" before starting ``run()``. A folder other
        than the first that the server refuses is skipped (and retried on
        each full round), not a failure of the account.
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
            first, others = self._folders[0], self._folders[1:]
            uidvalidity, uidnext = await client.select(first.name)
            self._settle_mark(first, uidvalidity, uidnext)
            for folder in others:
                found = await self._status(client, folder)
                if found is not None and "UIDVALIDITY" in found:
                    self._settle_mark(folder, found["UIDVALIDITY"], found["UIDNEXT"])
            if others and self._options.push and "IDLE" in client.capabilities:
                await self._set_notify(client)
        except BaseException:
            await client.logout()
            raise
        self._client = client
        if self.status.connected is False and self.status.last_error is not None:
            # Debug only: the host hears it through on_status and logs it once.
            _LOGGER.debug("Connection to %s is back", self.settings.host)
        self._set_status(
            connected=True,
            idle=self._options.push and "IDLE" in client.capabilities,
            notify=self._notified,
            clear_error=True,
        )

    async def _set_notify(self, client: ImapClient) -> None:
        """Ask for the other folders' news to be pushed (NOTIFY), if offered.

        Only folders whose name needs no modified UTF-7: Dovecot 2.3 matches
        NOTIFY's names undecoded and never reports ``Reçus`` or ``A & B``.
        The rest are looked at on every round, as without NOTIFY.
        """
        others = self._folders[1:]
        pushable = [
            f for f in others if f.available and encode_mailbox(f.name) == f.name
        ]
        self._notified = bool(pushable) and await client.notify(
            [f.name for f in pushable]
        )
        for folder in others:
            folder.pushed = self._notified and folder in pushable

    async def _status(
        self, client: ImapClient, folder: _Folder
    ) -> dict[str, int] | None:
        """UIDNEXT, UIDVALIDITY and UNSEEN of a folder not selected; None if refused."""
        found = await client.status(folder.name, "UIDNEXT UIDVALIDITY UNSEEN")
        if found is None or "UIDNEXT" not in found:
            if folder.available:
                _LOGGER.warning(
                    "Folder %s on %s cannot be watched (the server refuses its"
                    " STATUS; deleted or renamed?); trying again later",
                    folder.name,
                    self.settings.host,
                )
            folder.available = False
            return None
        folder.available = True
        folder.unseen = found.get("UNSEEN")
        return found

    def _settle_mark(self, folder: _Folder, uidvalidity: int, uidnext: int) -> None:
        known = folder.state.uidvalidity
        if known == uidvalidity:
            return
        if known is not None and folder.state.last_arrival is not None:
            _LOGGER.warning(
                "UIDVALIDITY of %s on %s changed (%s -> %s): the server renumbered"
                " the folder; reporting the mail that arrived after %s",
                folder.name,
                self.settings.host,
                known,
                uidvalidity,
                folder.state.last_arrival,
            )
            # The mark stays in the old numbering until the catch-up is done:
            # a crash meanwhile redoes it (Message-IDs prevent repeats).
            folder.renumbered = (uidvalidity, uidnext)
            return
        if known is not None:
            _LOGGER.warning(
                "UIDVALIDITY of %s on %s changed (%s -> %s): the server renumbered"
                " the folder; skipping its current mail instead of reporting it again",
                folder.name,
                self.settings.host,
                known,
                uidvalidity,
            )
        self._advance(
            folder,
            replace(
                folder.state.copy(),
                uidvalidity=uidvalidity,
                last_uid=max(uidnext - 1, 0),
            ),
        )

    async def _drop(self) -> None:
        client, self._client = self._client, None
        self._notified = False
        self._search_ok = None
        for folder in self._folders:
            folder.pushed = False
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
                if isinstance(err, MailError) and err.fatal:
                    self._set_status(connected=False, idle=False, last_error=str(err))
                    raise
                if isinstance(err, TokenExpiredError) and not expired_again:
                    # Not a failure: sign in again now, with a fresh token
                    # (a server that keeps doing it gets the usual backoff).
                    _LOGGER.debug("%s ended the session: %s", self.settings.host, err)
                    self._set_status(connected=False, idle=False)
                    renew = expired_again = True
                    continue
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
        from the marks, so nothing is missed or reported twice.
        """
        use_idle = self._options.push and "IDLE" in client.capabilities
        renew_at = self._renew_at()
        rounds = 0
        while True:
            settling, self._settling = self._settling, False
            wait = self._options.idle_renew if use_idle else self._options.poll_interval
            if settling:
                wait = NOTIFY_SETTLE
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
            rounds += 1
            await self.sync(
                client,
                others=settling
                or not self._notified
                or rounds % FULL_CHECK_ROUNDS == 0,
            )

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

    async def sync(self, client: ImapClient, *, others: bool = True) -> None:
        """Report every message above each mark, then refresh the unread count.

        ``others``: look at the folders besides the first that NOTIFY pushes
        (when the server announced news of them, and on a full round); the
        ones it does not push are looked at every time. The first folder is
        selected again at the end, for IDLE.
        """
        first, rest = self._folders[0], self._folders[1:]
        while True:
            others = client.take_status_hint() or others
            for folder in rest:
                if others or not folder.pushed:
                    await self._sync_other(client, folder)
            renotified = False
            if client.selected != first.name:
                uidvalidity, uidnext = await client.select(first.name)
                self._settle_mark(first, uidvalidity, uidnext)
                if self._notified:
                    # Dovecot 2.3 sends no more news of the others after a
                    # SELECT until NOTIFY is set again; and none of what
                    # arrived before the new NOTIFY: looked at once more below.
                    await self._set_notify(client)
                    renotified = self._settling = True
            announced = client.take_new_mail_hint()
            await self._sync_folder(client, first, fresh=announced)
            first.unseen = await client.unread_count()
            counts = [f.unseen for f in self._folders if f.unseen is not None]
            self._set_status(unread=sum(counts))
            if self._on_check is not None:
                self._on_check()
            # New mail announced while we were busy: aioimaplib drops such
            # notices outside IDLE, so look again rather than idle past it.
            again = client.take_new_mail_hint()
            others = client.take_status_hint() or renotified
            if not (again or others):
                return

    async def _sync_other(self, client: ImapClient, folder: _Folder) -> None:
        """Look at a folder other than the first; select and read it if it changed."""
        found = await self._status(client, folder)
        if found is None:
            return
        if (
            folder.renumbered is None
            and found.get("UIDVALIDITY") == folder.state.uidvalidity
            and found["UIDNEXT"] - 1 <= folder.state.last_uid
        ):
            folder.catchup_since = None  # caught up: nothing old is waiting
            return
        uidvalidity, uidnext = await client.select(folder.name)
        self._settle_mark(folder, uidvalidity, uidnext)
        await self._sync_folder(client, folder)
        folder.unseen = await client.unread_count()

    async def _sync_folder(
        self, client: ImapClient, folder: _Folder, *, fresh: bool = False
    ) -> None:
        """Report every message above the selected folder's mark.

        ``fresh``: the server has just announced new mail in it (see
        ``ImapClient.uidnext``).

        The folder's UIDNEXT, asked first, bounds the search: each round
        covers at most ``SEARCH_WINDOW`` UIDs below it, and the mark moves to
        the end of the round (no UID there can appear later: new mail gets
        UIDNEXT or above). Without UIDNEXT, rounds go on while they are full.
        Mail the filter passes over moves the mark like any other.
        """
        if folder.renumbered is not None:
            await self._catch_up_renumbered(client, folder, *folder.renumbered)
            folder.renumbered = None
        uidnext = await client.uidnext(folder.name, fresh=fresh)
        while True:
            mark = folder.state.last_uid
            found = await client.new_uids(mark, uidnext)
            uids = await self._narrow(client, found)
            for batch in _chunks(uids, BATCH_SIZE):
                await self._deliver(client, folder, batch)
            if uidnext is None:
                if found and folder.state.last_uid < found[-1]:
                    self._advance(
                        folder, replace(folder.state.copy(), last_uid=found[-1])
                    )
                if len(found) < SEARCH_WINDOW:
                    break
                continue
            end = min(uidnext - 1, mark + SEARCH_WINDOW)
            if folder.state.last_uid < end:
                self._advance(folder, replace(folder.state.copy(), last_uid=end))
            if end >= uidnext - 1:
                break
        folder.catchup_since = None

    async def _narrow(self, client: ImapClient, uids: list[int]) -> list[int]:
        """Leave out, by SEARCH on the server, new mail the filter cannot pass.

        Saves downloading it; ``accepts`` still judges what remains. A server
        that refuses the SEARCH has everything fetched and judged here.
        """
        if self._criteria is None or not uids:
            return uids
        try:
            if self._search_ok is None:
                # Once per connection: GNU Mailutils' SEARCH misses mail, and
                # narrowing by it would lose what the filter should pass.
                self._search_ok = await client.search_consistent() is not False
            if not self._search_ok:
                return uids
            return await client.search_uids(uids, self._criteria)
        except ProtocolError as err:
            _LOGGER.debug("Filter SEARCH refused, filtering here: %s", err)
            return uids

    async def _deliver(
        self,
        client: ImapClient,
        folder: _Folder,
        batch: list[int],
        *,
        renumbered: int | None = None,
    ) -> None:
        """Report the messages of ``batch``, advancing the mark after each.

        With ``renumbered`` (the new UIDVALIDITY) the batch comes from a
        renumbered folder: mail reported before (by Message-ID) is skipped and
        the mark keeps the old numbering; the caller moves it at the end.
        """
        fetched = await client.fetch_messages(
            batch, text_bytes=text_bytes_for(self._event.text_limit)
        )
        uidvalidity = folder.state.uidvalidity if renumbered is None else renumbered
        delivered: list[int] = []
        for uid in batch:
            state = folder.state.copy()
            if renumbered is None:
                state.last_uid = uid
            message = fetched.get(uid)
            if message is not None and not _too_old(folder, message):
                event = build_event(
                    message,
                    account=self.account,
                    folder=folder.name,
                    uidvalidity=uidvalidity,
                    text_limit=self._event.text_limit,
                    include_headers=self._event.include_headers,
                )
                wanted = accepts(self._filter, event, seen="\\Seen" in message.flags)
                if wanted and (
                    renumbered is None or event.message_id not in state.recent_ids
                ):
                    try:
                        await self._on_message(event)
                    except Exception:
                        _LOGGER.exception("Handler failed for message UID %s", uid)
                    delivered.append(uid)
                    _remember(state, message, event)
            self._advance(folder, state)
        if self._options.mark_seen and delivered:
            await client.mark_seen(delivered, check=False)

    async def _catch_up_renumbered(
        self, client: ImapClient, folder: _Folder, uidvalidity: int, uidnext: int
    ) -> None:
        """Report what arrived after the last reported mail, in the new numbering."""
        last = folder.state.last_arrival
        assert last is not None  # _settle_mark only renumbers with one
        since = max(
            datetime.fromisoformat(last),
            datetime.now(UTC) - timedelta(hours=self._options.catchup_hours),
        )
        folder.catchup_since = since
        # SEARCH SINCE ignores the time and the zone: a day earlier, then
        # INTERNALDATE decides (_too_old).
        uids = await client.search_arrived_since(
            (since - timedelta(days=1)).date(), uidnext
        )
        for batch in _chunks(uids, BATCH_SIZE):
            await self._deliver(client, folder, batch, renumbered=uidvalidity)
        self._advance(
            folder,
            replace(folder.state.copy(), uidvalidity=uidvalidity, last_uid=uidnext - 1),
        )


def _too_old(folder: _Folder, message: FetchedMessage) -> bool:
    """Say whether the message arrived before the folder's catch-up window starts."""
    since = folder.catchup_since
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
