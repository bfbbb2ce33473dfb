"""Constants: the config entry format shared by the flow and the coordinators."""

from __future__ import annotations

import logging
from typing import Final

from homeassistant.util.hass_dict import HassKey

DOMAIN: Final = "mail_relay"
LOGGER = logging.getLogger(__package__)

EVENT_NEW_MAIL: Final = "mail_relay_new_mail"

# Entry data (connection settings; the password is CONF_PASSWORD from HA).
CONF_EMAIL: Final = "email"
CONF_PROTOCOL: Final = "protocol"  # "imap" or "pop3"
CONF_INCOMING_HOST: Final = "incoming_host"
CONF_INCOMING_PORT: Final = "incoming_port"
CONF_INCOMING_SECURITY: Final = "incoming_security"  # mail.models.Security
CONF_INCOMING_USERNAME: Final = "incoming_username"
CONF_SMTP_HOST: Final = "smtp_host"  # absent or None: no SMTP, no notify entity
CONF_SMTP_PORT: Final = "smtp_port"
CONF_SMTP_SECURITY: Final = "smtp_security"
CONF_SMTP_USERNAME: Final = "smtp_username"  # empty: send without AUTH
CONF_VERIFY_SSL: Final = "verify_ssl"
CONF_PROVIDER: Final = "provider"  # preset id, when a preset matched
CONF_SOURCE: Final = "source"  # where the settings came from

# Integration-level YAML (configuration.yaml, `mail_relay:`).
CONF_ISPDB_URL: Final = "ispdb_url"  # an organisation's own ISPDB (base URL)
DATA_ISPDB_URL: HassKey[str] = HassKey(f"{DOMAIN}_{CONF_ISPDB_URL}")

# Options.
CONF_FOLDER: Final = "folder"  # entries made before several folders: one name
CONF_FOLDERS: Final = "folders"  # IMAP: the watched folders, the first kept selected
CONF_FILTER_SENDERS: Final = "filter_senders"  # addresses or domains
CONF_FILTER_SUBJECT: Final = "filter_subject"  # subject contains
CONF_FILTER_UNSEEN: Final = "filter_unseen"  # only mail not yet read
CONF_PUSH: Final = "push"
CONF_POLL_INTERVAL: Final = "poll_interval"  # seconds
CONF_TEXT_LIMIT: Final = "text_limit"  # characters of body text in events
CONF_MARK_SEEN: Final = "mark_seen"
CONF_INCLUDE_HEADERS: Final = "include_headers"
CONF_CATCHUP_HOURS: Final = "catchup_hours"
CONF_RETENTION: Final = "retention"  # "keep", "delete", "days"
CONF_RETENTION_DAYS: Final = "retention_days"
CONF_RECIPIENTS: Final = "recipients"  # default notify recipients
CONF_SENDER_NAME: Final = "sender_name"
CONF_SAVE_SENT: Final = "save_sent"  # IMAP: keep a copy of sent mail in Sent
# Attachments of new mail saved to a folder; a section of the options
# form, stored as a mapping of the four keys below.
CONF_ATTACHMENTS: Final = "attachments"
CONF_ATTACHMENTS_ENABLED: Final = "enabled"
CONF_ATTACHMENTS_TYPES: Final = "types"  # MIME patterns; empty: all
CONF_ATTACHMENTS_MAX_SIZE_MB: Final = "max_size_mb"
CONF_ATTACHMENTS_DIRECTORY: Final = "directory"
# Their defaults and bounds: mail/options.py (settings.account_options).

# OAuth2 entries (instead of CONF_PASSWORD): Home Assistant's OAuth2 helpers
# keep the implementation key and the token dict; the tenant (Microsoft) and
# how the user signed in decide how the token is refreshed.
CONF_AUTH_IMPLEMENTATION: Final = "auth_implementation"
CONF_TOKEN: Final = "token"  # noqa: S105  # a key, not a secret
CONF_OAUTH_TENANT: Final = "oauth_tenant"
CONF_OAUTH_METHOD: Final = "oauth_method"  # "browser" or "device"
# configuration.yaml: self-hosted authorization servers (oauth.DECLARED_SCHEMA).
CONF_OAUTH_PROVIDERS: Final = "oauth_providers"
DATA_DECLARED: HassKey[dict[str, str]] = HassKey(f"{DOMAIN}_declared_oauth")
