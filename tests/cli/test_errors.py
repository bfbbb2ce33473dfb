"""The CLI's one table from core errors to exit codes and advice."""

from __future__ import annotations

import inspect

import pytest

from custom_components.mail_relay.mail import errors as core
from custom_components.mail_relay.mail.errors import MailError, SendError
from custom_components.mail_relay.mail.models import Security, ServerSettings
from mail_relay_cli.errors import Exit, exit_code, explain

SETTINGS = ServerSettings("mail.example.net", 993, Security.SSL, "ann", "secret")
CORE_ERRORS = [
    cls
    for _, cls in inspect.getmembers(core, inspect.isclass)
    if issubclass(cls, MailError)
]
CODES = {
    "OAuthRequiredError": Exit.OAUTH,
    "OAuthTokenRefused": Exit.SIGN_IN,
    "TokenRefreshRefused": Exit.SIGN_IN,
    "SignInError": Exit.SIGN_IN,
    "TokenServiceUnavailable": Exit.CONNECTION,
    "TokenExpiredError": Exit.CONNECTION,
    "AuthError": Exit.AUTH,
    "StartTlsUnavailableError": Exit.STARTTLS,
    "CertificateError": Exit.TLS,
    "TlsError": Exit.TLS,
    "MailTimeoutError": Exit.CONNECTION,
    "ConnectError": Exit.CONNECTION,
    "SendError": Exit.REFUSED,
    "UnconfirmedSendError": Exit.UNCONFIRMED,
    "MessageError": Exit.USAGE,
    "ProtocolError": Exit.OTHER,
    "MessageNotFoundError": Exit.OTHER,
    "MailError": Exit.OTHER,
}


def make(cls: type[MailError]) -> MailError:
    if cls is SendError:
        return SendError(550, "no such user", permanent=True)
    if cls is core.SignInError:
        return core.SignInError("denied", "why")
    return cls("why")


def test_every_core_error_has_its_code() -> None:
    assert set(CODES) == {cls.__name__ for cls in CORE_ERRORS}
    for cls in CORE_ERRORS:
        err = make(cls)
        assert exit_code(err) is CODES[cls.__name__]
        assert explain(err, "check", SETTINGS).code is CODES[cls.__name__]


@pytest.mark.parametrize(
    ("err", "message", "summary"),
    [
        (
            core.AuthError("bad"),
            "check: mail.example.net refused the login of 'ann' (bad). Check the"
            " password (some providers want an app password) and the user name"
            " (--username).",
            "login refused (bad)",
        ),
        (
            core.MailTimeoutError(),
            "watch: mail.example.net:993 did not answer in time (MailTimeoutError).",
            "no answer in time",
        ),
        (
            SendError(550, "no such user", permanent=True),
            "send: the server refused the message: 550 no such user",
            "message refused (550 no such user)",
        ),
    ],
)
def test_explain_words(err: MailError, message: str, summary: str) -> None:
    what = message.split(":", 1)[0]
    explained = explain(err, what, SETTINGS)
    assert str(explained) == message
    assert explained.summary == summary


def test_advice_names_the_option_of_the_server_that_failed() -> None:
    smtp = ServerSettings("smtp.example.net", 587, Security.STARTTLS, "ann", "x")
    err = core.StartTlsUnavailableError("no STARTTLS")
    outgoing = str(explain(err, "SMTP login", smtp, smtp=True))
    assert "Try --smtp-security ssl" in outgoing
    assert "--smtp-security none" in outgoing
    assert "--security " not in outgoing.replace("--smtp-security ", "")
    incoming = str(explain(err, "IMAP login", SETTINGS))
    assert "Try --security ssl" in incoming
    tls = str(explain(core.TlsError("bad record"), "send", smtp, smtp=True))
    assert "Check --smtp-security: ssl on 993/995/465" in tls
