"""``mail-relay watch``: one JSON line per new message until stopped."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from custom_components.mail_relay.mail.backoff import Backoff
from custom_components.mail_relay.mail.errors import MailError
from custom_components.mail_relay.mail.imap import FolderState, ImapWatcher, WatchStatus
from custom_components.mail_relay.mail.message import MailEvent
from custom_components.mail_relay.mail.models import Protocol
from custom_components.mail_relay.mail.options import Timeouts
from custom_components.mail_relay.mail.pop3 import Pop3Poller, Pop3State
from custom_components.mail_relay.mail.probe import ssl_context

from .account import Account
from .config import watch_accounts
from .errors import CliError, Exit, explain
from .output import Output, say
from .state import StateFile, state_key
from .wire import tracer

STOP_GRACE = 10.0  # seconds a poll in flight may take to finish at Ctrl-C
# A person watching a terminal wants the reconnection within a minute.
CLI_RECONNECT = Backoff(maximum=60.0)

_LOGGER = logging.getLogger(__name__)


class Runner:
    """One watched mailbox (an IMAP folder or a POP3 maildrop)."""

    label: str
    error: CliError | None = None

    async def start(self) -> None:
        """Connect once; fatal errors raise ``CliError``, others retry later."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop and leave the state ready to be saved."""
        raise NotImplementedError


class ImapRunner(Runner):
    """An account's IMAP folders, watched on one connection (the core's watcher)."""

    def __init__(
        self,
        account: Account,
        state: StateFile,
        output: Output,
        on_fatal: Callable[[Runner], None],
        timeout: float,
    ) -> None:
        """Prepare the watcher with the saved marks, if any."""
        assert account.incoming is not None
        self.account = account
        self.settings = account.incoming
        self.folders = account.folders
        self.label = f"{account.address} ({', '.join(self.folders)})"
        self._state = state
        self._output = output
        self._on_fatal = on_fatal
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self._connected: bool | None = None
        self.watcher: ImapWatcher | None = None

    def _key(self, folder: str) -> str:
        return state_key(Protocol.IMAP, self.settings, folder)

    def _saved(self) -> dict[str, FolderState]:
        saved = {
            folder: FolderState.from_saved(
                self._state.accounts.get(self._key(folder)), folder
            )
            for folder in self.folders
        }
        return {folder: state for folder, state in saved.items() if state is not None}

    async def _on_message(self, event: MailEvent) -> None:
        # The previous message's mark reaches the disk before this line is
        # printed: a crash repeats at most the one message in flight.
        await self._state.flush()
        self._output.emit(self.account.entry_id, event)

    def _on_state(self, state: FolderState) -> None:
        self._state.set(self._key(state.folder), asdict(state))

    def _on_status(self, status: WatchStatus) -> None:
        if status.connected == self._connected:
            return
        self._connected = status.connected
        if status.connected:
            how = "IDLE" if status.idle else "polling"
            if status.notify:
                how += ", other folders by NOTIFY"
            say(f"{self.label}: watching {self.settings.host} ({how})")
        elif status.last_error:
            say(f"{self.label}: connection lost ({status.last_error}); reconnecting")

    async def start(self) -> None:
        """Connect once so that a wrong password is reported at once."""
        self.watcher = ImapWatcher(
            self.settings,
            account=self.account.address,
            state=self._saved(),
            on_message=self._on_message,
            on_state=self._on_state,
            on_status=self._on_status,
            ssl_context=await ssl_context(self.settings),
            options=replace(self.account.imap, folders=self.folders),
            event=self.account.event,
            timeouts=Timeouts(io=self._timeout, reconnect=CLI_RECONNECT),
            trace=tracer(),
        )
        try:
            await self.watcher.connect_once()
        except MailError as err:
            if err.fatal:
                await self.watcher.close()
                raise explain(err, self.label, self.settings) from err
            say(f"{self.label}: {explain(err, 'not connected yet', self.settings)}")
        self._task = asyncio.create_task(self._run(self.watcher))

    async def _run(self, watcher: ImapWatcher) -> None:
        try:
            await watcher.run()
        except MailError as err:  # only fatal errors end the watcher
            if not err.fatal:
                raise
            self.error = explain(err, self.label, self.settings)
            say(f"error: {self.error}")
            self._on_fatal(self)

    async def stop(self) -> None:
        """Stop watching, then log out (so the close is no outage)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.watcher is not None:
            await self.watcher.close()


class Pop3Runner(Runner):
    """A POP3 maildrop polled by APScheduler."""

    def __init__(
        self,
        account: Account,
        state: StateFile,
        output: Output,
        on_fatal: Callable[[Runner], None],
        scheduler: AsyncIOScheduler,
        timeout: float,
    ) -> None:
        """Prepare the poller with the saved UIDLs, if any."""
        assert account.incoming is not None
        self.account = account
        self.settings = account.incoming
        self.label = account.address
        self._state = state
        self._output = output
        self._on_fatal = on_fatal
        self._scheduler = scheduler
        self._timeout = timeout
        self._key = state_key(Protocol.POP3, self.settings)
        self._lock = asyncio.Lock()
        self._failures = 0
        self._job: Any = None
        self.poller: Pop3Poller | None = None

    def _saved(self) -> Pop3State | None:
        saved = self._state.accounts.get(self._key)
        if not isinstance(saved, dict) or not isinstance(saved.get("seen"), dict):
            return None
        return Pop3State(seen={str(k): float(v) for k, v in saved["seen"].items()})

    async def _on_message(self, event: MailEvent) -> None:
        # The UIDLs already reported reach the disk before this line is
        # printed: a crash repeats at most the one message in flight.
        self._save()
        await self._state.flush()
        self._output.emit(self.account.entry_id, event)

    def _save(self) -> None:
        assert self.poller is not None
        if not self.poller.baseline_pending:  # an empty set would repeat old mail
            self._state.set(self._key, asdict(self.poller.state))

    async def start(self) -> None:
        """Poll once now, then every interval (with jitter) from the scheduler."""
        self.poller = Pop3Poller(
            self.settings,
            account=self.account.address,
            state=self._saved(),
            ssl_context=await ssl_context(self.settings),
            options=self.account.pop3,
            event=self.account.event,
            timeouts=Timeouts(io=self._timeout),
            trace=tracer(),
        )
        try:
            await self._poll()
        except MailError as err:
            if err.fatal:
                raise explain(err, self.label, self.settings) from err
            say(f"{self.label}: {explain(err, 'first poll failed', self.settings)}")
            self._failures = 1
        else:
            say(
                f"{self.label}: polling {self.settings.host} every"
                f" {self.account.pop3.poll_interval:g} s"
            )
        interval = self.account.pop3.poll_interval
        self._job = self._scheduler.add_job(
            self._scheduled,
            IntervalTrigger(seconds=interval, jitter=min(interval * 0.1, 30.0)),
            id=f"pop3 {self._key}",
            name=f"POP3 {self.label}",
            max_instances=1,
            coalesce=True,
        )
        if self._failures:
            self._retry_soon()

    async def _poll(self) -> None:
        assert self.poller is not None
        async with self._lock:
            try:
                await self.poller.poll_once(self._on_message)
            finally:
                self._save()

    async def _scheduled(self) -> None:
        """One scheduled poll; never raises into the scheduler."""
        try:
            await self._poll()
        except MailError as err:
            if err.fatal:
                self.error = explain(err, self.label, self.settings)
                say(f"error: {self.error}")
                self._job.remove()
                self._on_fatal(self)
                return
            if not self._failures:
                say(f"{self.label}: poll failed ({err}); retrying")
            self._failures += 1
            self._retry_soon()
            return
        except Exception:
            _LOGGER.exception("%s: unexpected error while polling", self.label)
            return
        if self._failures:
            say(f"{self.label}: {self.settings.host} answers again")
        self._failures = 0

    def _retry_soon(self) -> None:
        """After a failure, poll again sooner than the interval (backoff)."""
        backoff = Backoff(maximum=self.account.pop3.poll_interval, jitter=(1.0, 1.0))
        delay = backoff.delay(self._failures)
        if delay < self.account.pop3.poll_interval:
            when = datetime.now(UTC) + timedelta(seconds=delay)
            self._job.modify(next_run_time=when)

    async def stop(self) -> None:
        """Let a poll in flight finish (it commits), then stop polling."""
        if self._job is not None:
            with contextlib.suppress(Exception):
                self._job.remove()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_GRACE), self._lock:
                pass


async def cmd_watch(args: argparse.Namespace) -> int:
    """Print one JSON line per new message until stopped."""
    accounts, state_path = await watch_accounts(args)
    state = StateFile(state_path)
    await asyncio.to_thread(state.load)
    stop = asyncio.Event()
    output = Output(stop)
    scheduler = AsyncIOScheduler()
    runners: list[Runner] = []

    def on_fatal(_runner: Runner) -> None:
        if all(r.error is not None for r in runners):
            stop.set()

    for account in accounts:
        if account.protocol is Protocol.IMAP:
            runners.append(ImapRunner(account, state, output, on_fatal, args.timeout))
        else:
            runners.append(
                Pop3Runner(account, state, output, on_fatal, scheduler, args.timeout)
            )

    loop = asyncio.get_running_loop()
    started: list[Runner] = []
    code: int = Exit.OK
    scheduler.start()
    try:
        for runner in runners:
            await runner.start()
            started.append(runner)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        say("Watching; one JSON line per new message. Ctrl-C stops.")
        await stop.wait()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # A second Ctrl-C while stopping interrupts at once.
            loop.remove_signal_handler(sig)
        errors = [r.error for r in runners if r.error is not None]
        if errors:
            code = errors[0].code
    finally:
        scheduler.pause()
        for runner in started:
            await runner.stop()
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # the scheduler shuts down in a loop callback
        await state.flush()
    say(f"Stopped; state saved in {state_path}.")
    return code
