"""Typed runtime data stored on the config entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

from .mail.models import Protocol, ServerSettings
from .mail.smtp import SmtpSender
from .settings import AccountOptions

if TYPE_CHECKING:
    from .coordinator import MailRelayCoordinator


@dataclass
class MailRelayData:
    """What a loaded entry holds for its platforms and actions."""

    email: str
    protocol: Protocol
    incoming: ServerSettings
    smtp: ServerSettings | None
    options: AccountOptions
    coordinator: MailRelayCoordinator
    # One sender per account, so bursts of notifications share a connection;
    # None when the account sends no mail.
    sender: SmtpSender | None


type MailRelayConfigEntry = ConfigEntry[MailRelayData]
