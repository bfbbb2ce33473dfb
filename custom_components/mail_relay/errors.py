"""The one table from core errors to Home Assistant errors and translations.

Setup, the config flow, the actions and the notify entity all map a core
error here; which errors are fatal the core decides (``MailError.fatal``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryNotReady,
    HomeAssistantError,
    ServiceValidationError,
)

from .const import DOMAIN
from .mail.errors import (
    AuthError,
    CertificateError,
    ConnectError,
    MailError,
    MailTimeoutError,
    MessageError,
    OAuthRequiredError,
    OAuthTokenRefused,
    ProtocolError,
    SendError,
    SignInError,
    StartTlsUnavailableError,
    TokenRefreshRefused,
    TokenServiceUnavailable,
    UnconfirmedSendError,
)


class Where(StrEnum):
    """Where the error surfaces; each place has its own wording."""

    SETUP = "setup"  # loading the entry: retry later, or reauth
    SEND = "send"  # send_mail and the notify entity (SMTP)
    ACTION = "action"  # the IMAP actions (mark_seen, move, fetch, ...)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The Home Assistant exception and translation key for one place."""

    exception: type[HomeAssistantError]
    key: str


@dataclass(frozen=True, slots=True)
class Row:
    """How one core error class shows in each place."""

    error: type[MailError]
    flow: str  # config-flow form error (config.error.*)
    setup: Outcome
    send: Outcome
    action: Outcome


_AUTH = Outcome(ConfigEntryAuthFailed, "auth_failed")
_NOT_READY = Outcome(ConfigEntryNotReady, "cannot_connect")
_ACTION_AUTH = Outcome(HomeAssistantError, "auth_failed")
_ACTION_FAILED = Outcome(HomeAssistantError, "action_failed")

# Most specific class first: the first row the error is an instance of wins.
TABLE: tuple[Row, ...] = (
    Row(
        OAuthTokenRefused,
        "oauth_token_refused",
        Outcome(ConfigEntryAuthFailed, "oauth_token_refused"),
        Outcome(HomeAssistantError, "oauth_token_refused"),
        Outcome(HomeAssistantError, "oauth_token_refused"),
    ),
    Row(
        TokenRefreshRefused,
        "oauth_refresh_refused",
        Outcome(ConfigEntryAuthFailed, "oauth_refresh_refused"),
        Outcome(HomeAssistantError, "oauth_refresh_refused"),
        Outcome(HomeAssistantError, "oauth_refresh_refused"),
    ),
    Row(
        SignInError,
        "sign_in_failed",
        Outcome(ConfigEntryAuthFailed, "sign_in_failed"),
        Outcome(HomeAssistantError, "sign_in_failed"),
        Outcome(HomeAssistantError, "sign_in_failed"),
    ),
    Row(
        TokenServiceUnavailable,
        "oauth_unavailable",
        Outcome(ConfigEntryNotReady, "oauth_unavailable"),
        Outcome(HomeAssistantError, "oauth_unavailable"),
        Outcome(HomeAssistantError, "oauth_unavailable"),
    ),
    Row(
        OAuthRequiredError,
        "oauth_required",
        _AUTH,
        Outcome(HomeAssistantError, "smtp_auth_failed"),
        _ACTION_AUTH,
    ),
    Row(
        AuthError,
        "invalid_auth",
        _AUTH,
        Outcome(HomeAssistantError, "smtp_auth_failed"),
        _ACTION_AUTH,
    ),
    Row(
        CertificateError,
        "tls_error",
        _NOT_READY,
        Outcome(HomeAssistantError, "smtp_certificate"),
        _ACTION_FAILED,
    ),
    Row(
        StartTlsUnavailableError,
        "starttls_unavailable",
        _NOT_READY,
        Outcome(HomeAssistantError, "smtp_starttls_unavailable"),
        _ACTION_FAILED,
    ),
    Row(
        MailTimeoutError,
        "timeout",
        _NOT_READY,
        Outcome(HomeAssistantError, "smtp_connect_failed"),
        _ACTION_FAILED,
    ),
    Row(
        ConnectError,
        "cannot_connect",
        _NOT_READY,
        Outcome(HomeAssistantError, "smtp_connect_failed"),
        _ACTION_FAILED,
    ),
    Row(
        SendError,
        "cannot_connect",
        _NOT_READY,
        Outcome(HomeAssistantError, "send_refused"),
        _ACTION_FAILED,
    ),
    Row(
        UnconfirmedSendError,
        "cannot_connect",
        _NOT_READY,
        Outcome(HomeAssistantError, "send_unconfirmed"),
        _ACTION_FAILED,
    ),
    Row(
        MessageError,
        "cannot_connect",
        _NOT_READY,
        Outcome(ServiceValidationError, "invalid_message"),
        _ACTION_FAILED,
    ),
    Row(
        ProtocolError,
        "unknown",
        _NOT_READY,
        Outcome(HomeAssistantError, "smtp_failed"),
        _ACTION_FAILED,
    ),
    Row(
        MailError,
        "cannot_connect",
        _NOT_READY,
        Outcome(HomeAssistantError, "smtp_failed"),
        _ACTION_FAILED,
    ),
)


def row(err: MailError) -> Row:
    """Return the table's row for ``err`` (the most specific class)."""
    return next(r for r in TABLE if isinstance(err, r.error))


def flow_error_key(err: MailError) -> str:
    """Return the config flow's form error key for ``err``."""
    return row(err).flow


def outcome(err: MailError, where: Where) -> Outcome:
    """Return the exception class and translation key for ``err`` at ``where``."""
    found: Outcome = getattr(row(err), where.value)
    return found


def needs_reauth(err: MailError) -> bool:
    """Return whether ``err`` means the user must enter a new password."""
    return outcome(err, Where.SETUP).exception is ConfigEntryAuthFailed


def _placeholders(err: MailError, key: str) -> dict[str, str] | None:
    if key == "auth_failed":
        return None
    if isinstance(err, OAuthTokenRefused):
        return {"reason": err.reason}
    if key == "send_refused" and isinstance(err, SendError):
        return {"code": str(err.code), "reply": err.reply}
    return {"error": str(err) or type(err).__name__}


def ha_error(err: MailError, where: Where) -> HomeAssistantError:
    """Return the translated Home Assistant error for ``err`` (to raise)."""
    found = outcome(err, where)
    return found.exception(
        translation_domain=DOMAIN,
        translation_key=found.key,
        translation_placeholders=_placeholders(err, found.key),
    )
