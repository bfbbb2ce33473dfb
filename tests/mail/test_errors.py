"""The core decides which errors are fatal: one class attribute."""

from __future__ import annotations

import inspect

from custom_components.mail_relay.mail import errors

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
        "OAuthTokenRefused",
        "TokenRefreshRefused",
        "SignInError",
        "CertificateError",
        "StartTlsUnavailableError",
    }
