"""Config flow: address and password in, servers found, login tested, entry out.

Steps: ``user`` (address, password, IMAP or POP3) -> presets/autodetection ->
``confirm`` (what was found and where from) or ``manual`` -> ``insecure`` when a
server would see the password in clear text -> connection test -> entry. Also
options (folder, push, polling, POP3 retention...), reauth and reconfigure.

Without a password, where the provider offers it (Microsoft, Google, a server
declared in configuration.yaml), the user signs in instead: ``sign_in``
(method, Microsoft's tenant) -> Home Assistant's OAuth2 external step
(``auth`` -> ``creation``) or the device code (``device``, a progress step
while polling) -> a login with the token as the typed address -> entry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigEntryState,
    ConfigFlowResult,
)
from homeassistant.const import CONF_PASSWORD
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import section
from homeassistant.helpers import config_entry_oauth2_flow
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.translation import async_get_translations

from .compat import ReloadingOptionsFlow
from .const import (
    CONF_ATTACHMENTS,
    CONF_ATTACHMENTS_DIRECTORY,
    CONF_ATTACHMENTS_ENABLED,
    CONF_ATTACHMENTS_MAX_SIZE_MB,
    CONF_ATTACHMENTS_TYPES,
    CONF_AUTH_IMPLEMENTATION,
    CONF_CATCHUP_HOURS,
    CONF_EMAIL,
    CONF_FILTER_SENDERS,
    CONF_FILTER_SUBJECT,
    CONF_FILTER_UNSEEN,
    CONF_FOLDER,
    CONF_FOLDERS,
    CONF_INCLUDE_HEADERS,
    CONF_INCOMING_HOST,
    CONF_INCOMING_PORT,
    CONF_INCOMING_SECURITY,
    CONF_INCOMING_USERNAME,
    CONF_MARK_SEEN,
    CONF_OAUTH_METHOD,
    CONF_OAUTH_TENANT,
    CONF_POLL_INTERVAL,
    CONF_PROTOCOL,
    CONF_PROVIDER,
    CONF_PUSH,
    CONF_RECIPIENTS,
    CONF_RETENTION,
    CONF_RETENTION_DAYS,
    CONF_SAVE_SENT,
    CONF_SENDER_NAME,
    CONF_SMTP_HOST,
    CONF_SMTP_PORT,
    CONF_SMTP_SECURITY,
    CONF_SMTP_USERNAME,
    CONF_SOURCE,
    CONF_TEXT_LIMIT,
    CONF_TOKEN,
    CONF_VERIFY_SSL,
    DATA_DECLARED,
    DATA_ISPDB_URL,
    DOMAIN,
)
from .errors import flow_error_key
from .mail.autoconfig import AutoconfigSettings, DetectedSettings, Source, detect
from .mail.bounds import MAX_ATTACHMENT_BYTES
from .mail.errors import MailError, SignInError
from .mail.models import Protocol, Security, ServerSettings
from .mail.oauth import StaticTokenSource, TokenSource
from .mail.oauth.device import DeviceFlow, start_device_flow
from .mail.oauth.tokens import OAuthClient
from .mail.options import MIN_POLL_INTERVAL, AttachmentSaveOptions, Pop3PollOptions
from .mail.probe import list_folder_uses, test_login
from .mail.providers import (
    Provider,
    email_domain,
    find_provider,
    find_provider_by_id,
)
from .oauth import (
    DECLARED_PREFIX,
    METHOD_BROWSER,
    METHOD_DEVICE,
    MailOAuth2Implementation,
    async_entry_implementation,
    async_implementations,
    is_oauth_entry,
    signed_in_as,
)
from .settings import (
    AccountOptions,
    account_name,
    account_options,
    incoming_settings,
    smtp_settings,
    usual_port,
)
from .token_source import EntryTokenSource, device_token

_LOGGER = logging.getLogger(__name__)

CONF_EDIT = "edit"
CONF_METHOD = "method"  # the sign-in form: browser or device code
CONF_APP = "implementation"  # the sign-in form: which app, when several
DEFAULT_TENANT = "common"
# A login refused with a token just granted: the user signed in as another
# account (or the account cannot use this protocol): config.abort.sign_in_refused.
# A sign-in that gave no tokens (mail/oauth/http.py's reasons) -> config.abort.
_SIGN_IN_ABORTS = {
    "denied": "sign_in_denied",
    "expired": "sign_in_expired",
    "client": "oauth_unauthorized",
}
_REFUSED_SIGN_IN = frozenset({"invalid_auth", "oauth_required", "oauth_token_refused"})
SECTION_TLS = "tls"  # the servers form's section holding CONF_VERIFY_SSL
LOGIN_TIMEOUT = 15.0  # seconds per network step of the login test
RETENTIONS = ("keep", "delete", "days")
_SECURITIES = [s.value for s in Security]


def autoconfig_settings(hass: HomeAssistant) -> AutoconfigSettings:
    """Return where autodetection looks: the public defaults, or YAML's ISPDB.

    ``mail_relay: ispdb_url:`` in configuration.yaml replaces Mozilla's ISPDB
    with an organisation's own, like Thunderbird's ``mailnews.auto_config_url``.
    """
    if ispdb_url := hass.data.get(DATA_ISPDB_URL):
        return AutoconfigSettings(ispdb_url=ispdb_url)
    return AutoconfigSettings()


def _normalise(email: str) -> str:
    return email.strip().lower()


def _select(options: list[str], key: str) -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(
            options=options, translation_key=key, mode=SelectSelectorMode.DROPDOWN
        )
    )


def _port() -> vol.All:
    return vol.All(vol.Coerce(int), vol.Range(min=1, max=65535))


# The security a servers form shows when nothing was found or stored.
_FIRST_SECURITY = {"incoming": Security.SSL.value, "smtp": Security.STARTTLS.value}


def _shown(
    values: Mapping[str, Any], prefix: str, protocol: Protocol
) -> tuple[str, int]:
    """Return the security and port a servers form shows for ``prefix``.

    Without a known port, the usual one of the shown security is prefilled.
    """
    security = str(values.get(f"{prefix}_security") or _FIRST_SECURITY[prefix])
    port = values.get(f"{prefix}_port") or usual_port(protocol, security)
    return security, int(port)


def _submitted_port(
    user_input: Mapping[str, Any],
    prefix: str,
    protocol: Protocol,
    shown: tuple[str, int],
) -> int:
    """Return the port to keep: an untouched usual port follows the security.

    A Home Assistant form cannot change one field when another changes, so the
    port is corrected on submit instead: the user who switches SSL/TLS to
    STARTTLS and leaves 993 gets 143. A port the user typed is kept.
    """
    security = user_input[f"{prefix}_security"]
    port = user_input.get(f"{prefix}_port")
    shown_security, shown_port = shown
    if not port or (
        security != shown_security
        and port == shown_port == usual_port(protocol, shown_security)
    ):
        return usual_port(protocol, security)
    return int(port)


def _servers_schema(
    values: Mapping[str, Any], protocol: Protocol, *, expand_tls: bool
) -> vol.Schema:
    """Build the manual/reconfigure form, prefilled from ``values``.

    Certificate checking sits in a section, collapsed unless ``expand_tls`` (the
    certificate was the problem) or it is already off.
    """

    def default(key: str) -> dict[str, Any]:
        value = values.get(key)
        return {} if value in (None, "") else {"default": value}

    incoming_security, incoming_port = _shown(values, "incoming", protocol)
    smtp_security, smtp_port = _shown(values, "smtp", Protocol.SMTP)
    schema: dict[Any, Any] = {
        vol.Required(CONF_INCOMING_HOST, **default(CONF_INCOMING_HOST)): str,
        vol.Required(CONF_INCOMING_PORT, default=incoming_port): _port(),
        vol.Required(CONF_INCOMING_SECURITY, default=incoming_security): _select(
            _SECURITIES, "security"
        ),
        vol.Required(CONF_INCOMING_USERNAME, **default(CONF_INCOMING_USERNAME)): str,
        vol.Optional(CONF_SMTP_HOST, **default(CONF_SMTP_HOST)): str,
        vol.Optional(CONF_SMTP_PORT, default=smtp_port): _port(),
        vol.Optional(CONF_SMTP_SECURITY, default=smtp_security): _select(
            _SECURITIES, "security"
        ),
        vol.Optional(CONF_SMTP_USERNAME, **default(CONF_SMTP_USERNAME)): str,
    }
    verify = values.get(CONF_VERIFY_SSL, True)
    schema[vol.Required(SECTION_TLS)] = section(
        vol.Schema({vol.Required(CONF_VERIFY_SSL, default=verify): bool}),
        {"collapsed": not (expand_tls or verify is False)},
    )
    return vol.Schema(schema)


def _servers_from_input(
    user_input: Mapping[str, Any], shown: Mapping[str, Any], protocol: Protocol
) -> dict[str, Any]:
    """Keep the server fields of a form; an empty SMTP host means no SMTP.

    ``shown`` holds the values the form was built from, to tell a port the
    user left as it was from one they typed.
    """
    data = {
        CONF_INCOMING_HOST: user_input[CONF_INCOMING_HOST].strip(),
        CONF_INCOMING_PORT: _submitted_port(
            user_input, "incoming", protocol, _shown(shown, "incoming", protocol)
        ),
        CONF_INCOMING_SECURITY: user_input[CONF_INCOMING_SECURITY],
        CONF_INCOMING_USERNAME: user_input[CONF_INCOMING_USERNAME].strip(),
        CONF_SMTP_HOST: None,
    }
    if smtp_host := (user_input.get(CONF_SMTP_HOST) or "").strip():
        data |= {
            CONF_SMTP_HOST: smtp_host,
            CONF_SMTP_PORT: _submitted_port(
                user_input, "smtp", Protocol.SMTP, _shown(shown, "smtp", Protocol.SMTP)
            ),
            CONF_SMTP_SECURITY: user_input[CONF_SMTP_SECURITY],
            CONF_SMTP_USERNAME: (user_input.get(CONF_SMTP_USERNAME) or "").strip(),
        }
    data[CONF_VERIFY_SSL] = user_input[SECTION_TLS][CONF_VERIFY_SSL]
    return data


def _servers_from_detected(
    detected: DetectedSettings, protocol: Protocol
) -> dict[str, Any]:
    data: dict[str, Any] = {CONF_SMTP_HOST: None}
    if incoming := detected.incoming(protocol):
        data |= {
            CONF_INCOMING_HOST: incoming.host,
            CONF_INCOMING_PORT: incoming.port,
            CONF_INCOMING_SECURITY: incoming.security.value,
            CONF_INCOMING_USERNAME: incoming.username,
        }
    if smtp := detected.outgoing:
        data |= {
            CONF_SMTP_HOST: smtp.host,
            CONF_SMTP_PORT: smtp.port,
            CONF_SMTP_SECURITY: smtp.security.value,
            CONF_SMTP_USERNAME: smtp.username,
        }
    return data


class MailRelayConfigFlow(
    config_entry_oauth2_flow.AbstractOAuth2FlowHandler, domain=DOMAIN
):
    """Add a mail account the way a good mail client's wizard does.

    Home Assistant's OAuth2 flow handler brings the external sign-in steps
    (``auth``, ``creation``); the password steps are this class's own.
    """

    DOMAIN = DOMAIN
    VERSION = 1
    # 1.2: titles name the protocol (``async_migrate_entry`` renames older ones).
    MINOR_VERSION = 2

    def __init__(self) -> None:
        """Start with nothing known."""
        super().__init__()
        # OAuth2: chosen because no password was typed (or none is possible).
        self._sign_in = False
        self._token: dict[str, Any] | None = None
        self._impl: MailOAuth2Implementation | None = None
        self._impl_key: str | None = None  # reauth: the entry's app first
        self._tenant = DEFAULT_TENANT
        self._method = METHOD_BROWSER
        self._device: DeviceFlow | None = None
        self._device_task: asyncio.Task[dict[str, Any]] | None = None
        self._sign_in_error: SignInError | None = None
        self._email = ""
        self._password = ""
        self._protocol = Protocol.IMAP
        self._provider: Provider | None = None
        self._source = Source.MANUAL
        self._servers: dict[str, Any] = {}
        self._insecure_confirmed = False
        self._show_verify = False
        self._warnings: list[str] = []  # login test warnings (probe.py)
        self._return_step = "manual"
        self._tested_for: str | None = None

    @property
    def logger(self) -> logging.Logger:
        """The logger Home Assistant's OAuth2 steps write to."""
        return _LOGGER

    @property
    def extra_authorize_data(self) -> dict[str, Any]:
        """Ask the provider to sign in the typed address."""
        return {"login_hint": self._email}

    # -- helpers -------------------------------------------------------

    def _placeholders(self) -> dict[str, str]:
        provider = self._provider
        return {
            "email": self._email,
            "provider": provider.name if provider else self._email.partition("@")[2],
            "help_url": (provider.help_url if provider else None) or "",
            "server": str(self._servers.get(CONF_INCOMING_HOST) or ""),
        }

    def _account_id(self) -> str:
        """Return the unique id: one entry per address and protocol."""
        return f"{self._email}:{self._protocol.value}"

    def _entry_data(self) -> dict[str, Any]:
        secret = (
            self._oauth_data()
            if self._token is not None
            else {CONF_PASSWORD: self._password}
        )
        return {
            CONF_EMAIL: self._email,
            **secret,
            CONF_PROTOCOL: self._protocol.value,
            CONF_VERIFY_SSL: True,
            **self._servers,
            CONF_PROVIDER: self._provider.id if self._provider else None,
            CONF_SOURCE: self._source.value,
        }

    def _oauth_data(self) -> dict[str, Any]:
        """Return what an OAuth2 entry keeps instead of a password."""
        assert self._impl is not None
        assert self._token is not None
        return {
            CONF_AUTH_IMPLEMENTATION: self._impl.domain,
            CONF_TOKEN: self._token,
            CONF_OAUTH_TENANT: self._impl.tenant,
            CONF_OAUTH_METHOD: self._method,
        }

    async def _token_source(self) -> TokenSource | None:
        """Return the token to test with: one just granted, or the entry's."""
        if self._token is not None:
            return StaticTokenSource(
                self._token["access_token"], self._token.get("expires_at")
            )
        if self.source == SOURCE_RECONFIGURE:
            entry = self._get_reconfigure_entry()
            if is_oauth_entry(entry.data):
                implementation = await async_entry_implementation(self.hass, entry)
                return EntryTokenSource(self.hass, entry, implementation)
        return None

    async def _async_test(self) -> dict[str, str]:
        """Log in to the incoming and SMTP servers; return form errors."""
        try:
            token_source = await self._token_source()
        except ValueError:
            return {"base": "oauth_app_missing"}
        if (
            token_source is None
            and self._provider is not None
            and self._provider.oauth_only
        ):
            return {"base": "oauth_required"}
        data = self._entry_data()
        servers: list[tuple[ServerSettings, Protocol]] = [
            (incoming_settings(data, token_source), self._protocol)
        ]
        if (smtp := smtp_settings(data, token_source)) is not None:
            servers.append((smtp, Protocol.SMTP))
        self._warnings = []
        for settings, protocol in servers:
            try:
                self._warnings += await test_login(
                    settings, protocol, io_timeout=LOGIN_TIMEOUT
                )
            except MailError as err:
                _LOGGER.debug("Login test to %s failed: %r", settings.host, err)
                key = flow_error_key(err)
                if key == "tls_error":
                    self._show_verify = True
                return {"base": key}
        return {}

    def _wants_sign_in(self) -> bool:
        """Sign in when no password was typed, or the provider refuses them.

        Known only once the servers are: Microsoft 365 is found by its MX.
        """
        if self.source == SOURCE_RECONFIGURE:
            return False
        if self._provider is not None and self._provider.oauth_only:
            self._sign_in = True
        return self._sign_in

    def _uses_clear_text(self) -> bool:
        securities = [self._servers[CONF_INCOMING_SECURITY]]
        if self._servers.get(CONF_SMTP_HOST):
            securities.append(self._servers[CONF_SMTP_SECURITY])
        return Security.NONE.value in securities

    async def _async_test_and_finish(self) -> ConfigFlowResult:
        """Confirm clear text if needed, test, then create or update the entry."""
        if self._uses_clear_text() and not self._insecure_confirmed:
            return await self.async_step_insecure()
        if self._wants_sign_in():
            if self._token is None:
                return await self.async_step_sign_in()
            return await self._async_check_sign_in()
        errors = await self._async_test()
        if errors:
            return await self._async_show_errors(errors)
        if self._warnings:
            return await self.async_step_server_quirk()
        return await self._async_finish()

    async def async_step_server_quirk(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Say the server misbehaves (it works, others may miss mail); then finish."""
        if user_input is None:
            return self.async_show_form(
                step_id="server_quirk",
                data_schema=vol.Schema({}),
                description_placeholders=self._placeholders(),
            )
        return await self._async_finish()

    async def _async_finish(self) -> ConfigFlowResult:
        """Create the entry, or update the one being reconfigured or reauthed."""
        if self.source == SOURCE_REAUTH:
            return self.async_update_reload_and_abort(
                self._get_reauth_entry(), data_updates=self._oauth_data()
            )
        if self.source == SOURCE_RECONFIGURE:
            entry = self._get_reconfigure_entry()
            data = {**entry.data, **self._servers, CONF_SOURCE: Source.MANUAL.value}
            return self.async_update_reload_and_abort(entry, data=data)
        # The unique id is claimed only now: a flow left open in a closed tab
        # must not block the same address until Home Assistant restarts.
        await self.async_set_unique_id(self._account_id(), raise_on_progress=False)
        self._abort_if_unique_id_configured()
        return self.async_create_entry(
            title=account_name(self._email, self._protocol), data=self._entry_data()
        )

    async def _async_show_errors(self, errors: dict[str, str]) -> ConfigFlowResult:
        """Show an error where the user can fix it."""
        if self.source == SOURCE_RECONFIGURE:
            return self._show_servers_form("reconfigure", errors)
        if errors["base"] in ("invalid_auth", "oauth_required") and not self._sign_in:
            return self._show_user_form(errors)
        if self._return_step == "confirm":
            return await self._show_confirm_form(errors)
        return self._show_servers_form("manual", errors)

    # -- user ----------------------------------------------------------

    def _show_user_form(self, errors: dict[str, str] | None = None) -> ConfigFlowResult:
        errors = dict(errors or {})
        provider = self._provider
        if errors.get("base") == "invalid_auth" and provider and provider.app_password:
            errors[CONF_PASSWORD] = "app_password_required"
        schema = vol.Schema(
            {
                vol.Required(CONF_EMAIL, default=self._email or vol.UNDEFINED): (
                    TextSelector(TextSelectorConfig(type=TextSelectorType.EMAIL))
                ),
                # Empty: sign in with the provider instead (OAuth2).
                vol.Optional(CONF_PASSWORD): TextSelector(
                    TextSelectorConfig(type=TextSelectorType.PASSWORD)
                ),
                vol.Required(
                    CONF_PROTOCOL, default=self._protocol.value
                ): SelectSelector(
                    SelectSelectorConfig(
                        options=[Protocol.IMAP.value, Protocol.POP3.value],
                        translation_key="protocol",
                        mode=SelectSelectorMode.LIST,
                    )
                ),
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=schema,
            errors=errors,
            description_placeholders=self._placeholders(),
        )

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the address, the password and IMAP or POP3."""
        if user_input is None:
            return self._show_user_form()
        email = _normalise(user_input[CONF_EMAIL])
        self._email = email
        self._password = user_input.get(CONF_PASSWORD) or ""
        self._protocol = Protocol(user_input[CONF_PROTOCOL])
        self._provider = find_provider(email)
        local, _, domain = email.partition("@")
        if not local or "." not in domain:
            return self._show_user_form({CONF_EMAIL: "invalid_email"})
        if self._account_id() in self._async_current_ids(include_ignore=False):
            return self.async_abort(reason="already_configured")
        self._sign_in = not self._password
        if self._servers and self._tested_for == self._account_id():
            # Back here after a refused login: keep the servers, test again.
            return await self._async_test_and_finish()
        self._tested_for = self._account_id()
        self._source = Source.MANUAL
        self._servers = {}
        detected = await detect(
            email,
            async_get_clientsession(self.hass),
            autoconfig_settings(self.hass),
        )
        if detected is not None:
            self._servers = _servers_from_detected(detected, self._protocol)
            self._source = detected.source
            if detected.provider_id:
                self._provider = find_provider_by_id(detected.provider_id)
            if detected.incoming(self._protocol) is not None:
                return await self.async_step_confirm()
        return await self.async_step_manual()

    # -- confirm -------------------------------------------------------

    async def _describe(self) -> dict[str, str]:
        """Placeholders describing the servers, in the user's language."""
        strings = await async_get_translations(
            self.hass, self.hass.config.language, "selector", {DOMAIN}
        )

        def label(selector: str, value: str) -> str:
            key = f"component.{DOMAIN}.selector.{selector}.options.{value}"
            return strings.get(key, value)

        servers = self._servers

        def line(prefix: str) -> str:
            if not servers.get(f"{prefix}_host"):
                return "—"
            return (
                f"{servers[f'{prefix}_host']}:{servers[f'{prefix}_port']}, "
                f"{label('security', servers[f'{prefix}_security'])}, "
                f"{servers[f'{prefix}_username'] or '—'}"
            )

        return {
            **self._placeholders(),
            "source": label("source", self._source.value),
            "protocol": self._protocol.value.upper(),
            "incoming": line("incoming"),
            "smtp": line("smtp"),
        }

    async def _show_confirm_form(
        self, errors: dict[str, str] | None = None
    ) -> ConfigFlowResult:
        schema: dict[Any, Any] = {vol.Optional(CONF_EDIT, default=False): bool}
        if self._show_verify:
            schema[vol.Required(CONF_VERIFY_SSL, default=True)] = bool
        return self.async_show_form(
            step_id="confirm",
            data_schema=vol.Schema(schema),
            errors=errors or {},
            description_placeholders=await self._describe(),
        )

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show what was found and where from; test it or edit it."""
        self._return_step = "confirm"
        if user_input is None:
            return await self._show_confirm_form()
        if user_input[CONF_EDIT]:
            return await self.async_step_manual()
        if CONF_VERIFY_SSL in user_input:
            self._servers[CONF_VERIFY_SSL] = user_input[CONF_VERIFY_SSL]
        return await self._async_test_and_finish()

    # -- manual --------------------------------------------------------

    def _show_servers_form(
        self, step_id: str, errors: dict[str, str] | None = None
    ) -> ConfigFlowResult:
        return self.async_show_form(
            step_id=step_id,
            data_schema=_servers_schema(
                self._servers, self._protocol, expand_tls=self._show_verify
            ),
            errors=errors or {},
            description_placeholders=self._placeholders(),
        )

    async def async_step_manual(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Let the user enter or correct every server setting."""
        self._return_step = "manual"
        if user_input is None:
            if not self._servers.get(CONF_INCOMING_HOST):
                self._servers.setdefault(CONF_INCOMING_USERNAME, self._email)
            return self._show_servers_form("manual")
        self._servers = _servers_from_input(user_input, self._servers, self._protocol)
        self._source = Source.MANUAL
        self._insecure_confirmed = False
        return await self._async_test_and_finish()

    # -- clear text ----------------------------------------------------

    async def async_step_insecure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Make the user say yes before a password travels in clear text."""
        step = "reconfigure" if self.source == SOURCE_RECONFIGURE else "manual"
        return self.async_show_menu(
            step_id="insecure",
            menu_options=["insecure_accept", step],
            description_placeholders=self._placeholders(),
        )

    async def async_step_insecure_accept(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Test and finish once the user accepted clear text."""
        self._insecure_confirmed = True
        return await self._async_test_and_finish()

    # -- OAuth2 sign-in ------------------------------------------------

    async def _candidates(self) -> list[MailOAuth2Implementation] | None:
        """Return the apps that can sign this address in; None: no OAuth2 here.

        A server declared in configuration.yaml for the address's domain wins;
        else the provider's mark (Microsoft, Google) picks the application
        credentials of that provider.
        """
        found = await async_implementations(self.hass)
        declared = self.hass.data.get(DATA_DECLARED, {})
        if (key := declared.get(email_domain(self._email))) is not None:
            return [found[key]] if key in found else []
        provider = self._provider
        if provider is None or provider.oauth is None:
            return None
        name = provider.oauth.name
        apps = [
            impl
            for key, impl in found.items()
            if not key.startswith(DECLARED_PREFIX) and impl.provider_name == name
        ]
        # Reauth: the entry's own app first.
        return sorted(apps, key=lambda impl: impl.domain != self._impl_key)

    async def async_step_sign_in(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose how to sign in (browser or code, Microsoft's tenant, the app)."""
        candidates = await self._candidates()
        if candidates is None:
            return self._show_user_form({CONF_PASSWORD: "password_required"})
        if not candidates:
            # Home Assistant's frontend offers to add the application credential.
            return self.async_abort(reason="missing_credentials")
        try:
            providers = [await impl.async_provider() for impl in candidates]
        except MailError as err:
            return self._sign_in_failed(err)
        microsoft = providers[0].name == "microsoft"
        device = any(p.device_code_url for p in providers)
        schema: dict[Any, Any] = {}
        if device:
            schema[vol.Required(CONF_METHOD, default=self._method)] = SelectSelector(
                SelectSelectorConfig(
                    options=[METHOD_BROWSER, METHOD_DEVICE],
                    translation_key="sign_in_method",
                    mode=SelectSelectorMode.LIST,
                )
            )
        if microsoft:
            schema[vol.Required(CONF_OAUTH_TENANT, default=self._tenant)] = str
        if len(candidates) > 1:
            schema[vol.Required(CONF_APP, default=candidates[0].domain)] = vol.In(
                {impl.domain: impl.name for impl in candidates}
            )
        errors: dict[str, str] = {}
        if user_input is None and schema:
            return self._show_sign_in_form(schema, errors, candidates[0])
        user_input = user_input or {}
        chosen = next(
            (i for i in candidates if i.domain == user_input.get(CONF_APP)),
            candidates[0],
        )
        self._method = user_input.get(CONF_METHOD, METHOD_BROWSER)
        self._tenant = str(user_input.get(CONF_OAUTH_TENANT) or DEFAULT_TENANT).strip()
        try:
            self._impl = chosen.for_account(
                tenant=self._tenant if microsoft else None,
                public=microsoft and self._method == METHOD_DEVICE,
            )
        except ValueError:
            return self._show_sign_in_form(
                schema, {CONF_OAUTH_TENANT: "invalid_tenant"}, chosen
            )
        self.flow_impl = self._impl
        if self._method == METHOD_DEVICE:
            return await self.async_step_device()
        return await self.async_step_auth()

    def _show_sign_in_form(
        self,
        schema: dict[Any, Any],
        errors: dict[str, str],
        app: MailOAuth2Implementation,
    ) -> ConfigFlowResult:
        # "Sign in to Microsoft", or to the declared server by its name.
        who = {"microsoft": "Microsoft", "google": "Google"}.get(
            app.provider_name or "", app.name
        )
        return self.async_show_form(
            step_id="sign_in",
            data_schema=vol.Schema(schema),
            errors=errors,
            description_placeholders={**self._placeholders(), "provider": who},
        )

    async def async_oauth_create_entry(self, data: dict[str, Any]) -> ConfigFlowResult:
        """Home Assistant's sign-in gave tokens: check them by logging in."""
        self._token = data[CONF_TOKEN]
        return await self._async_check_sign_in()

    async def _async_check_sign_in(self) -> ConfigFlowResult:
        """Log in with the token as the typed address; another account aborts."""
        assert self._token is not None
        signed_in = signed_in_as(self._token)
        if signed_in is not None and signed_in != self._email:
            return self._wrong_account(signed_in)
        errors = await self._async_test()
        if errors.get("base") in _REFUSED_SIGN_IN:
            return self.async_abort(
                reason="sign_in_refused",
                description_placeholders={"email": self._email},
            )
        if errors:
            return await self._async_show_errors(errors)
        if self._warnings:
            return await self.async_step_server_quirk()
        return await self._async_finish()

    def _wrong_account(self, signed_in: str) -> ConfigFlowResult:
        return self.async_abort(
            reason="wrong_account",
            description_placeholders={"email": self._email, "signed_in": signed_in},
        )

    async def async_step_device(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the code to type at the provider while polling for the tokens."""
        assert self._impl is not None
        if self._device_task is None:
            impl = self._impl
            try:
                self._device = await start_device_flow(
                    async_get_clientsession(self.hass),
                    await impl.async_provider(),
                    OAuthClient(impl.client_id, impl.client_secret or None),
                )
            except MailError as err:
                return self._sign_in_failed(err)
            self._device_task = self.hass.async_create_task(
                self._async_wait_device(self._device)
            )
        if not self._device_task.done():
            assert self._device is not None
            code = self._device.code
            return self.async_show_progress(
                step_id="device",
                progress_action="wait_for_device",
                description_placeholders={
                    "url": code.verification_uri,
                    "code": code.user_code,
                },
                progress_task=self._device_task,
            )
        try:
            self._token = self._device_task.result()
        except MailError as err:
            self._sign_in_error = err if isinstance(err, SignInError) else None
            return self.async_show_progress_done(next_step_id="device_failed")
        return self.async_show_progress_done(next_step_id="device_done")

    async def _async_wait_device(self, device: DeviceFlow) -> dict[str, Any]:
        return device_token(await device.wait())

    async def async_step_device_done(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Check the approved code's tokens by logging in."""
        return await self._async_check_sign_in()

    async def async_step_device_failed(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Abort: the code was refused, ran out, or the server failed."""
        return self._sign_in_failed(self._sign_in_error)

    def _sign_in_failed(self, err: MailError | None) -> ConfigFlowResult:
        """Abort with what the user can do: start again, fix the app, or wait."""
        reason = "oauth_unavailable"  # unreachable, failing, unusable metadata
        if isinstance(err, SignInError):
            reason = _SIGN_IN_ABORTS.get(err.reason, reason)
        return self.async_abort(
            reason=reason, description_placeholders={"error": str(err or "")}
        )

    # -- reauth --------------------------------------------------------

    async def async_step_reauth(
        self, entry_data: Mapping[str, Any]
    ) -> ConfigFlowResult:
        """Start over the password (or the sign-in) the server refused."""
        self._load_entry(entry_data)
        if is_oauth_entry(entry_data):
            self._sign_in = True
            self._impl_key = entry_data.get(CONF_AUTH_IMPLEMENTATION)
            self._tenant = entry_data.get(CONF_OAUTH_TENANT) or DEFAULT_TENANT
            self._method = entry_data.get(CONF_OAUTH_METHOD) or METHOD_BROWSER
            return await self.async_step_reauth_sign_in()
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_sign_in(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Say the sign-in ended; then sign in again as the same address."""
        if user_input is None:
            return self.async_show_form(
                step_id="reauth_sign_in",
                data_schema=vol.Schema({}),
                description_placeholders=self._placeholders(),
            )
        return await self.async_step_sign_in()

    def _load_entry(self, data: Mapping[str, Any]) -> None:
        self._email = data[CONF_EMAIL]
        self._password = data.get(CONF_PASSWORD) or ""
        self._protocol = Protocol(data[CONF_PROTOCOL])
        provider_id = data.get(CONF_PROVIDER)
        self._provider = find_provider_by_id(provider_id) if provider_id else None
        self._source = Source(data.get(CONF_SOURCE) or Source.MANUAL)
        self._servers = {
            key: data.get(key)
            for key in (
                CONF_INCOMING_HOST,
                CONF_INCOMING_PORT,
                CONF_INCOMING_SECURITY,
                CONF_INCOMING_USERNAME,
                CONF_SMTP_HOST,
                CONF_SMTP_PORT,
                CONF_SMTP_SECURITY,
                CONF_SMTP_USERNAME,
            )
        }
        self._servers[CONF_VERIFY_SSL] = data.get(CONF_VERIFY_SSL, True)
        # The stored settings were confirmed when the entry was created.
        self._insecure_confirmed = True

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the new password only, and test it."""
        errors: dict[str, str] = {}
        if user_input is not None:
            self._password = user_input[CONF_PASSWORD]
            errors = await self._async_test()
            if not errors:
                return self.async_update_reload_and_abort(
                    self._get_reauth_entry(),
                    data_updates={CONF_PASSWORD: self._password},
                )
            if (
                errors["base"] == "invalid_auth"
                and self._provider
                and self._provider.app_password
            ):
                errors[CONF_PASSWORD] = "app_password_required"
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_PASSWORD): TextSelector(
                        TextSelectorConfig(type=TextSelectorType.PASSWORD)
                    )
                }
            ),
            errors=errors,
            description_placeholders=self._placeholders(),
        )

    # -- reconfigure ---------------------------------------------------

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the servers of an existing account."""
        if user_input is None:
            self._load_entry(self._get_reconfigure_entry().data)
            return self._show_servers_form("reconfigure")
        self._servers = _servers_from_input(user_input, self._servers, self._protocol)
        self._insecure_confirmed = False
        return await self._async_test_and_finish()

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> MailRelayOptionsFlow:
        """Return the options flow."""
        return MailRelayOptionsFlow()


def _seconds(minimum: int, maximum: int) -> vol.All:
    return vol.All(
        NumberSelector(
            NumberSelectorConfig(
                min=minimum,
                max=maximum,
                step=1,
                mode=NumberSelectorMode.BOX,
                unit_of_measurement="s",
            )
        ),
        vol.Coerce(int),
        vol.Range(min=minimum, max=maximum),
    )


def _attachments_section(rules: AttachmentSaveOptions) -> section:
    """Return the auto-save block of the options, collapsed while it is off."""
    return section(
        vol.Schema(
            {
                vol.Optional(CONF_ATTACHMENTS_ENABLED, default=rules.enabled): bool,
                vol.Optional(
                    CONF_ATTACHMENTS_TYPES, default=list(rules.types)
                ): TextSelector(TextSelectorConfig(multiple=True)),
                vol.Optional(
                    CONF_ATTACHMENTS_MAX_SIZE_MB,
                    default=round(rules.max_size / 2**20, 1),
                ): vol.All(
                    NumberSelector(
                        NumberSelectorConfig(
                            min=0,
                            max=MAX_ATTACHMENT_BYTES / 2**20,
                            step=0.1,
                            mode=NumberSelectorMode.BOX,
                            unit_of_measurement="MB",
                        )
                    ),
                    vol.Coerce(float),
                ),
                vol.Optional(CONF_ATTACHMENTS_DIRECTORY, default=rules.directory): str,
            }
        ),
        {"collapsed": not rules.enabled},
    )


def _number(minimum: int, maximum: int) -> vol.All:
    return vol.All(
        NumberSelector(
            NumberSelectorConfig(
                min=minimum, max=maximum, step=1, mode=NumberSelectorMode.BOX
            )
        ),
        vol.Coerce(int),
        vol.Range(min=minimum, max=maximum),
    )


def _recipients(value: object) -> list[str]:
    """Accept a list or a comma-separated string of addresses."""
    items = value if isinstance(value, list) else str(value).split(",")
    addresses = [str(item).strip() for item in items if str(item).strip()]
    for address in addresses:
        local, _, domain = address.partition("@")
        if not local or "." not in domain or " " in address:
            raise vol.Invalid("invalid_recipient")
    return addresses


def _senders(value: object) -> list[str]:
    """Accept addresses and domains (``example.org``, ``@example.org``) to filter on."""
    items = value if isinstance(value, list) else str(value).split(",")
    senders = [str(item).strip() for item in items if str(item).strip()]
    for sender in senders:
        domain = sender.rpartition("@")[2]
        if "." not in domain or any(c in sender for c in ' \t\r\n"()<>,;'):
            raise vol.Invalid("invalid_sender_filter")
    return senders


class MailRelayOptionsFlow(ReloadingOptionsFlow):
    """Tune how an account is watched and how it sends; changes reload the entry.

    IMAP and POP3 accounts get their own step, so that each form's texts speak
    of what that protocol does (POP3 has no push); the sending options show
    only for an account with an SMTP server.
    """

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Open the options of the account's protocol."""
        if self.config_entry.data[CONF_PROTOCOL] == Protocol.IMAP.value:
            return await self.async_step_imap()
        return await self.async_step_pop3()

    async def async_step_imap(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show and save the options of an IMAP account."""
        return await self._async_options("imap", user_input)

    async def async_step_pop3(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show and save the options of a POP3 account."""
        return await self._async_options("pop3", user_input)

    async def _async_options(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                if CONF_RECIPIENTS in user_input:
                    user_input[CONF_RECIPIENTS] = _recipients(
                        user_input[CONF_RECIPIENTS]
                    )
            except vol.Invalid:
                errors[CONF_RECIPIENTS] = "invalid_recipient"
            if not await self._async_directory_allowed(user_input):
                errors["base"] = "directory_not_allowed"
            if CONF_FILTER_SENDERS in user_input:
                try:
                    user_input[CONF_FILTER_SENDERS] = _senders(
                        user_input[CONF_FILTER_SENDERS]
                    )
                except vol.Invalid:
                    errors[CONF_FILTER_SENDERS] = "invalid_sender_filter"
            if CONF_FOLDERS in user_input and not [
                f for f in user_input[CONF_FOLDERS] if str(f).strip()
            ]:
                errors[CONF_FOLDERS] = "no_folder"
            if not errors:
                user_input.pop(CONF_FOLDER, None)  # replaced by the list
                return self.async_create_entry(data=user_input)
        entry = self.config_entry
        # What the form shows: the values being edited, else the saved ones,
        # else the mail core's defaults (account_options holds them once).
        try:
            current = account_options({**entry.options, **(user_input or {})})
        except ValueError:
            current = account_options(entry.options)
        sends = bool(entry.data.get(CONF_SMTP_HOST))
        if step_id == "imap":
            schema = await self._imap_schema(current, sends=sends)
        else:
            schema = self._pop3_schema(current.pop3)
        schema |= self._filter_schema(current, imap=step_id == "imap")
        schema |= {
            vol.Optional(CONF_TEXT_LIMIT, default=current.event.text_limit): _number(
                0, 32768
            ),
            vol.Optional(
                CONF_INCLUDE_HEADERS, default=current.event.include_headers
            ): bool,
        }
        schema[vol.Optional(CONF_ATTACHMENTS, default={})] = _attachments_section(
            current.attachments
        )
        if sends:
            schema |= {
                vol.Optional(
                    CONF_RECIPIENTS, default=list(current.recipients)
                ): TextSelector(
                    TextSelectorConfig(type=TextSelectorType.EMAIL, multiple=True)
                ),
                vol.Optional(CONF_SENDER_NAME, default=current.sender_name): str,
            }
        return self.async_show_form(
            step_id=step_id, data_schema=vol.Schema(schema), errors=errors
        )

    async def _imap_schema(
        self, options: AccountOptions, *, sends: bool
    ) -> dict[Any, Any]:
        imap = options.imap
        entry = self.config_entry
        try:
            if entry.state is ConfigEntryState.LOADED:
                # The running account's settings (an OAuth2 entry's token source).
                found = await list_folder_uses(entry.runtime_data.incoming)
            elif is_oauth_entry(entry.data):
                found = []
            else:
                found = await list_folder_uses(incoming_settings(entry.data))
        except MailError as err:
            _LOGGER.debug("Cannot list folders: %r", err)
            found = []
        # The watched ones stay offered even when the list cannot be read.
        uses = dict.fromkeys(imap.folders) | dict(found)
        strings = await async_get_translations(
            self.hass, self.hass.config.language, "selector", {DOMAIN}
        )

        def label(name: str, use: str | None) -> str:
            key = f"component.{DOMAIN}.selector.special_use.options.{use}"
            return f"{name} ({strings[key]})" if use and key in strings else name

        return {
            vol.Required(CONF_FOLDERS, default=list(imap.folders)): SelectSelector(
                SelectSelectorConfig(
                    options=[
                        SelectOptionDict(value=name, label=label(name, use))
                        for name, use in uses.items()
                    ],
                    multiple=True,
                    custom_value=True,
                    mode=SelectSelectorMode.DROPDOWN,
                )
            ),
            vol.Optional(CONF_PUSH, default=imap.push): bool,
            vol.Optional(CONF_POLL_INTERVAL, default=int(imap.poll_interval)): _seconds(
                int(MIN_POLL_INTERVAL), 86400
            ),
            vol.Optional(CONF_MARK_SEEN, default=imap.mark_seen): bool,
            vol.Optional(CONF_CATCHUP_HOURS, default=int(imap.catchup_hours)): _number(
                0, 720
            ),
        } | (
            {vol.Optional(CONF_SAVE_SENT, default=options.save_sent): bool}
            if sends
            else {}
        )

    async def _async_directory_allowed(self, user_input: Mapping[str, Any]) -> bool:
        """Whether the auto-save folder, when auto-save is on, is an allowed one."""
        block = user_input.get(CONF_ATTACHMENTS) or {}
        if not block.get(CONF_ATTACHMENTS_ENABLED):
            return True
        directory = str(block.get(CONF_ATTACHMENTS_DIRECTORY) or "")
        return bool(directory) and await self.hass.async_add_executor_job(
            self.hass.config.is_allowed_path, directory
        )

    @staticmethod
    def _filter_schema(options: AccountOptions, *, imap: bool) -> dict[Any, Any]:
        """Return the filter's fields; only IMAP knows whether mail was read."""
        current = options.filter
        schema: dict[Any, Any] = {
            vol.Optional(
                CONF_FILTER_SENDERS, default=list(current.senders)
            ): TextSelector(TextSelectorConfig(multiple=True)),
            vol.Optional(CONF_FILTER_SUBJECT, default=current.subject_contains): str,
        }
        if imap:
            schema[vol.Optional(CONF_FILTER_UNSEEN, default=current.unseen_only)] = bool
        return schema

    def _pop3_schema(self, pop3: Pop3PollOptions) -> dict[Any, Any]:
        return {
            vol.Optional(CONF_POLL_INTERVAL, default=int(pop3.poll_interval)): _seconds(
                int(MIN_POLL_INTERVAL), 86400
            ),
            vol.Optional(CONF_RETENTION, default=pop3.retention.value): _select(
                list(RETENTIONS), "retention"
            ),
            vol.Optional(CONF_RETENTION_DAYS, default=pop3.retention_days): _number(
                1, 3650
            ),
        }
