"""The core decides which errors are fatal: one class attribute."""

from __future__ import annotations

import inspect

from custom_components.mail_relay.mail import errors
from custom_components.mail_relay.mail.imap import FATAL_ERRORS

CORE_ERRORS = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.MailError)
]


def test_fatal_classes() -> None:
    fatal = {cls.__name__ for cls in CORE_ERRORS if cls.fatal}
    assert fatal == {
        "AuthError",
        "OAuthRequiredError",
        "CertificateError",
        "StartTlsUnavailableError",
    }


def test_imap_fatal_errors_agree_with_the_attribute() -> None:
    """Until the watcher reads ``fatal``, its tuple must say the same."""
    roots = {
        cls
        for cls in CORE_ERRORS
        if cls.fatal
        and not any(
            base.fatal
            for base in cls.__mro__[1:-1]
            if issubclass(base, errors.MailError)
        )
    }
    assert set(FATAL_ERRORS) == roots
    for cls in CORE_ERRORS:
        assert cls.fatal == issubclass(cls, FATAL_ERRORS), cls
