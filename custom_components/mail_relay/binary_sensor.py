"""Connection diagnostic: is the mail server reachable, and is mail pushed or polled."""

from __future__ import annotations

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import MailRelayConfigEntry
from .entity import MailRelayAccountEntity

PARALLEL_UPDATES = 0

DESCRIPTION = BinarySensorEntityDescription(
    key="connection",
    translation_key="connection",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MailRelayConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the connection diagnostic."""
    async_add_entities([ConnectionSensor(entry)])


class ConnectionSensor(MailRelayAccountEntity, BinarySensorEntity):
    """On while connected; stays available to show the outage itself."""

    entity_description = DESCRIPTION

    def __init__(self, entry: MailRelayConfigEntry) -> None:
        """Set up the diagnostic."""
        super().__init__(entry, DESCRIPTION.key)

    @property
    def available(self) -> bool:
        """Always available: it reports the outage."""
        return True

    @property
    def extra_state_attributes(self) -> dict[str, str | None]:
        """Say how mail reaches us: IDLE push or polling (issue 19, point 6)."""
        return {"push_mode": self.coordinator.push_mode}

    @property
    def is_on(self) -> bool:
        """Return whether the server connection is up."""
        return self.coordinator.connected
