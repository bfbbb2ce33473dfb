"""Notify entity: ``notify.send_message`` mails the account's default recipients."""

from __future__ import annotations

from homeassistant.components.notify import NotifyEntity, NotifyEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import MailRelayConfigEntry
from .entity import MailRelayEntity
from .mail.compose import OutgoingMail
from .services import async_send_mail, default_recipients, sender_name

# The sender serialises messages itself (one kept connection per account).
PARALLEL_UPDATES = 0

DEFAULT_SUBJECT = "Home Assistant"


async def async_setup_entry(
    hass: HomeAssistant,
    entry: MailRelayConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the notify entity when the account has an SMTP server."""
    if entry.runtime_data.sender is None:
        return
    async_add_entities([MailRelayNotifyEntity(entry)])


class MailRelayNotifyEntity(MailRelayEntity, NotifyEntity):
    """Sends a notification as a plain-text mail; the title is the subject."""

    _attr_translation_key = "send_mail"
    _attr_supported_features = NotifyEntityFeature.TITLE

    def __init__(self, entry: MailRelayConfigEntry) -> None:
        """One per account."""
        super().__init__(entry, "notify")

    async def async_send_message(self, message: str, title: str | None = None) -> None:
        """Mail the message; errors surface as translated HA errors."""
        entry = self.entry
        await async_send_mail(
            self.hass,
            entry,
            OutgoingMail(
                sender=entry.runtime_data.email,
                sender_name=sender_name(entry),
                to=default_recipients(entry),
                subject=title or DEFAULT_SUBJECT,
                text=message,
            ),
        )
