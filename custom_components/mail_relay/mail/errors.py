"""One exception hierarchy for every protocol, so callers map errors once.

Each class says whether it is *fatal*: retrying cannot help until the user
acts (a new password, a trusted certificate, other settings). Hosts stop
retrying on a fatal error and ask the user; every other error is retried.
"""

from __future__ import annotations

from typing import ClassVar


class MailError(Exception):
    """Base of every error the mail core raises."""

    fatal: ClassVar[bool] = False


class ConnectError(MailError):
    """The server could not be reached, or dropped the connection."""


class MailTimeoutError(ConnectError):
    """The server did not answer in time."""


class TlsError(ConnectError):
    """The TLS handshake failed."""


class CertificateError(TlsError):
    """The server's certificate is not trusted (self-signed, expired, wrong name)."""

    fatal = True


class StartTlsUnavailableError(TlsError):
    """STARTTLS/STLS was required but the server does not offer it.

    Raised before any credential is sent: we fail closed, never fall back to
    clear text.
    """

    fatal = True


class AuthError(MailError):
    """The server refused the credentials."""

    fatal = True


class OAuthRequiredError(AuthError):
    """The provider accepts only OAuth2 (passwords are refused)."""


class ProtocolError(MailError):
    """The server answered something we cannot use."""


class MessageError(MailError, ValueError):
    """An outgoing message is invalid (bad address, header injection, ...)."""


class SendError(MailError):
    """The SMTP server refused a message; carries its reply."""

    def __init__(self, code: int, reply: str, *, permanent: bool) -> None:
        """Keep the server's code and text for the user."""
        super().__init__(f"{code} {reply}")
        self.code = code
        self.reply = reply
        self.permanent = permanent


class UnconfirmedSendError(MailError):
    """The whole message went out but the server's reply to it never came.

    The server may have delivered it: sending again could deliver it twice,
    so it is never retried, and the user is told it may have arrived.
    """


class MessageNotFoundError(ProtocolError):
    """No message with that UID in the folder (moved, deleted, or never there)."""
