"""One account as the command uses it: servers from the options or detection."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from custom_components.mail_relay.mail.autoconfig import (
    AutoconfigSettings,
    ServerCandidate,
    Source,
    detect,
)
from custom_components.mail_relay.mail.models import (
    DEFAULT_PORTS,
    Protocol,
    Security,
    ServerSettings,
)
from custom_components.mail_relay.mail.oauth import TokenSource
from custom_components.mail_relay.mail.oauth.endpoints import OAuthProvider
from custom_components.mail_relay.mail.options import (
    EventOptions,
    ImapWatchOptions,
    Pop3PollOptions,
)
from custom_components.mail_relay.mail.providers import Provider, find_provider_by_id

from .errors import CliError, Exit, usage_error
from .output import progress, say

SECURITY_LABELS = {
    Security.SSL: "SSL/TLS",
    Security.STARTTLS: "STARTTLS",
    Security.NONE: "none (clear text)",
}
SOURCE_LABELS = {
    Source.PRESET: "the built-in provider presets",
    Source.AUTOCONFIG: "the domain's autoconfig server",
    Source.WELL_KNOWN: "the domain's .well-known autoconfig file",
    Source.ISPDB: "the ISP database (ISPDB)",
    Source.MX: "the provider of the domain's MX record",
    Source.SRV: "DNS SRV records",
    Source.GUESS: "a probe of usual host names",
    Source.MANUAL: "the command line",
}


@dataclass
class Account:
    """One mailbox as the command will use it."""

    address: str
    protocol: Protocol
    incoming: ServerSettings | None
    smtp: ServerSettings | None
    source: Source = Source.MANUAL
    provider: Provider | None = None
    folders: tuple[str, ...] = ("INBOX",)
    # The same option objects as Home Assistant's: one default for each.
    imap: ImapWatchOptions = field(default_factory=ImapWatchOptions)
    pop3: Pop3PollOptions = field(default_factory=Pop3PollOptions)
    event: EventOptions = field(default_factory=EventOptions)
    entry_id: str | None = None
    note: str | None = None  # something detection wants the user to know
    detect_seconds: float | None = None
    oauth: OAuthProvider | None = None  # where to sign in, if detection knows
    sign_in: TokenSource | None = None  # the OAuth2 tokens, once signed in

    def found_in(self) -> str:
        """Say where the settings came from."""
        where = SOURCE_LABELS[self.source]
        if self.provider is not None:
            where += f" ({self.provider.name})"
        if self.detect_seconds is not None:
            where += f", in {self.detect_seconds:.1f} s"
        return where


def autoconfig_settings(args: argparse.Namespace) -> AutoconfigSettings:
    """Where detection looks: the public defaults unless told otherwise."""
    settings = AutoconfigSettings()
    changes: dict[str, Any] = {"deadline": args.detect_timeout}
    if args.ispdb_url:
        changes["ispdb_url"] = args.ispdb_url
    if args.autoconfig_url:
        changes["autoconfig_url"] = args.autoconfig_url
    if args.well_known_url:
        changes["well_known_url"] = args.well_known_url
    if args.dns_server:
        changes["nameservers"] = tuple(args.dns_server)
    if args.no_guess:
        changes["sources"] = settings.sources - {Source.GUESS}
    return replace(settings, **changes)


def _server(
    protocol: Protocol,
    host: str,
    port: int | None,
    security: str | None,
    username: str,
    verify: bool,
) -> ServerSettings:
    try:
        sec = Security(security or "ssl")
    except ValueError:
        raise usage_error(
            f"security must be ssl, starttls or none, not {security!r}"
        ) from None
    try:
        number = int(port) if port else DEFAULT_PORTS[(protocol, sec)]
    except ValueError:
        raise usage_error(f"{port!r} is not a port number") from None
    if not 0 < number < 65536:
        raise usage_error(f"{port!r} is not a port number")
    return ServerSettings(
        host=str(host),
        port=number,
        security=sec,
        username=username,
        verify_tls=verify,
    )


def _from_candidate(
    candidate: ServerCandidate | None, username: str | None, verify: bool
) -> ServerSettings | None:
    if candidate is None:
        return None
    return ServerSettings(
        host=candidate.host,
        port=candidate.port,
        security=candidate.security,
        username=candidate.username if username is None else username,
        verify_tls=verify,
    )


async def resolve_servers(
    args: argparse.Namespace,
    address: str,
    *,
    need_incoming: bool,
    need_smtp: bool,
    spec: dict[str, Any] | None = None,
) -> Account:
    """Take servers from the options (or a config entry), else detect them.

    Any server given explicitly turns detection off: ``--host`` alone means
    "this incoming server and no SMTP", so nothing is looked up on the network.
    An account of a config file (``spec``) takes its servers from the file only.
    """

    def opt(name: str) -> Any:  # noqa: ANN401
        return spec.get(name) if spec is not None else getattr(args, name)

    verify = not (args.insecure or opt("insecure"))
    protocol_name = opt("protocol")
    try:
        protocol = Protocol(protocol_name or "imap")
        if protocol is Protocol.SMTP:
            raise ValueError(protocol)  # noqa: TRY301
    except ValueError:
        raise usage_error(
            f"protocol must be imap or pop3, not {protocol_name!r}"
        ) from None
    host = opt("host")
    smtp_host = opt("smtp_host")
    username = opt("username")
    smtp_username = opt("smtp_username")
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise usage_error(f"{address!r} is not an email address")
    if host or smtp_host:
        incoming = (
            _server(
                protocol,
                host,
                opt("port"),
                opt("security"),
                username or address,
                verify,
            )
            if host
            else None
        )
        smtp = (
            _server(
                Protocol.SMTP,
                smtp_host,
                opt("smtp_port"),
                opt("smtp_security"),
                address if smtp_username is None else smtp_username,
                verify,
            )
            if smtp_host
            else None
        )
        if need_incoming and incoming is None:
            raise usage_error("--smtp-host was given without --host: give both")
        if need_smtp and smtp is None and not need_incoming:
            raise usage_error("--host was given without --smtp-host: give both")
        return Account(address, protocol, incoming, smtp)

    domain = address.rpartition("@")[2]
    async with (
        progress(f"Looking up the servers of {domain}"),
        aiohttp.ClientSession() as session,
    ):
        started = time.monotonic()
        found = await detect(address, session, autoconfig_settings(args))
        elapsed = time.monotonic() - started
    if found is None or not found.has_incoming:
        raise CliError(
            f"No mail servers found for {domain} (presets, autoconfig, ISPDB, MX,"
            " SRV, guess). Give them with --host/--port/--security and"
            " --smtp-host/--smtp-port/--smtp-security.",
            Exit.NOT_FOUND,
        )
    note = None
    if found.incoming(protocol) is None:
        other = Protocol.POP3 if protocol is Protocol.IMAP else Protocol.IMAP
        if protocol_name:
            raise CliError(
                f"{domain} offers no {protocol.value.upper()} server; it has"
                f" {other.value.upper()} (--protocol {other.value}).",
                Exit.NOT_FOUND,
            )
        note = f"{domain} offers no IMAP server: using POP3."
        protocol = other
    provider = find_provider_by_id(found.provider_id) if found.provider_id else None
    smtp = _from_candidate(found.outgoing, smtp_username, verify)
    if need_smtp and smtp is None:
        raise CliError(f"No SMTP server found for {domain}.", Exit.NOT_FOUND)
    return Account(
        address,
        protocol,
        _from_candidate(found.incoming(protocol), username, verify),
        smtp,
        source=found.source,
        provider=provider,
        note=note,
        detect_seconds=elapsed,
        oauth=found.oauth,
    )


def warn_insecure(account: Account) -> None:
    """Say once what --insecure and clear text give away."""
    servers = [s for s in (account.incoming, account.smtp) if s is not None]
    if any(not s.verify_tls for s in servers):
        say(
            "warning: certificate verification is off (--insecure): the connection"
            " is encrypted, but anyone on the network path could pose as the server."
        )
    for server in servers:
        if server.security is Security.NONE:
            say(
                f"warning: {server.host}:{server.port} is used without TLS: the"
                " password and the mail travel in clear text."
            )
