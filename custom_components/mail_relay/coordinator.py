"""Bridge between the mail core and Home Assistant.

One coordinator per config entry runs the IMAP watcher (a background task tied to
the entry) or the POP3 poller (scheduled with Home Assistant's time helpers),
fires ``mail_relay_new_mail`` exactly once per message, keeps the high-water mark
or UIDL set in ``Store`` and tells the entities what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import (
    CONF_CATCHUP_HOURS,
    CONF_EMAIL,
    CONF_FOLDER,
    CONF_INCLUDE_HEADERS,
    CONF_MARK_SEEN,
    CONF_POLL_INTERVAL,
    CONF_PUSH,
    CONF_RETENTION,
    CONF_RETENTION_DAYS,
    CONF_TEXT_LIMIT,
    DEFAULT_CATCHUP_HOURS,
    DEFAULT_FOLDER,
    DEFAULT_IMAP_POLL_INTERVAL,
    DEFAULT_POP3_POLL_INTERVAL,
    DEFAULT_PUSH,
    DEFAULT_RETENTION,
    DEFAULT_RETENTION_DAYS,
    DEFAULT_TEXT_LIMIT,
    DOMAIN,
    EVENT_NEW_MAIL,
    LOGGER,
    MIN_POLL_INTERVAL,
)
from .errors import Where, ha_error, needs_reauth
from .mail.backoff import Backoff
from .mail.errors import MailError
from .mail.imap import FolderState, ImapWatcher, WatchStatus
from .mail.message import MailEvent
from .mail.models import Protocol, ServerSettings
from .mail.pop3 import Pop3Poller, Pop3State, Retention
from .mail.tls import create_ssl_context

if TYPE_CHECKING:
    import ssl

    from .data import MailRelayConfigEntry

STORAGE_VERSION = 1
# Written on the next loop turn: a burst coalesces into a few writes, and the
# window in which a crash could repeat an event stays a few milliseconds wide.
STORE_SAVE_DELAY = 0.0
# Retry a failed poll sooner than the interval: 1 s doubling up to 5 minutes.
POP3_BACKOFF = Backoff(initial=1.0, maximum=300.0, jitter=(0.8, 1.2))
SENT_IDS_KEPT = 1000


class MailRelayCoordinator:
    """Runs one account and tells listeners (entities) when anything changes."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: MailRelayConfigEntry,
        protocol: Protocol,
        incoming: ServerSettings,
    ) -> None:
        """Keep the settings; ``async_start`` connects."""
        self.hass = hass
        self.entry = entry
        self.protocol = protocol
        self.incoming = incoming
        self.account: str = entry.data[CONF_EMAIL]
        self.options = entry.options
        self.folder: str = self.options.get(CONF_FOLDER, DEFAULT_FOLDER)
        self.connected = False
        self.unread: int | None = None
        self.last_event: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}", atomic_writes=True
        )
        self._stored: dict[str, Any] = {}
        self._listeners: list[Callable[[], None]] = []
        self._event_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._ssl_context: ssl.SSLContext | None = None
        self._watcher: ImapWatcher | None = None
        self._poller: Pop3Poller | None = None
        self._poll_lock = asyncio.Lock()
        self._poll_failures = 0
        self._retry_cancel: CALLBACK_TYPE | None = None
        self._was_lost = False
        self._stopping = False
        self._run_task: asyncio.Task[None] | None = None
        # Message-IDs this account sent lately: they fire no event (loop guard).
        self._sent: deque[str] = deque(maxlen=SENT_IDS_KEPT)

    # -- listeners -------------------------------------------------------

    @callback
    def async_add_listener(self, update: Callable[[], None]) -> CALLBACK_TYPE:
        """Call ``update`` on any state change; returns the remover."""
        self._listeners.append(update)
        return lambda: self._listeners.remove(update)

    @callback
    def async_add_event_listener(
        self, handler: Callable[[dict[str, Any]], None]
    ) -> CALLBACK_TYPE:
        """Call ``handler`` with each new-mail event's data."""
        self._event_listeners.append(handler)
        return lambda: self._event_listeners.remove(handler)

    @callback
    def _notify(self) -> None:
        for update in list(self._listeners):
            update()

    # -- lifecycle -------------------------------------------------------

    async def async_start(self) -> None:
        """Load state, connect once (errors map to retry/reauth), then run."""
        self._stored = await self.store.async_load() or {}
        self._ssl_context = await self.hass.async_add_executor_job(
            lambda: create_ssl_context(verify=self.incoming.verify_tls)
        )
        if self.protocol is Protocol.IMAP:
            await self._start_imap()
        else:
            await self._start_pop3()

    async def async_stop(self) -> None:
        """Close connections and write the state now (not after a delay)."""
        self._stopping = True
        if self._retry_cancel:
            self._retry_cancel()
            self._retry_cancel = None
        async with self._poll_lock:  # let a poll in flight finish and commit
            pass
        if self._run_task is not None:
            # Stop the watcher before closing its connection, so it does not
            # take the close for an outage and reconnect.
            self._run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task
            self._run_task = None
        if self._watcher is not None:
            await self._watcher.close()
        if self._stored:
            await self.store.async_save(self._stored)

    # -- IMAP ------------------------------------------------------------

    def _imap_state(self) -> tuple[FolderState | None, datetime | None]:
        saved = self._stored.get("imap")
        if not saved or saved.get("folder") != self.folder:
            return None, None
        state = FolderState(
            uidvalidity=saved["uidvalidity"], last_uid=saved["last_uid"]
        )
        hours = self.options.get(CONF_CATCHUP_HOURS, DEFAULT_CATCHUP_HOURS)
        return state, dt_util.utcnow() - timedelta(hours=hours)

    async def _start_imap(self) -> None:
        state, catchup_since = self._imap_state()
        interval = float(
            self.options.get(CONF_POLL_INTERVAL, DEFAULT_IMAP_POLL_INTERVAL)
        )
        self._watcher = ImapWatcher(
            self.incoming,
            account=self.account,
            folder=self.folder,
            state=state,
            on_message=self._async_on_message,
            on_state=self._on_folder_state,
            on_status=self._on_status,
            ssl_context=self._ssl_context,
            push=self.options.get(CONF_PUSH, DEFAULT_PUSH),
            poll_interval=max(interval, MIN_POLL_INTERVAL),
            text_limit=self.options.get(CONF_TEXT_LIMIT, DEFAULT_TEXT_LIMIT),
            include_headers=self.options.get(CONF_INCLUDE_HEADERS, False),
            mark_seen=self.options.get(CONF_MARK_SEEN, False),
            catchup_since=catchup_since,
        )
        try:
            await self._watcher.connect_once()
        except MailError as err:
            await self._watcher.close()
            raise ha_error(err, Where.SETUP) from err
        self._on_folder_state(self._watcher.state)
        self._on_status(self._watcher.status)
        self._run_task = self.entry.async_create_background_task(
            self.hass, self._run_imap(self._watcher), f"{DOMAIN} IMAP {self.account}"
        )

    async def _run_imap(self, watcher: ImapWatcher) -> None:
        try:
            await watcher.run()
        except MailError as err:  # only fatal errors end the watcher
            if not err.fatal:
                raise
            self._set_connected(False, str(err))
            if needs_reauth(err):
                self.entry.async_start_reauth(self.hass)

    @callback
    def _on_folder_state(self, state: FolderState) -> None:
        self._stored["imap"] = {"folder": self.folder, **asdict(state)}
        self.store.async_delay_save(lambda: self._stored, STORE_SAVE_DELAY)

    @callback
    def _on_status(self, status: WatchStatus) -> None:
        self.unread = status.unread
        self._set_connected(status.connected, status.last_error)

    # -- POP3 ------------------------------------------------------------

    async def _start_pop3(self) -> None:
        saved = self._stored.get("pop3")
        interval = max(
            float(self.options.get(CONF_POLL_INTERVAL, DEFAULT_POP3_POLL_INTERVAL)),
            MIN_POLL_INTERVAL,
        )
        self._poller = Pop3Poller(
            self.incoming,
            account=self.account,
            state=Pop3State(seen=dict(saved["seen"])) if saved else None,
            retention=Retention(self.options.get(CONF_RETENTION, DEFAULT_RETENTION)),
            retention_days=self.options.get(
                CONF_RETENTION_DAYS, DEFAULT_RETENTION_DAYS
            ),
            text_limit=self.options.get(CONF_TEXT_LIMIT, DEFAULT_TEXT_LIMIT),
            include_headers=self.options.get(CONF_INCLUDE_HEADERS, False),
            ssl_context=self._ssl_context,
        )
        try:
            await self._poll(raise_errors=True)
        except MailError as err:
            raise ha_error(err, Where.SETUP) from err
        self.entry.async_on_unload(
            async_track_time_interval(
                self.hass,
                self._async_scheduled_poll,
                timedelta(seconds=interval),
                name=f"{DOMAIN} POP3 {self.account}",
            )
        )

    async def _async_scheduled_poll(self, _now: datetime | None = None) -> None:
        self._retry_cancel = None
        if not self._stopping:  # a timer may still fire while the entry unloads
            await self._poll(raise_errors=False)

    async def _poll(self, *, raise_errors: bool) -> None:
        """Poll once; on failure retry sooner with backoff and jitter.

        A poll cannot run for ever (the poller's session deadline), so a tick
        that finds the previous poll still running only waits for the next;
        any failure, ours included, shows as a lost connection and retries.
        """
        assert self._poller is not None
        if self._poll_lock.locked():
            LOGGER.debug("%s: previous poll still running; skipped", self.account)
            return
        async with self._poll_lock:
            try:
                result = await self._poller.poll_once(self._async_on_message)
            except Exception as err:
                self._save_pop3()
                if not isinstance(err, MailError):
                    LOGGER.exception("%s: unexpected error while polling", self.account)
                if raise_errors:
                    raise
                self._poll_failures += 1
                self._set_connected(False, str(err) or type(err).__name__)
                if isinstance(err, MailError) and needs_reauth(err):
                    self.entry.async_start_reauth(self.hass)
                    return
                self._retry_cancel = async_call_later(
                    self.hass,
                    POP3_BACKOFF.delay(self._poll_failures),
                    self._async_scheduled_poll,
                )
                return
            self._poll_failures = 0
            self._save_pop3()
            self.unread = result.count
            self._set_connected(True, None)

    def _save_pop3(self) -> None:
        assert self._poller is not None
        if self._poller.baseline_pending:
            # An empty saved set would report all old mail after a restart.
            return
        self._stored["pop3"] = asdict(self._poller.state)
        self.store.async_delay_save(lambda: self._stored, STORE_SAVE_DELAY)

    # -- shared ----------------------------------------------------------

    @callback
    def async_note_sent(self, message_id: str) -> None:
        """Remember a message this account sent, so that it fires no event.

        Without default recipients, notify mails the account itself: an
        automation "new mail -> notify" on the same account would loop.
        """
        self._sent.append(message_id)

    async def _async_on_message(self, event: MailEvent) -> None:
        """Fire the bus event; the watcher advances its mark after this returns."""
        if event.message_id is not None and event.message_id in self._sent:
            LOGGER.debug("%s: no event for our own %s", self.account, event.message_id)
            return
        data = {"entry_id": self.entry.entry_id, **event.as_dict()}
        self.hass.bus.async_fire(EVENT_NEW_MAIL, data)
        self.last_event = data
        for handler in list(self._event_listeners):
            handler(data)
        self._notify()

    @callback
    def _set_connected(self, connected: bool, error: str | None) -> None:
        # Log once when the connection is lost and once when it is back;
        # closing it ourselves on unload is no outage.
        if self.connected and not connected and not self._stopping:
            LOGGER.warning(
                "%s: connection to %s lost: %s", self.account, self.incoming.host, error
            )
            self._was_lost = True
        elif connected and not self.connected and self._was_lost:
            LOGGER.info(
                "%s: connection to %s is back", self.account, self.incoming.host
            )
            self._was_lost = False
        self.connected = connected
        self.last_error = error
        self._notify()
