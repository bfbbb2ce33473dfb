"""Exit codes, and the one place where core errors become them.

Scripts may rely on the codes (also in the README):

====  ==================================================================
0     success (``watch``: stopped by Ctrl-C or SIGTERM, state saved)
1     other error (unexpected server answer, unreadable state file, ...)
2     usage: bad option, missing password, unreadable file, invalid mail
3     the server refused the user name or password
4     TLS failed or the certificate is not trusted
5     the server cannot be reached, dropped the connection, or timed out
6     the provider accepts only OAuth2 sign-in, not a password
7     STARTTLS was asked for but the server does not offer it
8     autodetection found no server for the address
9     ``send``: the server refused the message or a recipient
10    ``send``: the server did not confirm the message; it may have been
      delivered, so it was not sent again
11    OAuth2: the sign-in was refused or ran out, or the stored sign-in no
      longer works (token refused, refresh token revoked): sign in again
130   interrupted (Ctrl-C) before ``watch`` was running
====  ==================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from custom_components.mail_relay.mail.errors import (
    AuthError,
    CertificateError,
    ConnectError,
    MailError,
    MailTimeoutError,
    MessageError,
    OAuthRequiredError,
    OAuthTokenRefused,
    SendError,
    SignInError,
    StartTlsUnavailableError,
    TlsError,
    TokenRefreshRefused,
    TokenServiceUnavailable,
    UnconfirmedSendError,
)
from custom_components.mail_relay.mail.models import ServerSettings


class Exit(IntEnum):
    """Exit codes; scripts may rely on them."""

    OK = 0
    OTHER = 1
    USAGE = 2
    AUTH = 3
    TLS = 4
    CONNECTION = 5
    OAUTH = 6
    STARTTLS = 7
    NOT_FOUND = 8
    REFUSED = 9
    UNCONFIRMED = 10
    SIGN_IN = 11
    INTERRUPTED = 130


class CliError(Exception):
    """Ends the command with a message and an exit code."""

    def __init__(self, message: str, code: Exit, *, summary: str = "") -> None:
        """Keep the exit code (and a few words for tables) next to the message."""
        super().__init__(message)
        self.code = code
        self.summary = summary or message


def usage_error(message: str) -> CliError:
    """Return the error for a command that cannot run as given."""
    return CliError(message, Exit.USAGE)


@dataclass(frozen=True, slots=True)
class _Row:
    error: type[MailError]
    code: Exit
    summary: str  # a few words for tables
    advice: str  # the sentence after "what: "


# Most specific class first: the first row the error is an instance of wins.
# Fields: {host}, {where} (host:port), {username}, {detail}, {code}, {reply},
# {security} (the option that sets this server's security).
_TABLE: tuple[_Row, ...] = (
    _Row(
        OAuthTokenRefused,
        Exit.SIGN_IN,
        "OAuth2 token refused ({detail})",
        "{host} refused the OAuth2 token of {username!r} ({detail}): the"
        " account may lack IMAP/POP/SMTP access or the scope, or the sign-in"
        " was for another account. Sign in again with --oauth --sign-in.",
    ),
    _Row(
        TokenRefreshRefused,
        Exit.SIGN_IN,
        "sign-in expired ({detail})",
        "the stored sign-in of {username!r} no longer works ({detail})."
        " Sign in again with --oauth --sign-in.",
    ),
    _Row(
        SignInError,
        Exit.SIGN_IN,
        "sign-in failed ({detail})",
        "the sign-in did not complete ({detail}).",
    ),
    _Row(
        TokenServiceUnavailable,
        Exit.CONNECTION,
        "sign-in service unavailable ({detail})",
        "the sign-in service could not give a token ({detail}); try again later.",
    ),
    _Row(
        OAuthRequiredError,
        Exit.OAUTH,
        "OAuth2 sign-in required",
        "{host} accepts only OAuth2 sign-in; it refuses passwords,"
        " even app passwords ({detail}). Sign in with --oauth.",
    ),
    _Row(
        AuthError,
        Exit.AUTH,
        "login refused ({detail})",
        "{host} refused the login of {username!r} ({detail})."
        " Check the password (some providers want an app password) and the"
        " user name (--username).",
    ),
    _Row(
        StartTlsUnavailableError,
        Exit.STARTTLS,
        "STARTTLS not offered, password not sent",
        "{where} does not offer STARTTLS, so the password was not sent"
        " ({detail}). Try {security} ssl on the implicit-TLS port; use"
        " {security} none only on a network you trust.",
    ),
    _Row(
        CertificateError,
        Exit.TLS,
        "certificate not trusted ({detail})",
        "the certificate of {host} is not trusted ({detail}). If the"
        " server uses a private CA, trust it with --ca-file FILE or"
        " SSL_CERT_FILE; --insecure turns verification off (the connection"
        " stays encrypted, but anyone on the way could pose as the server).",
    ),
    _Row(
        TlsError,
        Exit.TLS,
        "TLS failed ({detail})",
        "TLS with {where} failed ({detail}). Check {security}: ssl on"
        " 993/995/465, starttls on 143/110/587.",
    ),
    _Row(
        MailTimeoutError,
        Exit.CONNECTION,
        "no answer in time",
        "{where} did not answer in time ({detail}).",
    ),
    _Row(
        ConnectError,
        Exit.CONNECTION,
        "cannot connect ({detail})",
        "cannot talk to {where} ({detail}). Check the host and the port.",
    ),
    _Row(
        SendError,
        Exit.REFUSED,
        "message refused ({code} {reply})",
        "the server refused the message: {code} {reply}",
    ),
    _Row(
        UnconfirmedSendError,
        Exit.UNCONFIRMED,
        "not confirmed, may have been delivered",
        "{where} did not confirm the message ({detail}). It may have been"
        " delivered, so it was not sent again; check before sending it again.",
    ),
    _Row(
        MessageError,
        Exit.USAGE,
        "invalid message ({detail})",
        "the message is invalid: {detail}",
    ),
    _Row(
        MailError,
        Exit.OTHER,
        "unexpected answer ({detail})",
        "{where} answered unexpectedly ({detail}).",
    ),
)


def exit_code(err: MailError) -> Exit:
    """Return the exit code for a core error."""
    return _row(err).code


def _row(err: MailError) -> _Row:
    return next(row for row in _TABLE if isinstance(err, row.error))


def explain(
    err: MailError, what: str, settings: ServerSettings, *, smtp: bool = False
) -> CliError:
    """Say in plain English what went wrong, with the matching exit code.

    ``smtp``: the server is the outgoing one, whose security is set by
    ``--smtp-security``, not ``--security``.
    """
    row = _row(err)
    fields = {
        "security": "--smtp-security" if smtp else "--security",
        "host": settings.host,
        "where": f"{settings.host}:{settings.port}",
        "username": settings.username,
        "detail": str(err) or type(err).__name__,
        "code": getattr(err, "code", ""),
        "reply": getattr(err, "reply", ""),
    }
    return CliError(
        f"{what}: {row.advice.format(**fields)}",
        row.code,
        summary=row.summary.format(**fields),
    )
