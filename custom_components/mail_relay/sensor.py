"""Sensors: unread count (IMAP) or messages waiting (POP3), the last message, the last check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity
from homeassistant.helpers.typing import StateType

from .coordinator import MailRelayCoordinator
from .data import MailRelayConfigEntry
from .entity import MailRelayAccountEntity
from .mail.models import Protocol

PARALLEL_UPDATES = 0
LAST_MESSAGE_ATTRIBUTES = (
    "sender",
    "sender_name",
    "date",
    "folder",
    "uid",
    "message_id",
)


@dataclass(frozen=True, kw_only=True)
class MailSensorDescription(SensorEntityDescription):
    """How a sensor reads the coordinator."""

    value_fn: Callable[[MailRelayCoordinator], StateType]
    attributes_fn: Callable[[MailRelayCoordinator], dict[str, Any] | None] = (
        lambda _: None
    )


def _last_subject(coordinator: MailRelayCoordinator) -> StateType:
    if coordinator.last_event is None:
        return None
    subject: str = coordinator.last_event.get("subject") or ""
    return subject[:255]


def _last_attributes(coordinator: MailRelayCoordinator) -> dict[str, Any] | None:
    if coordinator.last_event is None:
        return None
    return {key: coordinator.last_event.get(key) for key in LAST_MESSAGE_ATTRIBUTES}


SENSORS = {
    Protocol.IMAP: MailSensorDescription(
        key="unread",
        translation_key="unread",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda c: c.unread,
    ),
    Protocol.POP3: MailSensorDescription(
        key="waiting",
        translation_key="waiting",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda c: c.unread,
    ),
}
LAST_MESSAGE = MailSensorDescription(
    key="last_message",
    translation_key="last_message",
    value_fn=_last_subject,
    attributes_fn=_last_attributes,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MailRelayConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the account's sensors."""
    count = SENSORS[entry.runtime_data.protocol]
    async_add_entities(
        [MailSensor(entry, count), LastMessageSensor(entry), LastCheckSensor(entry)]
    )


class MailSensor(MailRelayAccountEntity, SensorEntity):
    """A value read from the account's coordinator."""

    entity_description: MailSensorDescription

    def __init__(
        self, entry: MailRelayConfigEntry, description: MailSensorDescription
    ) -> None:
        """Set up the sensor."""
        super().__init__(entry, description.key)
        self.entity_description = description

    @property
    def native_value(self) -> StateType:
        """Return the current value."""
        return self.entity_description.value_fn(self.coordinator)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Return details of the last message."""
        return self.entity_description.attributes_fn(self.coordinator)


class LastMessageSensor(MailSensor, RestoreEntity):
    """The last message's subject, kept across reloads and restarts.

    Only new mail fires events, so after a restart the coordinator knows no
    last message until the next one arrives: until then the sensor shows the
    one it showed before, with its attributes.
    """

    def __init__(self, entry: MailRelayConfigEntry) -> None:
        """Set up the sensor; nothing restored yet."""
        super().__init__(entry, LAST_MESSAGE)
        self._restored: tuple[StateType, dict[str, Any]] | None = None

    async def async_added_to_hass(self) -> None:
        """Take back the state written before the reload or restart."""
        await super().async_added_to_hass()
        last = await self.async_get_last_state()
        if last is not None and last.state not in (STATE_UNKNOWN, STATE_UNAVAILABLE):
            attributes = {
                key: last.attributes.get(key) for key in LAST_MESSAGE_ATTRIBUTES
            }
            self._restored = (last.state, attributes)

    @property
    def native_value(self) -> StateType:
        """Return the subject of the last message seen, restored if need be."""
        if self.coordinator.last_event is None and self._restored is not None:
            return self._restored[0]
        return super().native_value

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Return the last message's details, restored if need be."""
        if self.coordinator.last_event is None and self._restored is not None:
            return self._restored[1]
        return super().extra_state_attributes


LAST_CHECK = SensorEntityDescription(
    key="last_check",
    translation_key="last_check",
    device_class=SensorDeviceClass.TIMESTAMP,
    entity_category=EntityCategory.DIAGNOSTIC,
)


class LastCheckSensor(MailRelayAccountEntity, RestoreSensor):
    """When the server last answered a whole round (login, IDLE, NOOP, poll).

    Available during an outage, which is when it matters: it shows how long
    nothing has come through. After a restart it shows the time it showed
    before, until the first check.
    """

    entity_description = LAST_CHECK

    def __init__(self, entry: MailRelayConfigEntry) -> None:
        """Set up the sensor; nothing restored yet."""
        super().__init__(entry, LAST_CHECK.key)
        self._restored: datetime | None = None

    async def async_added_to_hass(self) -> None:
        """Take back the time written before the reload or restart."""
        await super().async_added_to_hass()
        last = await self.async_get_last_sensor_data()
        if last is not None and isinstance(last.native_value, datetime):
            self._restored = last.native_value

    @property
    def available(self) -> bool:
        """Always: an outage is what this sensor is for."""
        return True

    @property
    def native_value(self) -> datetime | None:
        """Return the last successful check."""
        return self.coordinator.last_check or self._restored
