"""Device trigger "mail received", with optional sender, subject and verification.

It listens to the ``mail_relay_new_mail`` bus event of the device's account,
which fires once per new message and never on a reload or restart, unlike a
State trigger on the event entity (which changes to unavailable and back).
The action gets the same ``trigger.event`` as an Event trigger, so templates
such as ``{{ trigger.event.data.subject }}`` work with either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.const import CONF_DEVICE_ID, CONF_DOMAIN, CONF_PLATFORM, CONF_TYPE
from homeassistant.core import CALLBACK_TYPE, Event, HassJob, HomeAssistant, callback
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN, EVENT_NEW_MAIL
from .mail.filtering import sender_matches

TRIGGER_MAIL_RECEIVED = "mail_received"
CONF_SENDER = "sender"  # an address, or a domain (with or without "@")
CONF_SUBJECT_CONTAINS = "subject_contains"
CONF_SENDER_VERIFIED = "sender_verified"

EXTRA_FIELDS: dict[vol.Marker, Any] = {
    vol.Optional(CONF_SENDER): cv.string,
    vol.Optional(CONF_SUBJECT_CONTAINS): cv.string,
    vol.Optional(CONF_SENDER_VERIFIED): cv.boolean,
}
TRIGGER_SCHEMA = DEVICE_TRIGGER_BASE_SCHEMA.extend(
    {vol.Required(CONF_TYPE): vol.In([TRIGGER_MAIL_RECEIVED])}
).extend(EXTRA_FIELDS)


def _entry_id(hass: HomeAssistant, device_id: str) -> str | None:
    """Return the config entry of one of our devices (entity.py: one per entry)."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        return None
    return next((key for domain, key in device.identifiers if domain == DOMAIN), None)


async def async_get_triggers(
    hass: HomeAssistant, device_id: str
) -> list[dict[str, Any]]:
    """Offer "mail received" on every account's device."""
    if _entry_id(hass, device_id) is None:
        return []
    return [
        {
            CONF_PLATFORM: "device",
            CONF_DOMAIN: DOMAIN,
            CONF_DEVICE_ID: device_id,
            CONF_TYPE: TRIGGER_MAIL_RECEIVED,
        }
    ]


async def async_get_trigger_capabilities(
    hass: HomeAssistant, config: ConfigType
) -> dict[str, vol.Schema]:
    """Return the optional conditions the editor shows under the trigger."""
    return {"extra_fields": vol.Schema(EXTRA_FIELDS)}


def mail_matches(config: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    """Say whether an event's data meets the trigger's optional conditions.

    ``sender`` is an address or a domain (its subdomains too), by the
    account filter's rule; ``subject_contains`` ignores case;
    ``sender_verified: true`` asks for the event's ``sender_verified`` (DMARC
    or aligned DKIM passed, by the receiving server's Authentication-Results),
    and ``false`` asks for nothing, as the editor's switch left off.
    """
    wanted = str(config.get(CONF_SENDER) or "")
    if wanted.strip() and not sender_matches(wanted, data.get("sender")):
        return False
    part = str(config.get(CONF_SUBJECT_CONTAINS) or "").casefold()
    if part and part not in str(data.get("subject") or "").casefold():
        return False
    return not config.get(CONF_SENDER_VERIFIED) or data.get("sender_verified") is True


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    """Run the action for each new mail of the device's account that matches."""
    entry_id = _entry_id(hass, config[CONF_DEVICE_ID])
    trigger_data = trigger_info["trigger_data"]
    job = HassJob(action, f"mail received trigger {trigger_info}")

    @callback
    def matches(data: Mapping[str, Any]) -> bool:
        return data.get("entry_id") == entry_id and mail_matches(config, data)

    @callback
    def handle(event: Event) -> None:
        hass.async_run_hass_job(
            job,
            {
                "trigger": {
                    **trigger_data,
                    CONF_PLATFORM: "device",
                    CONF_DOMAIN: DOMAIN,
                    CONF_DEVICE_ID: config[CONF_DEVICE_ID],
                    CONF_TYPE: TRIGGER_MAIL_RECEIVED,
                    "event": event,
                    "description": f"mail received by {event.data.get('account')}",
                }
            },
            event.context,
        )

    return hass.bus.async_listen(EVENT_NEW_MAIL, handle, event_filter=matches)
