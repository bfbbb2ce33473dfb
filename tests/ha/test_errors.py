"""The one table from core errors to Home Assistant errors and translations."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryNotReady,
    HomeAssistantError,
    ServiceValidationError,
)

from custom_components.mail_relay.const import DOMAIN
from custom_components.mail_relay.errors import (
    TABLE,
    Where,
    flow_error_key,
    ha_error,
    needs_reauth,
)
from custom_components.mail_relay.mail import errors as core
from custom_components.mail_relay.mail.errors import MailError, SendError

STRINGS = json.loads(
    (
        Path(__file__).parents[2] / "custom_components/mail_relay/strings.json"
    ).read_text()
)
CORE_ERRORS = [
    cls
    for _, cls in inspect.getmembers(core, inspect.isclass)
    if issubclass(cls, MailError)
]


def make(cls: type[MailError], text: str = "boom") -> MailError:
    if cls is SendError:
        return SendError(554, "5.7.1 spam", permanent=True)
    if cls is core.SignInError:
        return core.SignInError("denied", text)
    return cls(text)


# (core class, flow key, setup, send (SMTP), IMAP action): what users saw before.
EXPECTED = [
    ("OAuthTokenRefused", "oauth_token_refused",
     (ConfigEntryAuthFailed, "oauth_token_refused"),
     (HomeAssistantError, "oauth_token_refused"), "oauth_token_refused"),
    ("TokenRefreshRefused", "oauth_refresh_refused",
     (ConfigEntryAuthFailed, "oauth_refresh_refused"),
     (HomeAssistantError, "oauth_refresh_refused"), "oauth_refresh_refused"),
    ("SignInError", "sign_in_failed", (ConfigEntryAuthFailed, "sign_in_failed"),
     (HomeAssistantError, "sign_in_failed"), "sign_in_failed"),
    ("TokenServiceUnavailable", "oauth_unavailable",
     (ConfigEntryNotReady, "oauth_unavailable"),
     (HomeAssistantError, "oauth_unavailable"), "oauth_unavailable"),
    ("OAuthRequiredError", "oauth_required", (ConfigEntryAuthFailed, "auth_failed"),
     (HomeAssistantError, "smtp_auth_failed"), "auth_failed"),
    ("AuthError", "invalid_auth", (ConfigEntryAuthFailed, "auth_failed"),
     (HomeAssistantError, "smtp_auth_failed"), "auth_failed"),
    ("CertificateError", "tls_error", (ConfigEntryNotReady, "cannot_connect"),
     (HomeAssistantError, "smtp_certificate"), "action_failed"),
    ("StartTlsUnavailableError", "starttls_unavailable",
     (ConfigEntryNotReady, "cannot_connect"),
     (HomeAssistantError, "smtp_starttls_unavailable"), "action_failed"),
    ("TokenExpiredError", "cannot_connect", (ConfigEntryNotReady, "cannot_connect"),
     (HomeAssistantError, "smtp_connect_failed"), "action_failed"),
    ("TlsError", "cannot_connect", (ConfigEntryNotReady, "cannot_connect"),
     (HomeAssistantError, "smtp_connect_failed"), "action_failed"),
    ("MailTimeoutError", "timeout", (ConfigEntryNotReady, "cannot_connect"),
     (HomeAssistantError, "smtp_connect_failed"), "action_failed"),
    ("ConnectError", "cannot_connect", (ConfigEntryNotReady, "cannot_connect"),
     (HomeAssistantError, "smtp_connect_failed"), "action_failed"),
    ("SendError", "cannot_connect", (ConfigEntryNotReady, "cannot_connect"),
     (HomeAssistantError, "send_refused"), "action_failed"),
    ("UnconfirmedSendError", "cannot_connect", (ConfigEntryNotReady, "cannot_connect"),
     (HomeAssistantError, "send_unconfirmed"), "action_failed"),
    ("MessageError", "cannot_connect", (ConfigEntryNotReady, "cannot_connect"),
     (ServiceValidationError, "invalid_message"), "action_failed"),
    ("ProtocolError", "unknown", (ConfigEntryNotReady, "cannot_connect"),
     (HomeAssistantError, "smtp_failed"), "action_failed"),
    ("MessageNotFoundError", "unknown", (ConfigEntryNotReady, "cannot_connect"),
     (HomeAssistantError, "smtp_failed"), "action_failed"),
    ("MailError", "cannot_connect", (ConfigEntryNotReady, "cannot_connect"),
     (HomeAssistantError, "smtp_failed"), "action_failed"),
]  # fmt: skip


def test_every_core_error_is_in_the_expectations() -> None:
    assert {row[0] for row in EXPECTED} == {cls.__name__ for cls in CORE_ERRORS}


@pytest.mark.parametrize(("name", "flow", "setup", "send", "action"), EXPECTED)
def test_mapping(
    name: str,
    flow: str,
    setup: tuple[type[HomeAssistantError], str],
    send: tuple[type[HomeAssistantError], str],
    action: str,
) -> None:
    err = make(getattr(core, name))
    assert flow_error_key(err) == flow
    for where, (kind, key) in (
        (Where.SETUP, setup),
        (Where.SEND, send),
        (Where.ACTION, (HomeAssistantError, action)),
    ):
        mapped = ha_error(err, where)
        assert type(mapped) is kind, where
        assert mapped.translation_domain == DOMAIN
        assert mapped.translation_key == key, where
    assert needs_reauth(err) == (setup[0] is ConfigEntryAuthFailed)


def test_placeholders_fill_every_message() -> None:
    for cls in CORE_ERRORS:
        err = make(cls)
        for where in Where:
            mapped = ha_error(err, where)
            message = STRINGS["exceptions"][mapped.translation_key]["message"]
            message.format(**(mapped.translation_placeholders or {}))  # no KeyError
    assert ha_error(make(SendError), Where.SEND).translation_placeholders == {
        "code": "554",
        "reply": "5.7.1 spam",
    }
    assert ha_error(core.ConnectError(), Where.SETUP).translation_placeholders == {
        "error": "ConnectError"
    }
    assert ha_error(core.AuthError("no"), Where.ACTION).translation_placeholders is None
    refused = ha_error(core.OAuthTokenRefused("account"), Where.SETUP)
    assert refused.translation_placeholders == {"reason": "account"}
    assert core.OAuthTokenRefused("nonsense").reason == "invalid"


def test_every_key_is_translated() -> None:
    for row in TABLE:
        assert row.flow in STRINGS["config"]["error"]
        for outcome in (row.setup, row.send, row.action):
            assert outcome.key in STRINGS["exceptions"]


def test_most_specific_first() -> None:
    """A row never hides a later row for a subclass."""
    for i, earlier in enumerate(TABLE):
        for later in TABLE[i + 1 :]:
            assert not issubclass(later.error, earlier.error), (earlier, later)
