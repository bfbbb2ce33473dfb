"""The preset catalog covers every provider of the seed tables, well formed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custom_components.mail_relay.mail.models import Security
from custom_components.mail_relay.mail.providers import (
    PROVIDERS,
    find_provider,
    find_provider_by_id,
    find_provider_by_mx,
    parse_catalog,
)

CATALOG = (
    Path(__file__).parents[2]
    / "custom_components"
    / "mail_relay"
    / "mail"
    / "providers.json"
)

# Every address domain of the provider tables the presets were built from
# (incoming and SMTP), with the provider it belongs to.
SEED_DOMAINS = {
    "free.fr": "free",
    "gmail.com": "google",
    "orange.fr": "orange",
    "wanadoo.fr": "orange",
    "neuf.fr": "sfr",
    "sfr.fr": "sfr",
    "cegetel.fr": "sfr",
    "club-internet.fr": "sfr",
    "laposte.net": "laposte",
    "bbox.fr": "bouygues",
    "numericable.fr": "numericable",
    "outlook.com": "outlook",
    "live.com": "outlook",
    "hotmail.com": "outlook",
    "hotmail.fr": "outlook",
    "live.fr": "outlook",
    "msn.com": "outlook",
    "dauphintelecom.fr": "dauphin",
    "domaccess.com": "dauphin",
    "aol.com": "aol",
    "yahoo.com": "yahoo",
    "yahoo.fr": "yahoo",
    "ymail.com": "yahoo",
    "me.com": "apple",
    "online.net": "online",
    "lagoon.nc": "lagoon",
    "ovh.com": "ovh",
    "mail.pf": "vini",
}

# Domains providers.md adds to the seed (current ISPDB data).
CURRENT_DOMAINS = {
    "googlemail.com": "google",
    "cegetel.net": "sfr",
    "rocketmail.com": "yahoo",
    "aol.fr": "aol",
    "aim.com": "aol",
    "icloud.com": "apple",
    "mac.com": "apple",
}


@pytest.mark.parametrize(
    ("domain", "provider_id"), sorted((SEED_DOMAINS | CURRENT_DOMAINS).items())
)
def test_every_seed_domain_has_its_preset(domain: str, provider_id: str) -> None:
    provider = find_provider(f"Jean.Dupont@{domain.upper()} ")
    assert provider is not None
    assert provider.id == provider_id


def test_every_entry_is_well_formed() -> None:
    assert len(PROVIDERS) == len({p.id for p in PROVIDERS}) == 17
    for provider in PROVIDERS:
        assert provider.name
        assert provider.domains or provider.mx_domains
        assert provider.password or provider.oauth is not None
        assert provider.imap or provider.pop3 or provider.smtp
        for server in (provider.imap, provider.pop3, provider.smtp):
            if server is None:
                continue
            assert server.host == server.host.lower()
            assert "." in server.host
            assert 0 < server.port < 65536
            assert isinstance(server.security, Security)
            assert server.username in ("address", "local")
        if provider.app_password or provider.oauth is not None:
            assert provider.help_url is not None
            assert provider.help_url.startswith("https://")


def test_current_values_replace_the_old_seed_ones() -> None:
    free = find_provider_by_id("free")
    assert free is not None
    assert free.pop3 is not None
    # Seed 001 said POP3 on 110 in clear text; Free now offers 995 over TLS.
    assert (free.pop3.host, free.pop3.port, free.pop3.security) == (
        "pop.free.fr",
        995,
        Security.SSL,
    )
    assert free.imap is not None
    assert free.imap.username_for("jean@free.fr") == "jean"
    google = find_provider("x@gmail.com")
    assert google is not None
    assert google.imap is not None
    assert google.imap.host == "imap.gmail.com"
    assert google.app_password
    outlook = find_provider("x@hotmail.fr")
    assert outlook is not None
    assert outlook.oauth_only
    assert outlook.imap is not None
    assert outlook.imap.host == "outlook.office365.com"
    apple = find_provider("x@icloud.com")
    assert apple is not None
    assert apple.pop3 is None
    assert apple.imap is not None
    assert apple.smtp is not None
    assert apple.imap.username_for("x@icloud.com") == "x"
    assert apple.smtp.username_for("x@icloud.com") == "x@icloud.com"
    numericable = find_provider("x@numericable.fr")
    assert numericable is not None
    assert numericable.imap is not None
    assert numericable.imap.security is Security.NONE
    assert not numericable.verified


OUTLOOK_DOMAINS = (
    "outlook.com", "hotmail.com", "hotmail.fr", "live.com", "live.fr", "msn.com",
    "outlook.fr",
)  # fmt: skip


@pytest.mark.parametrize("domain", OUTLOOK_DOMAINS)
def test_microsoft_addresses_sign_in_with_microsoft(domain: str) -> None:
    provider = find_provider(f"jean@{domain}")
    assert provider is not None
    assert provider.oauth is not None
    assert provider.oauth.name == "microsoft"
    assert provider.oauth_only
    assert not provider.password
    # Tenant "common" takes personal and work accounts; the one token serves
    # IMAP, POP3 and SMTP, so no Graph scope may be mixed in.
    assert provider.oauth.token_url == (
        "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    )
    assert provider.oauth.device_code_url == (
        "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode"
    )
    assert set(provider.oauth.scopes) == {
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/POP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    }
    assert "graph" not in provider.oauth.scope.lower()


@pytest.mark.parametrize("domain", ["gmail.com", "googlemail.com"])
def test_gmail_signs_in_with_google_or_an_app_password(domain: str) -> None:
    provider = find_provider(f"jean@{domain}")
    assert provider is not None
    assert provider.oauth is not None
    assert provider.oauth.name == "google"
    assert provider.oauth.scopes == ("https://mail.google.com/",)
    # Google's device flow refuses the Gmail scope: browser sign-in only.
    assert provider.oauth.device_code_url is None
    assert provider.password
    assert provider.app_password
    assert not provider.oauth_only


def test_providers_without_oauth_use_passwords() -> None:
    for provider_id in ("free", "orange", "yahoo", "apple", "ovh"):
        provider = find_provider_by_id(provider_id)
        assert provider is not None
        assert provider.oauth is None
        assert provider.password


def test_microsoft_365_is_found_by_its_mx_host() -> None:
    m365 = find_provider_by_mx("contoso-com.mail.protection.outlook.com")
    assert m365 is not None
    assert m365.id == "microsoft365"
    assert m365.oauth is not None
    assert m365.oauth.name == "microsoft"
    assert m365.oauth_only
    assert m365.smtp is not None
    assert (m365.smtp.host, m365.smtp.port) == ("smtp.office365.com", 587)
    # Outlook.com's own MX stays the personal service.
    personal = find_provider_by_mx("hotmail-com.olc.protection.outlook.com")
    assert personal is not None
    assert personal.id == "outlook"
    assert find_provider_by_mx("aspmx.l.google.com") == find_provider_by_id("google")


def test_unknown_domains_and_mx_hosts() -> None:
    assert find_provider("someone@example.org") is None
    assert find_provider("not an address") is None
    ovh = find_provider_by_mx("ovh.net")
    assert ovh is not None
    assert ovh.id == "ovh"
    google = find_provider_by_mx("google.com")
    assert google is not None
    assert google.id == "google"
    assert find_provider_by_mx("example.net") is None
    assert find_provider_by_id("nope") is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["providers"].append(dict(c["providers"][0])), "duplicate"),
        (lambda c: c["providers"][1].update(domains=["free.fr"]), "twice"),
        (lambda c: c["providers"][0]["imap"].update(port=0), "port"),
        (lambda c: c["providers"][0]["imap"].update(host="a b"), "host"),
        (lambda c: c["providers"][0]["imap"].update(username="uid"), "username"),
        (lambda c: c["providers"][0].update(imap="imap.free.fr"), "object"),
        (
            lambda c: c["providers"][0].update(imap=None, pop3=None, smtp=None),
            "no server",
        ),
        (lambda c: c["providers"][1].update(help_url=None), "help_url"),
        (lambda c: c["providers"][1].update(oauth="yahoo"), "oauth provider"),
        (lambda c: c["providers"][0].update(password=False), "no way to sign in"),
        (lambda c: c["providers"][0].update(domains=[]), "no domain"),
    ],
)
def test_malformed_catalogs_are_refused(mutate, message: str) -> None:
    catalog = json.loads(CATALOG.read_text())
    mutate(catalog)
    with pytest.raises(ValueError, match=message):
        parse_catalog(catalog)
