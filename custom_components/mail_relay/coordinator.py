"""Bridge between the mail core and Home Assistant.

One coordinator per config entry: ``ImapCoordinator`` runs the IMAP watcher (a
background task tied to the entry), ``Pop3Coordinator`` the POP3 poller
(scheduled with Home Assistant's time helpers). Their base fires
``mail_relay_new_mail`` exactly once per message, keeps the high-water mark or
UIDL set in ``Store`` and tells the entities what changed. Why this is not a
``DataUpdateCoordinator``: docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import CONF_EMAIL, CONF_PROTOCOL, DOMAIN, EVENT_NEW_MAIL, LOGGER
from .errors import Where, ha_error, needs_reauth
from .health import account_health
from .mail.backoff import Backoff
from .mail.errors import MailError
from .mail.imap import FolderState, ImapWatcher, WatchStatus
from .mail.message import MailEvent
from .mail.models import Protocol, ServerSettings
from .mail.pop3 import Pop3Poller, Pop3State
from .mail.tls import create_ssl_context
from .saving import async_auto_save
from .settings import AccountOptions, account_options

if TYPE_CHECKING:
    import ssl

    from .data import MailRelayConfigEntry

STORAGE_VERSION = 1
# Written on the next loop turn when no event follows (after a poll, a
# UIDVALIDITY change); before each event the state is written at once.
STORE_SAVE_DELAY = 0.0
# Retry a failed poll sooner than the interval: 1 s doubling up to 5 minutes.
POP3_BACKOFF = Backoff(initial=1.0, maximum=300.0, jitter=(0.8, 1.2))
SENT_IDS_KEPT = 1000
# Events fired before the event entity listens (mail found at start-up, before
# the platforms are set up) are replayed to it; at most this many.
EARLY_EVENTS_KEPT = 20


def create_coordinator(
    hass: HomeAssistant, entry: MailRelayConfigEntry, incoming: ServerSettings
) -> MailRelayCoordinator:
    """Return the coordinator of the entry's protocol."""
    protocol = Protocol(entry.data[CONF_PROTOCOL])
    kind = ImapCoordinator if protocol is Protocol.IMAP else Pop3Coordinator
    return kind(hass, entry, incoming)


class MailRelayCoordinator(ABC):
    """Runs one account and tells listeners (entities) when anything changes."""

    protocol: Protocol

    def __init__(
        self,
        hass: HomeAssistant,
        entry: MailRelayConfigEntry,
        incoming: ServerSettings,
    ) -> None:
        """Keep the entry's server and options; ``async_start`` connects."""
        self.hass = hass
        self.entry = entry
        self.incoming = incoming
        self.options: AccountOptions = account_options(entry.options)
        self.account: str = entry.data[CONF_EMAIL]
        self.connected = False
        self.unread: int | None = None
        # How new mail reaches us: "idle" (pushed) or "polling"; None before
        # the first connection. Servers that only poll behind IDLE look like
        # "idle" here; the README's troubleshooting says how to tell.
        self.push_mode: str | None = None
        # IMAP: the folders besides the first are pushed too (NOTIFY).
        self.notify = False
        self.last_event: dict[str, Any] | None = None
        self.last_error: str | None = None
        # The last time the server answered a whole round (login, IDLE answer
        # or renewal, NOOP, poll): what "it stopped and nothing told me" lacks.
        self.last_check: datetime | None = None
        self.health = account_health(hass, entry.entry_id)
        self.health.repair_after = self.options.health.repair_after
        self.store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}", atomic_writes=True
        )
        self._stored: dict[str, Any] = {}
        self._dirty = False
        self._listeners: list[Callable[[], None]] = []
        self._event_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._unheard: deque[dict[str, Any]] = deque(maxlen=EARLY_EVENTS_KEPT)
        self._ssl_context: ssl.SSLContext | None = None
        self._was_lost = False
        self._stopping = False
        # Message-IDs this account sent lately: they fire no event (loop guard).
        self._sent: deque[str] = deque(maxlen=SENT_IDS_KEPT)

    @property
    def folder(self) -> str | None:
        """The first watched IMAP folder; None for POP3's single maildrop."""
        return None

    @property
    def folders(self) -> tuple[str, ...]:
        """The watched IMAP folders; none for POP3."""
        return ()

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
        """Call ``handler`` with each new-mail event's data.

        Events fired before any handler listened (the first poll or catch-up
        runs before the platforms are set up) are handed to it first, oldest
        first.
        """
        self._event_listeners.append(handler)
        while self._unheard:
            handler(self._unheard.popleft())
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
        try:
            await self._async_start()
        except ConfigEntryNotReady as err:
            # Home Assistant retries the setup; the outage clock keeps running.
            self.health.down(
                self.account, self.incoming.host, str(err.__cause__ or err)
            )
            raise

    async def async_stop(self) -> None:
        """Close connections and write the state now (not after a delay)."""
        self._stopping = True
        if self.entry.disabled_by is not None:
            self.health.pause()  # a reload leaves an outage's clock running
        await self._async_stop()
        if self._stored:
            await self.store.async_save(self._stored)

    @abstractmethod
    async def _async_start(self) -> None:
        """Connect once (raising Home Assistant's setup errors), then run."""

    @abstractmethod
    async def _async_stop(self) -> None:
        """Stop running and close the connection; the base writes the state."""

    @callback
    def _save(self, key: str, value: dict[str, Any]) -> None:
        self._stored[key] = value
        self._dirty = True
        self.store.async_delay_save(lambda: self._stored, STORE_SAVE_DELAY)

    @abstractmethod
    def _note_progress(self) -> None:
        """Record in ``_stored`` what the core has reported so far."""

    async def _async_write_progress(self) -> None:
        """Write the state now if it changed: before an event, never after it.

        The previous message's mark is on disk before the next event fires, so
        a crash (or a power cut) repeats at most the one message in flight.
        """
        self._note_progress()
        if self._dirty:
            self._dirty = False
            await self.store.async_save(self._stored)

    # -- events and state -------------------------------------------------

    @callback
    def async_note_sent(self, message_id: str) -> None:
        """Remember a message this account sent, so that it fires no event.

        Without default recipients, notify mails the account itself: an
        automation "new mail -> notify" on the same account would loop.
        """
        self._sent.append(message_id)

    async def _async_on_message(self, event: MailEvent) -> None:
        """Fire the bus event; the watcher advances its mark after this returns."""
        await self._async_write_progress()
        if event.message_id is not None and event.message_id in self._sent:
            LOGGER.debug("%s: no event for our own %s", self.account, event.message_id)
            return
        event = await self._async_save_attachments(event)
        data = {"entry_id": self.entry.entry_id, **event.as_dict()}
        self.hass.bus.async_fire(EVENT_NEW_MAIL, data)
        self.last_event = data
        if not self._event_listeners:
            self._unheard.append(data)
        for handler in list(self._event_listeners):
            handler(data)
        self._notify()

    async def _async_save_attachments(self, event: MailEvent) -> MailEvent:
        """IMAP: auto-save the new mail's attachments, when the options say so.

        POP3 saves within the poll's session instead (``before_event``).
        """
        if self.protocol is not Protocol.IMAP or not self.options.attachments.enabled:
            return event
        return await async_auto_save(self.hass, self.entry, event)

    async def async_retrieve(self, uid: str, limit: int) -> bytes | None:
        """Read one message whole (POP3, to save its attachments); None if over limit."""
        raise NotImplementedError  # IMAP fetches parts instead

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
        self._note_health(connected, error)
        self._notify()

    @callback
    def _note_health(self, connected: bool, error: str | None) -> None:
        if connected:
            self.health.up()
        elif not self._stopping:
            self.health.down(self.account, self.incoming.host, error)

    @callback
    def _on_check(self) -> None:
        """Note that the server answered a whole round: the account works."""
        self.last_check = dt_util.utcnow()
        self._notify()


class ImapCoordinator(MailRelayCoordinator):
    """An account's IMAP folders watched by a background task, on one connection."""

    protocol = Protocol.IMAP

    def __init__(
        self,
        hass: HomeAssistant,
        entry: MailRelayConfigEntry,
        incoming: ServerSettings,
    ) -> None:
        """Prepare; ``async_start`` builds the watcher and connects it."""
        super().__init__(hass, entry, incoming)
        self._run_task: asyncio.Task[None] | None = None
        self._watcher: ImapWatcher | None = None

    @property
    def folder(self) -> str:
        """The first watched folder (kept selected; the actions' default)."""
        return self.options.imap.folder

    @property
    def folders(self) -> tuple[str, ...]:
        """Every watched folder."""
        return self.options.imap.folders

    def _saved_states(self) -> dict[str, FolderState]:
        """Return the saved marks of the watched folders.

        Stored as ``imap_folders`` (by folder). Before several folders one
        ``imap`` mark named its folder: it becomes that folder's, and is
        written back in the new layout before any event (``_on_folder_state``).
        A mark of a folder no longer watched says nothing about the others.
        """
        saved: dict[str, Any] = dict(self._stored.get("imap_folders") or {})
        old = self._stored.get("imap")
        if isinstance(old, dict) and old.get("folder") and old["folder"] not in saved:
            saved[old["folder"]] = old
        states: dict[str, FolderState] = {}
        for name in self.folders:
            state = FolderState.from_saved(saved.get(name), name)
            if state is not None:
                states[name] = state
        return states

    async def _async_start(self) -> None:
        watcher = self._watcher = ImapWatcher(
            self.incoming,
            account=self.account,
            state=self._saved_states(),
            on_message=self._async_on_message,
            on_state=self._on_folder_state,
            on_status=self._on_status,
            on_check=self._on_check,
            ssl_context=self._ssl_context,
            options=self.options.imap,
            event=self.options.event,
            filter=self.options.filter,
        )
        try:
            await watcher.connect_once()
        except MailError as err:
            await watcher.close()
            raise ha_error(err, Where.SETUP) from err
        for state in watcher.states.values():
            self._on_folder_state(state)
        self._on_status(watcher.status)
        self._run_task = self.entry.async_create_background_task(
            self.hass, self._run(watcher), f"{DOMAIN} IMAP {self.account}"
        )

    async def _async_stop(self) -> None:
        if self._run_task is not None:
            # Stop the watcher before closing its connection, so it does not
            # take the close for an outage and reconnect.
            self._run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task
            self._run_task = None
        if self._watcher is not None:
            await self._watcher.close()

    async def _run(self, watcher: ImapWatcher) -> None:
        try:
            await watcher.run()
        except MailError as err:  # only fatal errors end the watcher
            if not err.fatal:
                raise
            self._set_connected(False, str(err))
            if needs_reauth(err):
                self.entry.async_start_reauth(self.hass)

    def _note_progress(self) -> None:
        """Nothing to collect: the watcher reports each mark (``on_state``)."""

    @callback
    def _on_folder_state(self, state: FolderState) -> None:
        marks = {
            name: mark
            for name, mark in (self._stored.get("imap_folders") or {}).items()
            if name in self.folders
        }
        marks[state.folder] = asdict(state)
        self._stored.pop("imap", None)  # the single-folder layout, migrated
        self._save("imap_folders", marks)

    @callback
    def _on_status(self, status: WatchStatus) -> None:
        self.unread = status.unread
        if status.connected:
            self.push_mode = "idle" if status.idle else "polling"
            self.notify = status.notify
        self._set_connected(status.connected, status.last_error)


class Pop3Coordinator(MailRelayCoordinator):
    """One POP3 maildrop polled on Home Assistant's timer."""

    protocol = Protocol.POP3

    def __init__(
        self,
        hass: HomeAssistant,
        entry: MailRelayConfigEntry,
        incoming: ServerSettings,
    ) -> None:
        """Prepare; ``async_start`` polls once, then on the interval."""
        super().__init__(hass, entry, incoming)
        self._poller: Pop3Poller | None = None
        self._poll_lock = asyncio.Lock()
        self._poll_failures = 0
        self._retry_cancel: CALLBACK_TYPE | None = None

    async def _async_start(self) -> None:
        saved = self._stored.get("pop3")
        self._poller = Pop3Poller(
            self.incoming,
            account=self.account,
            state=Pop3State(seen=dict(saved["seen"])) if saved else None,
            ssl_context=self._ssl_context,
            options=self.options.pop3,
            event=self.options.event,
            on_check=self._on_check,
            before_event=self._async_before_event
            if self.options.attachments.enabled
            else None,
            filter=self.options.filter,
        )
        try:
            await self._poll(self._poller, raise_errors=True)
        except MailError as err:
            raise ha_error(err, Where.SETUP) from err
        self.entry.async_on_unload(
            async_track_time_interval(
                self.hass,
                self._async_scheduled_poll,
                timedelta(seconds=self.options.pop3.poll_interval),
                name=f"{DOMAIN} POP3 {self.account}",
            )
        )

    async def _async_before_event(
        self, event: MailEvent, read_whole: Callable[[int], Awaitable[bytes | None]]
    ) -> MailEvent:
        """Auto-save a new message's attachments inside the poll's session."""
        if event.message_id is not None and event.message_id in self._sent:
            return event  # our own mail fires no event: nothing to save either
        return await async_auto_save(self.hass, self.entry, event, read_whole)

    async def async_retrieve(self, uid: str, limit: int) -> bytes | None:
        """Read one message whole while it is on the server, between polls."""
        if self._poller is None:
            raise RuntimeError("the account has not started")
        return await self._poller.retrieve(uid, limit)

    async def _async_stop(self) -> None:
        if self._retry_cancel:
            self._retry_cancel()
            self._retry_cancel = None
        async with self._poll_lock:  # let a poll in flight finish and commit
            pass

    async def _async_scheduled_poll(self, _now: datetime | None = None) -> None:
        self._retry_cancel = None
        # A timer may still fire while the entry unloads.
        if not self._stopping and self._poller is not None:
            await self._poll(self._poller, raise_errors=False)

    async def _poll(self, poller: Pop3Poller, *, raise_errors: bool) -> None:
        """Poll once; on failure retry sooner with backoff and jitter.

        A poll cannot run for ever (the poller's session deadline), so a tick
        that finds the previous poll still running only waits for the next;
        any failure, ours included, shows as a lost connection and retries.
        """
        if self._poll_lock.locked():
            LOGGER.debug("%s: previous poll still running; skipped", self.account)
            return
        async with self._poll_lock:
            try:
                result = await poller.poll_once(self._async_on_message)
            except Exception as err:
                self._save_state(poller)
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
            self._save_state(poller)
            self.unread = result.count
            self.push_mode = "polling"
            self._set_connected(True, None)

    def _note_progress(self) -> None:
        """Take the UIDLs reported so far (the poller records each one)."""
        if self._poller is not None:
            self._save_state(self._poller)

    def _save_state(self, poller: Pop3Poller) -> None:
        if poller.baseline_pending:
            # An empty saved set would report all old mail after a restart.
            return
        self._save("pop3", asdict(poller.state))
