"""Provider presets: known mail providers answer at once, with no network.

The catalog lives in ``providers.json`` next to this module. It is read once at
import time (imports run outside the event loop), so lookups never block.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .models import Security
from .oauth.endpoints import KNOWN as OAUTH_PROVIDERS
from .oauth.endpoints import OAuthProvider

type UsernameForm = Literal["address", "local"]

_CATALOG = Path(__file__).with_name("providers.json")


@dataclass(frozen=True, slots=True)
class ServerPreset:
    """One server of a provider, without credentials."""

    host: str
    port: int
    security: Security
    username: UsernameForm = "address"

    def username_for(self, email: str) -> str:
        """Return the login this server expects for an address."""
        if self.username == "local":
            return email.rpartition("@")[0]
        return email


@dataclass(frozen=True, slots=True)
class Provider:
    """A mail provider: its domains, servers and what its users must know."""

    id: str
    name: str
    domains: tuple[str, ...]
    imap: ServerPreset | None
    pop3: ServerPreset | None
    smtp: ServerPreset | None
    app_password: bool = False
    help_url: str | None = None
    # Sign in with this provider's OAuth2 ("microsoft", "google"), if offered.
    oauth: OAuthProvider | None = None
    # False: the servers refuse passwords, app passwords included.
    password: bool = True
    verified: bool = False
    notes: str = ""
    # MX hosts under these domains are this provider's (a hosted custom domain).
    mx_domains: tuple[str, ...] = ()

    @property
    def oauth_only(self) -> bool:
        """Return whether the only way in is the provider's OAuth2 sign-in."""
        return self.oauth is not None and not self.password


def _server(raw: object) -> ServerPreset | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError(f"server preset must be an object, got {raw!r}")  # noqa: TRY004
    username = raw.get("username", "address")
    if username not in ("address", "local"):
        raise ValueError(f"unknown username form {username!r}")
    port = raw["port"]
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"bad port {port!r}")
    host = raw["host"]
    if not isinstance(host, str) or not host or " " in host:
        raise ValueError(f"bad host {host!r}")
    return ServerPreset(
        host=host.lower(),
        port=port,
        security=Security(raw["security"]),
        username=username,
    )


def parse_catalog(data: dict[str, Any]) -> tuple[Provider, ...]:
    """Validate the JSON catalog; raise ValueError on any malformed entry."""
    providers: list[Provider] = []
    seen_ids: set[str] = set()
    seen_domains: set[str] = set()
    for raw in data["providers"]:
        domains = tuple(d.lower() for d in raw["domains"])
        if raw["id"] in seen_ids:
            raise ValueError(f"duplicate provider id {raw['id']!r}")
        if overlap := seen_domains.intersection(domains):
            raise ValueError(f"domains listed twice: {sorted(overlap)}")
        seen_ids.add(raw["id"])
        seen_domains.update(domains)
        oauth = raw.get("oauth")
        if oauth is not None and oauth not in OAUTH_PROVIDERS:
            raise ValueError(f"unknown oauth provider {oauth!r}")
        provider = Provider(
            id=raw["id"],
            name=raw["name"],
            domains=domains,
            imap=_server(raw.get("imap")),
            pop3=_server(raw.get("pop3")),
            smtp=_server(raw.get("smtp")),
            app_password=bool(raw.get("app_password", False)),
            help_url=raw.get("help_url"),
            oauth=OAUTH_PROVIDERS[oauth] if oauth is not None else None,
            password=bool(raw.get("password", True)),
            verified=bool(raw.get("verified", False)),
            notes=raw.get("notes", ""),
            mx_domains=tuple(d.lower() for d in raw.get("mx_domains", ())),
        )
        if not (provider.imap or provider.pop3 or provider.smtp):
            raise ValueError(f"provider {provider.id!r} has no server")
        if provider.app_password and not provider.help_url:
            raise ValueError(f"provider {provider.id!r} needs a help_url")
        if not (provider.password or provider.oauth):
            raise ValueError(f"provider {provider.id!r} has no way to sign in")
        if not (provider.domains or provider.mx_domains):
            raise ValueError(f"provider {provider.id!r} has no domain")
        providers.append(provider)
    return tuple(providers)


PROVIDERS: tuple[Provider, ...] = parse_catalog(json.loads(_CATALOG.read_text("utf-8")))
_BY_DOMAIN = {domain: p for p in PROVIDERS for domain in p.domains}
_BY_MX_DOMAIN = {domain: p for p in PROVIDERS for domain in p.mx_domains}


def email_domain(email: str) -> str:
    """Return the normalised domain of an address (or of a bare domain)."""
    return email.strip().rpartition("@")[2].strip().rstrip(".").lower()


def find_provider(email: str) -> Provider | None:
    """Return the preset for an address's domain, if the catalog knows it."""
    return _BY_DOMAIN.get(email_domain(email))


def find_provider_by_id(provider_id: str) -> Provider | None:
    """Return a preset by its id."""
    return next((p for p in PROVIDERS if p.id == provider_id), None)


def find_provider_by_mx(mx_host: str) -> Provider | None:
    """Return the provider that hosts mail whose MX is this host.

    The most specific ``mx_domains`` entry the host lies under wins (Microsoft
    365's ``*.mail.protection.outlook.com`` before Outlook.com's
    ``outlook.com``), then the address domain the host lies under.
    """
    labels = mx_host.strip(".").lower().split(".")
    suffixes = [".".join(labels[start:]) for start in range(len(labels) - 1)]
    for table in (_BY_MX_DOMAIN, _BY_DOMAIN):
        for suffix in suffixes:
            if provider := table.get(suffix):
                return provider
    return None


def oauth_only_hosts() -> frozenset[str]:
    """Return the server hosts of the presets that refuse passwords."""
    return frozenset(
        server.host
        for p in PROVIDERS
        if p.oauth_only
        for server in (p.imap, p.pop3, p.smtp)
        if server is not None
    )
