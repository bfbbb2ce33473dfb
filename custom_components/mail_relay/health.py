"""An account's outage clock and the repair issue it raises.

Mail that stops arriving looks exactly like no mail: the connection entity
shows an outage, but only to someone who looks. After ``HealthOptions.
repair_after`` seconds without a working connection a repair issue says so
in Settings, and it goes away by itself when the account connects again.

The clock lives in ``hass.data`` per entry, not in the coordinator: a reload
or a setup retry makes a new coordinator, and must neither restart the count
nor clear an issue the outage still deserves. Disabling or deleting the entry
clears it.

A refused password raises no issue of ours: the reauth flow Home Assistant
starts for it brings its own (``config_entry_reauth``) and the way to fix it.
"""

from __future__ import annotations

from datetime import datetime

from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_call_later
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN

ISSUE_CANNOT_CONNECT = "cannot_connect"


class AccountHealth:
    """When one account's outage began, and whether its issue is raised."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Start healthy; ``down`` starts the clock."""
        self.hass = hass
        self.entry_id = entry_id
        self.repair_after = 0.0  # set by the coordinator from the options
        self.down_since: datetime | None = None
        self.raised = False
        self._account = ""
        self._host = ""
        self._error = ""
        self._cancel: CALLBACK_TYPE | None = None

    @property
    def issue_id(self) -> str:
        """Return the id of this account's repair issue."""
        return f"{ISSUE_CANNOT_CONNECT}_{self.entry_id}"

    @callback
    def down(self, account: str, host: str, error: str | None) -> None:
        """Note a failed connection or login; raise the issue when it lasted."""
        self._account, self._host, self._error = account, host, error or ""
        now = dt_util.utcnow()
        if self.down_since is None:
            self.down_since = now
        if self.raised or self._cancel is not None:
            return
        left = self.repair_after - (now - self.down_since).total_seconds()
        if left <= 0:
            self._raise()
        else:
            self._cancel = async_call_later(self.hass, left, self._on_timer)

    @callback
    def up(self) -> None:
        """Stop the clock and clear the issue: the account works."""
        self.down_since = None
        self.pause()

    @callback
    def cancel(self) -> None:
        """Stop the timer (Home Assistant stops); the issue stays as it is."""
        if self._cancel is not None:
            self._cancel()
            self._cancel = None

    @callback
    def pause(self) -> None:
        """Stop watching (the entry is disabled); the clock keeps its start."""
        self.cancel()
        if self.raised:
            self.raised = False
            ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)

    @callback
    def _on_timer(self, _now: datetime) -> None:
        self._cancel = None
        entry = self.hass.config_entries.async_get_entry(self.entry_id)
        if entry is None or entry.disabled_by is not None:
            return
        if any(entry.async_get_active_flows(self.hass, {SOURCE_REAUTH})):
            return  # Home Assistant's reauth issue says it, with the fix
        self._raise()

    @callback
    def _raise(self) -> None:
        self.raised = True
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self.issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_CANNOT_CONNECT,
            translation_placeholders={
                "account": self._account,
                "host": self._host,
                "minutes": f"{self.repair_after / 60:g}",
                "error": self._error,
            },
        )


DATA_HEALTH: HassKey[dict[str, AccountHealth]] = HassKey(f"{DOMAIN}_health")


@callback
def account_health(hass: HomeAssistant, entry_id: str) -> AccountHealth:
    """Return the entry's health, the same one across reloads."""
    if (kept := hass.data.get(DATA_HEALTH)) is None:
        kept = hass.data[DATA_HEALTH] = {}

        @callback
        def _on_stop(_event: Event) -> None:
            for health in kept.values():
                health.cancel()

        hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _on_stop)
    if entry_id not in kept:
        kept[entry_id] = AccountHealth(hass, entry_id)
    return kept[entry_id]


@callback
def forget_health(hass: HomeAssistant, entry_id: str) -> None:
    """Drop a removed entry's health and its issue."""
    health = hass.data.get(DATA_HEALTH, {}).pop(entry_id, None)
    if health is not None:
        health.pause()
