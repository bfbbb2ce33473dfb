"""Base entity: one device per mail account."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity

from .const import DOMAIN
from .data import MailRelayConfigEntry
from .settings import account_name


class MailRelayEntity(Entity):
    """An entity of one account's device."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, entry: MailRelayConfigEntry, key: str) -> None:
        """Attach the entity to the account's device."""
        self.entry = entry
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=account_name(entry.runtime_data.email, entry.runtime_data.protocol),
            manufacturer="Mail Relay",
            model=entry.runtime_data.protocol.value.upper(),
            entry_type=DeviceEntryType.SERVICE,
        )


class MailRelayAccountEntity(MailRelayEntity):
    """An entity that follows the account's coordinator."""

    def __init__(self, entry: MailRelayConfigEntry, key: str) -> None:
        """Subscribe to the coordinator when added."""
        super().__init__(entry, key)
        self.coordinator = entry.runtime_data.coordinator

    async def async_added_to_hass(self) -> None:
        """Write state whenever the coordinator reports a change."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.async_add_listener(self.async_write_ha_state)
        )

    @property
    def available(self) -> bool:
        """Unavailable while the server cannot be reached."""
        return self.coordinator.connected
