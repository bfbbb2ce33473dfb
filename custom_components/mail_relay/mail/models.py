"""Settings shared by every protocol client."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Security(StrEnum):
    """How the connection is protected."""

    SSL = "ssl"  # implicit TLS from the first byte (993, 995, 465)
    STARTTLS = "starttls"  # upgrade on the plain port, fail closed if not offered
    NONE = "none"  # clear text, only after the user confirmed it


class Protocol(StrEnum):
    """Mail protocols we speak."""

    IMAP = "imap"
    POP3 = "pop3"
    SMTP = "smtp"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Where and how to log in to one server."""

    host: str
    port: int
    security: Security
    username: str
    password: str = field(default="", repr=False)
    verify_tls: bool = True
