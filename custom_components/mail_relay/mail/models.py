"""Settings shared by every protocol client."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .oauth import TokenSource


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
    # When set, the clients log in with OAuth2 as ``username`` (XOAUTH2, else
    # OAUTHBEARER) and ignore ``password``.
    token_source: TokenSource | None = field(default=None, repr=False, compare=False)


# Well-known ports (RFC 8314, RFC 6409): used when a source names no port.
DEFAULT_PORTS: dict[tuple[Protocol, Security], int] = {
    (Protocol.IMAP, Security.SSL): 993,
    (Protocol.IMAP, Security.STARTTLS): 143,
    (Protocol.IMAP, Security.NONE): 143,
    (Protocol.POP3, Security.SSL): 995,
    (Protocol.POP3, Security.STARTTLS): 110,
    (Protocol.POP3, Security.NONE): 110,
    (Protocol.SMTP, Security.SSL): 465,
    (Protocol.SMTP, Security.STARTTLS): 587,
    (Protocol.SMTP, Security.NONE): 587,
}
