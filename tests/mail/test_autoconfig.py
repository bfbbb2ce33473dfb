"""Autodetection, each path against servers on 127.0.0.1 (HTTP, DNS, Dovecot, SMTP)."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import replace
from types import SimpleNamespace

import aiodns
import aiohttp
import pycares
import pytest

from custom_components.mail_relay.mail import dns as dns_module
from custom_components.mail_relay.mail.autoconfig import (
    AutoconfigSettings,
    Source,
    base_domain,
    detect,
    parse_config_xml,
)
from custom_components.mail_relay.mail.dns import (
    DnsError,
    DnsResolver,
    MxRecord,
    SrvRecord,
    split_nameserver,
)
from custom_components.mail_relay.mail.models import Protocol, Security
from custom_components.mail_relay.mail.providers import PROVIDERS
from tests.mailserver import DovecotServer, SmtpServer
from tests.mailserver.dns import DnsTestServer
from tests.mailserver.http import ConfigHttpServer, config_xml
from tests.mailserver.ports import free_port

ADDRESS = "Jean.Dupont@example.org"


def local_settings(
    http: ConfigHttpServer, dns: DnsTestServer, **kw
) -> AutoconfigSettings:
    """Point every lookup at the local servers; guess nothing unless asked."""
    base = http.base
    return replace(
        AutoconfigSettings(
            autoconfig_url=base
            + "/autoconfig/{domain}/mail/config-v1.1.xml?emailaddress={address}",
            well_known_url=base
            + "/wk/{domain}/.well-known/autoconfig/mail/config-v1.1.xml",
            ispdb_url=base + "/ispdb/",
            nameservers=(dns.nameserver,),
            deadline=5,
            dns_timeout=1,
            guess_imap_ports=(),
            guess_pop3_ports=(),
            guess_smtp_ports=(),
        ),
        **kw,
    )


@pytest.fixture
async def http() -> AsyncIterator[ConfigHttpServer]:
    async with ConfigHttpServer() as server:
        yield server


@pytest.fixture
async def dns() -> AsyncIterator[DnsTestServer]:
    async with DnsTestServer() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_presets_answer_without_network(http, dns, session) -> None:
    settings = local_settings(http, dns)
    for provider in PROVIDERS:
        for domain in provider.domains:
            found = await detect(f"someone@{domain}", session, settings)
            assert found is not None
            assert found.source is Source.PRESET
            assert found.provider_id == provider.id
    assert http.requests == []
    assert dns.queries == []


async def test_preset_fills_the_login(http, dns, session) -> None:
    found = await detect("jean@free.fr", session, local_settings(http, dns))
    assert found is not None
    imap = found.incoming(Protocol.IMAP)
    assert imap is not None
    assert (imap.host, imap.port, imap.security, imap.username) == (
        "imap.free.fr",
        993,
        Security.SSL,
        "jean",
    )
    apple = await detect("jean@icloud.com", session, local_settings(http, dns))
    assert apple is not None
    assert apple.incoming(Protocol.POP3) is None


async def test_autoconfig_on_the_domain(http, dns, session) -> None:
    http.files["/autoconfig/example.org/mail/config-v1.1.xml"] = config_xml(
        username="%EMAILLOCALPART%"
    )
    found = await detect(ADDRESS, session, local_settings(http, dns))
    assert found is not None
    assert found.source is Source.AUTOCONFIG
    assert found.display_name == "Example Mail"
    imap = found.incoming(Protocol.IMAP)
    assert imap is not None
    assert (imap.host, imap.port, imap.security, imap.username) == (
        "imap.example.org",
        993,
        Security.SSL,
        "Jean.Dupont",
    )
    assert found.outgoing is not None
    assert found.outgoing.port == 465
    assert (
        "/autoconfig/example.org/mail/config-v1.1.xml?emailaddress=Jean.Dupont@example.org"
        in http.requests
    )


async def test_well_known(http, dns, session) -> None:
    http.files["/wk/example.org/.well-known/autoconfig/mail/config-v1.1.xml"] = (
        config_xml(imap=None, pop3=("pop.example.org", 995, "SSL"))
    )
    found = await detect(ADDRESS, session, local_settings(http, dns))
    assert found is not None
    assert found.source is Source.WELL_KNOWN
    assert found.incoming(Protocol.IMAP) is None
    pop3 = found.incoming(Protocol.POP3)
    assert pop3 is not None
    assert pop3.host == "pop.example.org"


async def test_ispdb_is_a_setting(http, dns, session) -> None:
    http.files["/ispdb/example.org"] = config_xml(
        imap=("imap.isp.net", 143, "STARTTLS")
    )
    found = await detect(ADDRESS, session, local_settings(http, dns))
    assert found is not None
    assert found.source is Source.ISPDB
    imap = found.incoming(Protocol.IMAP)
    assert imap is not None
    assert imap.security is Security.STARTTLS


async def test_better_source_wins_even_when_slower(http, dns, session) -> None:
    http.files["/ispdb/example.org"] = config_xml(
        imap=("imap.ispdb.example", 993, "SSL")
    )
    path = "/autoconfig/example.org/mail/config-v1.1.xml"
    http.files[path] = config_xml(imap=("imap.own.example", 993, "SSL"))
    http.delays[path] = 0.3
    found = await detect(ADDRESS, session, local_settings(http, dns))
    assert found is not None
    assert found.source is Source.AUTOCONFIG
    assert found.imap[0].host == "imap.own.example"


async def test_deadline_keeps_what_already_answered(http, dns, session) -> None:
    path = "/autoconfig/example.org/mail/config-v1.1.xml"
    http.files[path] = config_xml(imap=("imap.own.example", 993, "SSL"))
    http.delays[path] = 5
    http.files["/ispdb/example.org"] = config_xml(
        imap=("imap.ispdb.example", 993, "SSL")
    )
    start = time.monotonic()
    found = await detect(ADDRESS, session, local_settings(http, dns, deadline=0.5))
    assert time.monotonic() - start < 2
    assert found is not None
    assert found.source is Source.ISPDB


async def test_nothing_found_within_the_deadline(http, dns, session) -> None:
    dns.silent.add("example.org")
    http.delays["/ispdb/example.org"] = 5
    start = time.monotonic()
    found = await detect(ADDRESS, session, local_settings(http, dns, deadline=0.5))
    assert found is None
    assert time.monotonic() - start < 2
    assert await detect("no-domain", session, local_settings(http, dns)) is None


async def test_mx_hosted_at_a_preset_provider(http, dns, session) -> None:
    dns.records[("example.org", "MX")] = [
        (20, "mx2.mail.ovh.net"),
        (10, "mx1.mail.ovh.net"),
    ]
    found = await detect(ADDRESS, session, local_settings(http, dns))
    assert found is not None
    assert found.source is Source.MX
    assert found.provider_id == "ovh"
    assert found.imap[0].host == "ssl0.ovh.net"
    assert found.imap[0].username == ADDRESS


async def test_mx_base_domain_in_the_ispdb(http, dns, session) -> None:
    dns.records[("example.org", "MX")] = [(10, "mx.eu.hoster.co.uk")]
    http.files["/ispdb/hoster.co.uk"] = config_xml(
        imap=("imap.hoster.co.uk", 993, "SSL")
    )
    found = await detect(ADDRESS, session, local_settings(http, dns))
    assert found is not None
    assert found.source is Source.MX
    assert found.imap[0].host == "imap.hoster.co.uk"


async def test_mx_of_the_domain_itself_or_unknown(http, dns, session) -> None:
    dns.records[("example.org", "MX")] = [(10, "mail.example.org")]
    assert await detect(ADDRESS, session, local_settings(http, dns)) is None
    dns.records[("example.org", "MX")] = [(10, "mx.unknown-host.net")]
    assert await detect(ADDRESS, session, local_settings(http, dns)) is None
    dns.records[("example.org", "MX")] = [(0, "")]
    assert await detect(ADDRESS, session, local_settings(http, dns)) is None


async def test_srv_records(http, dns, session) -> None:
    dns.records[("_imaps._tcp.example.org", "SRV")] = [
        (10, 0, 993, "imap2.example.org"),
        (0, 5, 993, "imap1.example.org"),
    ]
    dns.records[("_imap._tcp.example.org", "SRV")] = [(0, 0, 143, "imap.example.org")]
    dns.records[("_pop3s._tcp.example.org", "SRV")] = [(0, 0, 0, ".")]
    dns.records[("_submission._tcp.example.org", "SRV")] = [
        (0, 0, 587, "smtp.example.org")
    ]
    dns.servfail.add("_pop3._tcp.example.org")
    found = await detect(ADDRESS, session, local_settings(http, dns))
    assert found is not None
    assert found.source is Source.SRV
    assert [c.host for c in found.imap] == [
        "imap1.example.org",
        "imap2.example.org",
        "imap.example.org",
    ]
    assert found.imap[2].security is Security.STARTTLS
    assert found.pop3 == ()
    assert found.outgoing is not None
    assert found.outgoing.security is Security.STARTTLS
    assert found.outgoing.username == ADDRESS


async def test_srv_not_offered(http, dns, session) -> None:
    dns.records[("_imaps._tcp.example.org", "SRV")] = [(0, 0, 0, ".")]
    assert await detect(ADDRESS, session, local_settings(http, dns)) is None


async def test_guess_probes_real_servers(
    http, dns, session, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    settings = local_settings(
        http,
        dns,
        guess_imap_hosts=("127.0.0.1",),
        guess_pop3_hosts=("127.0.0.1",),
        guess_smtp_hosts=("127.0.0.1",),
        guess_imap_ports=(
            (dovecot.imap_port, Security.STARTTLS),
            (dovecot.imaps_port, Security.SSL),
            (free_port(), Security.SSL),
        ),
        guess_pop3_ports=(
            (dovecot.pop3s_port, Security.SSL),
            (dovecot.pop3_port, Security.STARTTLS),
        ),
        guess_smtp_ports=(
            (smtp_server.plain_port, Security.STARTTLS),
            (smtp_server.starttls_port, Security.STARTTLS),
            (smtp_server.ssl_port, Security.SSL),
            # An IMAP server where SMTP is expected is not taken for one.
            (dovecot.imap_port, Security.STARTTLS),
        ),
    )
    found = await detect(ADDRESS, session, settings)
    assert found is not None
    assert found.source is Source.GUESS
    assert [(c.port, c.security) for c in found.imap] == [
        (dovecot.imaps_port, Security.SSL),
        (dovecot.imap_port, Security.STARTTLS),
    ]
    assert [c.port for c in found.pop3] == [dovecot.pop3s_port, dovecot.pop3_port]
    # The plain listener does not offer STARTTLS: dropped.
    assert [c.port for c in found.smtp] == [
        smtp_server.ssl_port,
        smtp_server.starttls_port,
    ]


async def test_guess_drops_servers_without_starttls(
    http, dns, session, dovecot_without_tls: DovecotServer, smtp_server: SmtpServer
) -> None:
    settings = local_settings(
        http,
        dns,
        guess_imap_hosts=("127.0.0.1",),
        guess_pop3_hosts=("127.0.0.1",),
        guess_smtp_hosts=("127.0.0.1",),
        guess_imap_ports=((dovecot_without_tls.imap_port, Security.STARTTLS),),
        guess_pop3_ports=(
            (dovecot_without_tls.pop3_port, Security.STARTTLS),
            (smtp_server.plain_port, Security.STARTTLS),
        ),
        guess_smtp_ports=((smtp_server.starttls_port, Security.STARTTLS),),
    )
    assert await detect(ADDRESS, session, settings) is None


def test_parser_is_tolerant() -> None:
    xml = """\ufeff<?xml version="1.0"?>
    <clientConfig xmlns="urn:example" version="1.1">
      <emailProvider id="example.org">
        <domain>example.org</domain>
        <displayName>  </displayName>
        <somethingNew>ignored</somethingNew>
        <incomingServer type="imap">
          <hostname> IMAP.%EMAILDOMAIN% </hostname>
          <port>not a number</port>
          <socketType>SSL</socketType>
          <username>%EMAILLOCALPART%</username>
        </incomingServer>
        <incomingServer type="imap">
          <hostname>imap.example.org</hostname><port>99999</port>
          <socketType>STARTTLS</socketType>
        </incomingServer>
        <incomingServer type="pop3">
          <hostname>pop.example.org</hostname><port>995</port>
          <socketType>weird</socketType>
        </incomingServer>
        <incomingServer type="exchange"><hostname>x</hostname></incomingServer>
        <incomingServer type="pop3"><port>995</port><socketType>SSL</socketType></incomingServer>
        <outgoingServer type="smtp">
          <hostname>smtp.example.org</hostname><port>25</port><socketType>plain</socketType>
        </outgoingServer>
      </emailProvider>
    </clientConfig>"""
    found = parse_config_xml(xml.encode(), "jean@example.org")
    assert found is not None
    assert [(c.host, c.port, c.security, c.username) for c in found.imap] == [
        ("imap.example.org", 993, Security.SSL, "jean"),
        ("imap.example.org", 143, Security.STARTTLS, "jean@example.org"),
    ]
    assert found.pop3 == ()
    assert found.smtp[0].security is Security.NONE
    assert found.display_name is None
    assert parse_config_xml("<clientConfig><broken", "a@b.c") is None
    assert parse_config_xml(config_xml(imap=None), "a@b.c") is None


async def test_oversized_and_missing_configs(http, dns, session) -> None:
    http.files["/autoconfig/example.org/mail/config-v1.1.xml"] = (
        config_xml() + " " * 300_000
    )
    assert await detect(ADDRESS, session, local_settings(http, dns)) is None
    closed = replace(
        local_settings(http, dns), ispdb_url=f"http://127.0.0.1:{free_port()}/"
    )
    assert await detect(ADDRESS, session, closed) is None


def test_base_domain() -> None:
    assert base_domain("mx1.mail.ovh.net") == "ovh.net"
    assert base_domain("aspmx.l.google.com.") == "google.com"
    assert base_domain("mx.eu.hoster.co.uk") == "hoster.co.uk"
    assert base_domain("example.org") == "example.org"


async def test_dns_records(dns) -> None:
    resolver = DnsResolver([dns.nameserver], timeout=1)
    dns.records[("example.org", "MX")] = [
        (20, "MX2.Example.org"),
        (10, "mx1.example.org"),
    ]
    assert await resolver.mx("example.org") == [
        MxRecord(10, "mx1.example.org"),
        MxRecord(20, "mx2.example.org"),
    ]
    dns.records[("_imaps._tcp.example.org", "SRV")] = [
        (10, 0, 993, "backup.example.org"),
        (0, 1, 993, "imap.example.org"),
        (0, 5, 1993, "imap2.example.org"),
    ]
    dns.records[("_pop3s._tcp.example.org", "SRV")] = [(0, 0, 0, ".")]
    assert await resolver.srv("_imaps._tcp.example.org") == [
        SrvRecord(0, 5, 1993, "imap2.example.org"),
        SrvRecord(0, 1, 993, "imap.example.org"),
        SrvRecord(10, 0, 993, "backup.example.org"),
    ]
    # RFC 2782: a "." target means the service is not offered.
    assert await resolver.srv("_pop3s._tcp.example.org") == [SrvRecord(0, 0, 0, "")]
    # The name exists but has no record of that type: an empty answer.
    assert await resolver.srv("example.org") == []


MX_ANSWER = [dns_module._Answer(10, "mx.example.org")]
SRV_ANSWER = [dns_module._Answer(0, "imap.example.org", weight=5, port=993)]


async def test_dns_answers_through_the_installed_aiodns(dns) -> None:
    """The adapter reads whichever API this aiodns has, without a deprecation."""
    dns.records[("example.org", "MX")] = [(10, "mx.example.org")]
    dns.records[("_imaps._tcp.example.org", "SRV")] = [(0, 5, 993, "imap.example.org")]
    host, port = split_nameserver(dns.nameserver)
    resolver = aiodns.DNSResolver(
        [host], loop=asyncio.get_running_loop(), udp_port=port, tcp_port=port
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            mx = await dns_module._ask(resolver, "example.org", "MX")
            srv = await dns_module._ask(resolver, "_imaps._tcp.example.org", "SRV")
    finally:
        await dns_module._close(resolver)
    assert [replace(a, host=a.host.rstrip(".")) for a in mx] == MX_ANSWER
    assert [replace(a, host=a.host.rstrip(".")) for a in srv] == SRV_ANSWER


class Aiodns3:
    """aiodns 3's only API: query() returns records of the asked type."""

    async def query(self, name: str, qtype: str) -> list[SimpleNamespace]:
        if qtype == "MX":
            return [SimpleNamespace(host="mx.example.org", priority=10, ttl=60)]
        return [
            SimpleNamespace(
                host="imap.example.org", port=993, priority=0, weight=5, ttl=60
            )
        ]


class Aiodns4:
    """aiodns 4: query_dns() returns pycares 5's DNSResult; query() is deprecated."""

    async def query_dns(self, name: str, qtype: str) -> SimpleNamespace:
        cname = SimpleNamespace(
            name=name,
            type=pycares.QUERY_TYPE_CNAME,
            ttl=60,
            data=SimpleNamespace(cname="elsewhere.example.org"),
        )
        if qtype == "MX":
            data = SimpleNamespace(priority=10, exchange="mx.example.org")
        else:
            data = SimpleNamespace(
                priority=0, weight=5, port=993, target="imap.example.org"
            )
        record = SimpleNamespace(
            name=name, type=dns_module._QTYPES[qtype], ttl=60, data=data
        )
        return SimpleNamespace(answer=[cname, record], authority=[], additional=[])

    async def query(self, name: str, qtype: str) -> list[SimpleNamespace]:
        raise AssertionError("the deprecated query() was called")


@pytest.mark.parametrize("resolver", [Aiodns3(), Aiodns4()], ids=["aiodns3", "aiodns4"])
async def test_dns_adapter_reads_both_aiodns_shapes(resolver) -> None:
    assert await dns_module._ask(resolver, "example.org", "MX") == MX_ANSWER
    assert await dns_module._ask(resolver, "_imaps._tcp.example.org", "SRV") == (
        SRV_ANSWER
    )


async def test_dns_errors(dns) -> None:
    resolver = DnsResolver([dns.nameserver], timeout=0.3)
    dns.servfail.add("broken.example")
    with pytest.raises(DnsError):
        await resolver.mx("broken.example")
    assert await resolver.mx("missing.example") == []
    dns.silent.add("slow.example")
    started = time.monotonic()
    with pytest.raises(DnsError):
        await resolver.srv("slow.example")
    assert time.monotonic() - started < 2
    with pytest.raises(DnsError):
        await DnsResolver(["mail.example.org"]).mx("example.org")
    with pytest.raises(DnsError):
        DnsResolver(["127.0.0.1:port"])


async def test_dns_lookup_cancelled_by_a_deadline(dns) -> None:
    """The detection deadline cancels lookups; no socket or timer is left behind."""
    dns.silent.add("slow.example")
    resolver = DnsResolver([dns.nameserver], timeout=5)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await resolver.mx("slow.example")
    dns.records[("example.org", "MX")] = [(10, "mx.example.org")]
    assert [r.host for r in await resolver.mx("example.org")] == ["mx.example.org"]


async def test_dns_configuration(dns) -> None:
    assert split_nameserver("[::1]:5353") == ("::1", 5353)
    assert split_nameserver("[::1]") == ("::1", 53)
    assert split_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert split_nameserver("10.0.0.1") == ("10.0.0.1", 53)
    assert split_nameserver("::1") == ("::1", 53)
    # The first nameserver is dead: the next one answers.
    dns.records[("example.org", "MX")] = [(10, "mx.example.org")]
    resolver = DnsResolver([f"127.0.0.1:{free_port()}", dns.nameserver], timeout=0.3)
    assert [r.host for r in await resolver.mx("example.org")] == ["mx.example.org"]


# -- OAuth2: presets, <authentication>OAuth2</authentication>, <oAuth2> -------

MS_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All"
    " https://outlook.office.com/POP.AccessAsUser.All"
    " https://outlook.office.com/SMTP.Send offline_access"
)


def oauth_config_xml(oauth2: str, methods: tuple[str, ...]) -> str:
    """A config-v1.1.xml as the ISPDB writes an OAuth2 provider's."""
    auth = "".join(f"<authentication>{m}</authentication>" for m in methods)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>example.org</domain>
    <incomingServer type="imap">
      <hostname>imap.example.org</hostname><port>993</port>
      <socketType>SSL</socketType><username>%EMAILADDRESS%</username>{auth}
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.org</hostname><port>587</port>
      <socketType>STARTTLS</socketType><username>%EMAILADDRESS%</username>{auth}
    </outgoingServer>
  </emailProvider>
  {oauth2}
</clientConfig>"""


async def test_autoconfig_oauth2_element_names_the_provider(http, dns, session) -> None:
    http.files["/autoconfig/example.org/mail/config-v1.1.xml"] = oauth_config_xml(
        f"""<oAuth2>
          <issuer>login.microsoftonline.com</issuer>
          <scope>{MS_SCOPES}</scope>
          <authURL>https://login.microsoftonline.com/common/oauth2/v2.0/authorize</authURL>
          <tokenURL>https://login.microsoftonline.com/common/oauth2/v2.0/token</tokenURL>
        </oAuth2>""",
        ("OAuth2",),
    )
    found = await detect(ADDRESS, session, local_settings(http, dns))
    assert found is not None
    assert found.source is Source.AUTOCONFIG
    assert found.oauth is not None
    # Microsoft's endpoints are recognised: the device code and the tenant follow.
    assert found.oauth.name == "microsoft"
    assert found.oauth.tenant == "common"
    assert found.oauth.device_code_url is not None
    assert found.oauth.scope == MS_SCOPES
    imap = found.incoming(Protocol.IMAP)
    assert imap is not None
    assert imap.oauth
    assert not imap.password
    assert found.outgoing is not None
    assert found.outgoing.oauth


async def test_autoconfig_self_hosted_oauth2_and_passwords(http, dns, session) -> None:
    http.files["/ispdb/example.org"] = oauth_config_xml(
        """<oAuth2><issuer>https://id.example.org</issuer>
        <scope>mail offline_access mail</scope>
        <authURL>https://id.example.org/authorize</authURL>
        <tokenURL>https://id.example.org/token</tokenURL></oAuth2>""",
        ("OAuth2", "password-cleartext"),
    )
    found = await detect(ADDRESS, session, local_settings(http, dns))
    assert found is not None
    assert found.oauth is not None
    assert found.oauth.name == "id.example.org"
    assert found.oauth.issuer == "https://id.example.org"
    assert found.oauth.scopes == ("mail", "offline_access")
    assert found.oauth.device_code_url is None
    imap = found.incoming(Protocol.IMAP)
    assert imap is not None
    assert imap.oauth
    assert imap.password


@pytest.mark.parametrize(
    "oauth2",
    [
        "",  # no element
        # Plain-text endpoints would carry the tokens in clear: ignored.
        "<oAuth2><scope>mail</scope><authURL>http://id.example.org/a</authURL>"
        "<tokenURL>http://id.example.org/t</tokenURL></oAuth2>",
        # Incomplete: no token URL, no scope.
        "<oAuth2><scope>mail</scope><authURL>https://id.example.org/a</authURL>"
        "</oAuth2>",
        "<oAuth2><authURL>https://id.example.org/a</authURL>"
        "<tokenURL>https://id.example.org/t</tokenURL></oAuth2>",
    ],
)
def test_unusable_oauth2_elements_are_ignored(oauth2: str) -> None:
    found = parse_config_xml(
        oauth_config_xml(oauth2, ("password-cleartext",)), "a@example.org"
    )
    assert found is not None
    assert found.oauth is None
    assert found.imap[0].password
    assert not found.imap[0].oauth


async def test_presets_carry_their_sign_in(http, dns, session) -> None:
    outlook = await detect("jean@hotmail.fr", session, local_settings(http, dns))
    assert outlook is not None
    assert outlook.oauth is not None
    assert outlook.oauth.name == "microsoft"
    assert all(s.oauth and not s.password for s in (*outlook.imap, *outlook.smtp))
    gmail = await detect("jean@gmail.com", session, local_settings(http, dns))
    assert gmail is not None
    assert gmail.oauth is not None
    assert gmail.oauth.name == "google"
    assert all(s.oauth and s.password for s in gmail.imap)
    free = await detect("jean@free.fr", session, local_settings(http, dns))
    assert free is not None
    assert free.oauth is None
    assert not free.imap[0].oauth


async def test_microsoft_365_custom_domain_by_mx(http, dns, session) -> None:
    dns.records[("example.org", "MX")] = [
        (0, "example-org.mail.protection.outlook.com")
    ]
    found = await detect(ADDRESS, session, local_settings(http, dns))
    assert found is not None
    assert found.source is Source.MX
    assert found.provider_id == "microsoft365"
    assert found.oauth is not None
    assert found.oauth.name == "microsoft"
    assert found.imap[0].host == "outlook.office365.com"
    assert found.smtp[0].host == "smtp.office365.com"
    assert not found.imap[0].password
