"""One exception hierarchy for every protocol, so callers map errors once.

Each class says whether it is *fatal*: retrying cannot help until the user
acts (a new password, a trusted certificate, other settings). Hosts stop
retrying on a fatal error and ask the user; every other error is retried.
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

type OAuthReason = Literal["expired", "scope", "account", "invalid"]
OAUTH_REASONS: Final[tuple[OAuthReason, ...]] = (
    "expired",
    "scope",
    "account",
    "invalid",
)


class MailError(Exception):
    """Base of every error the mail core raises."""

    fatal: ClassVar[bool] = False


class ConnectError(MailError):
    """The server could not be reached, or dropped the connection."""


class MailTimeoutError(ConnectError):
    """The server did not answer in time."""


class TokenExpiredError(ConnectError):
    """The server ended the session because the OAuth2 token expired.

    Exchange's ``* BYE Session invalidated - AccessTokenExpired``: reconnect
    at once with a fresh token, without backing off.
    """


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


class OAuthTokenRefused(AuthError):
    """The mail server refused the OAuth2 token, even after one forced refresh.

    ``reason``: ``"expired"``, ``"scope"`` (the token lacks the mail scope),
    ``"account"`` (a token of another account) or ``"invalid"``. The user must
    sign in again.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        """Keep the reason (an unknown one reads as ``"invalid"``)."""
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: OAuthReason = next(
            (known for known in OAUTH_REASONS if known == reason), "invalid"
        )


class TokenRefreshRefused(AuthError):
    """The authorization server refused the refresh token (revoked, expired).

    Raised by a token source; the user must sign in again.
    """


class TokenServiceUnavailable(ConnectError):
    """The authorization server could not be reached or failed (5xx).

    Raised by a token source; retried like a connection error, never a
    reason to sign in again.
    """


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


type SignInReason = Literal["denied", "expired", "client", "config", "state", "refused"]


class SignInError(MailError):
    """A sign-in did not give tokens: the user must start it again or fix it.

    ``reason``: ``"denied"`` (the user or the server said no), ``"expired"``
    (the code ran out), ``"client"`` (the client id or secret was refused),
    ``"config"`` (unusable endpoints or metadata), ``"state"`` (a redirect that
    does not belong to this sign-in), ``"refused"`` (any other refusal).
    """

    fatal: ClassVar[bool] = True

    def __init__(self, reason: SignInReason, message: str) -> None:
        """Keep the reason for hosts to pick their message."""
        super().__init__(message)
        self.reason: SignInReason = reason
