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
130   interrupted (Ctrl-C) before ``watch`` was running
====  ==================================================================
"""

from __future__ import annotations

from enum import IntEnum

from custom_components.mail_relay.mail.errors import (
    AuthError,
    CertificateError,
    ConnectError,
    MailError,
    MailTimeoutError,
    MessageError,
    OAuthRequiredError,
    SendError,
    StartTlsUnavailableError,
    TlsError,
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


def explain(err: MailError, what: str, settings: ServerSettings) -> CliError:
    """Say in plain English what went wrong, with the matching exit code."""
    where = f"{settings.host}:{settings.port}"
    detail = str(err) or type(err).__name__
    summary: str
    advice: str
    code: Exit
    if isinstance(err, OAuthRequiredError):
        summary = "OAuth2 sign-in required"
        advice = (
            f"{settings.host} accepts only OAuth2 sign-in; it refuses passwords,"
            f" even app passwords ({detail})."
        )
        code = Exit.OAUTH
    elif isinstance(err, AuthError):
        summary = f"login refused ({detail})"
        advice = (
            f"{settings.host} refused the login of {settings.username!r} ({detail})."
            " Check the password (some providers want an app password) and the"
            " user name (--username)."
        )
        code = Exit.AUTH
    elif isinstance(err, StartTlsUnavailableError):
        summary = "STARTTLS not offered, password not sent"
        advice = (
            f"{where} does not offer STARTTLS, so the password was not sent"
            f" ({detail}). Try --security ssl on the implicit-TLS port; use"
            " --security none only on a network you trust."
        )
        code = Exit.STARTTLS
    elif isinstance(err, CertificateError):
        summary = f"certificate not trusted ({detail})"
        advice = (
            f"the certificate of {settings.host} is not trusted ({detail}). If the"
            " server uses a private CA, trust it with --ca-file FILE or"
            " SSL_CERT_FILE; --insecure turns verification off (the connection"
            " stays encrypted, but anyone on the way could pose as the server)."
        )
        code = Exit.TLS
    elif isinstance(err, TlsError):
        summary = f"TLS failed ({detail})"
        advice = (
            f"TLS with {where} failed ({detail}). Check the security: ssl on"
            " 993/995/465, starttls on 143/110/587."
        )
        code = Exit.TLS
    elif isinstance(err, MailTimeoutError):
        summary = "no answer in time"
        advice = f"{where} did not answer in time ({detail})."
        code = Exit.CONNECTION
    elif isinstance(err, ConnectError):
        summary = f"cannot connect ({detail})"
        advice = f"cannot talk to {where} ({detail}). Check the host and the port."
        code = Exit.CONNECTION
    elif isinstance(err, SendError):
        summary = f"message refused ({err.code} {err.reply})"
        advice = f"the server refused the message: {err.code} {err.reply}"
        code = Exit.REFUSED
    elif isinstance(err, MessageError):
        summary = f"invalid message ({detail})"
        advice = f"the message is invalid: {detail}"
        code = Exit.USAGE
    else:
        summary = f"unexpected answer ({detail})"
        advice = f"{where} answered unexpectedly ({detail})."
        code = Exit.OTHER
    return CliError(f"{what}: {advice}", code, summary=summary)


FATAL = (AuthError, CertificateError, StartTlsUnavailableError)
