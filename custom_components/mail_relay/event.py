"""Event entity: one ``received`` event per new message."""

from __future__ import annotations

from typing import Any

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import MailRelayConfigEntry
from .entity import MailRelayAccountEntity

PARALLEL_UPDATES = 0

EVENT_RECEIVED = "received"

DESCRIPTION = EventEntityDescription(
    key="mail",
    translation_key="mail",
    event_types=[EVENT_RECEIVED],
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MailRelayConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the account's event entity."""
    async_add_entities([MailEventEntity(entry)])


class MailEventEntity(MailRelayAccountEntity, EventEntity):
    """Fires ``received`` with the same data as the bus event."""

    entity_description = DESCRIPTION

    def __init__(self, entry: MailRelayConfigEntry) -> None:
        """Set up the entity for the account."""
        super().__init__(entry, DESCRIPTION.key)

    async def async_added_to_hass(self) -> None:
        """Listen for new mail."""
        await super().async_added_to_hass()
        self.async_on_remove(self.coordinator.async_add_event_listener(self._on_mail))

    @callback
    def _on_mail(self, data: dict[str, Any]) -> None:
        self._trigger_event(EVENT_RECEIVED, data)
        self.async_write_ha_state()
