"""Base entity: every entity of an account hangs off one device per account."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity

from .const import DOMAIN
from .data import MailRelayConfigEntry


class MailRelayEntity(Entity):
    """Names come from translations; the device is named after the address."""

    _attr_has_entity_name = True

    def __init__(self, entry: MailRelayConfigEntry, key: str) -> None:
        """Attach the entity to the account's device, unique per entry and key."""
        self.entry = entry
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.runtime_data.email,
            entry_type=DeviceEntryType.SERVICE,
        )
