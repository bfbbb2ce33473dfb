"""Find the servers of an email domain, the way Thunderbird does.

Order of preference: a local preset (instant, no network), the domain's own
autoconfig file, its ``.well-known`` file, the ISPDB, the MX host's base domain
(preset, autoconfig, ISPDB), DNS SRV records (RFC 6186/8314), and last a guess
of usual host names checked with short CAPABILITY/CAPA/EHLO probes. The network
lookups run concurrently under one deadline; the best source that answered
wins. Every URL and host list is a setting, so an organisation can run its own
ISPDB (like Thunderbird's ``mailnews.auto_config_url``) and tests can point at
servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import aiohttp

from .dns import DnsError, DnsResolver
from .errors import SignInError
from .models import DEFAULT_PORTS, Protocol, Security
from .oauth.endpoints import OAuthProvider, declared
from .oauth.http import read_bounded
from .providers import (
    Provider,
    ServerPreset,
    email_domain,
    find_provider,
    find_provider_by_mx,
)
from .tls import create_ssl_context

_LOGGER = logging.getLogger(__name__)

MAX_CONFIG_BYTES = 256 * 1024
MAX_OAUTH_SCOPES = 20
# config-v1.1 <authentication> values that mean "a password" (Thunderbird's).
PASSWORD_METHODS = frozenset(
    {"password-cleartext", "password-encrypted", "plain", "secure"}
)

# Two-level public suffixes common enough to matter for the MX step; a full
# public suffix list is more than a base-domain heuristic needs.
TWO_LEVEL_SUFFIXES = frozenset(
    {
        "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk",
        "com.au", "net.au", "org.au", "co.nz", "net.nz", "org.nz",
        "co.jp", "ne.jp", "or.jp", "com.br", "net.br", "co.za", "com.mx",
        "com.ar", "com.cn", "com.tw", "co.in", "co.kr", "com.tr",
        "asso.fr", "gouv.fr", "com.fr", "tm.fr",
    }
)  # fmt: skip


class Source(StrEnum):
    """Where detected settings came from (shown to the user)."""

    PRESET = "preset"
    AUTOCONFIG = "autoconfig"
    WELL_KNOWN = "well_known"
    ISPDB = "ispdb"
    MX = "mx"
    SRV = "srv"
    GUESS = "guess"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class ServerCandidate:
    """One server found for a domain, with the login already filled in."""

    protocol: Protocol
    host: str
    port: int
    security: Security
    username: str
    oauth: bool = False  # the server takes an OAuth2 bearer token
    password: bool = True  # the server takes a password


@dataclass(frozen=True, slots=True)
class DetectedSettings:
    """What detection found; lists are in order of preference."""

    source: Source
    imap: tuple[ServerCandidate, ...] = ()
    pop3: tuple[ServerCandidate, ...] = ()
    smtp: tuple[ServerCandidate, ...] = ()
    provider_id: str | None = None
    display_name: str | None = None
    # Where to sign in when the servers take OAuth2 (a preset, ``<oAuth2>``).
    oauth: OAuthProvider | None = None

    def incoming(self, protocol: Protocol) -> ServerCandidate | None:
        """Return the preferred IMAP or POP3 server."""
        servers = self.imap if protocol is Protocol.IMAP else self.pop3
        return servers[0] if servers else None

    @property
    def outgoing(self) -> ServerCandidate | None:
        """Return the preferred SMTP server."""
        return self.smtp[0] if self.smtp else None

    @property
    def has_incoming(self) -> bool:
        """Return whether any incoming server was found."""
        return bool(self.imap or self.pop3)


@dataclass(frozen=True, slots=True)
class AutoconfigSettings:
    """Where to look; the defaults are the public Internet's usual places.

    URL templates take ``{domain}`` and ``{address}`` (URL-quoted). Guess host
    templates take ``{domain}``; ports come with the security they imply.
    """

    autoconfig_url: str = (
        "https://autoconfig.{domain}/mail/config-v1.1.xml?emailaddress={address}"
    )
    well_known_url: str = (
        "https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml"
        "?emailaddress={address}"
    )
    ispdb_url: str = "https://autoconfig.thunderbird.net/v1.1/"
    nameservers: tuple[str, ...] = ()  # empty: the system's resolvers
    deadline: float = 10.0
    http_timeout: float = 8.0
    dns_timeout: float = 3.0
    probe_timeout: float = 3.0
    guess_imap_hosts: tuple[str, ...] = ("imap.{domain}", "mail.{domain}", "{domain}")
    guess_pop3_hosts: tuple[str, ...] = (
        "pop3.{domain}",
        "pop.{domain}",
        "mail.{domain}",
        "{domain}",
    )
    guess_smtp_hosts: tuple[str, ...] = ("smtp.{domain}", "mail.{domain}", "{domain}")
    guess_imap_ports: tuple[tuple[int, Security], ...] = (
        (993, Security.SSL),
        (143, Security.STARTTLS),
    )
    guess_pop3_ports: tuple[tuple[int, Security], ...] = (
        (995, Security.SSL),
        (110, Security.STARTTLS),
    )
    guess_smtp_ports: tuple[tuple[int, Security], ...] = (
        (465, Security.SSL),
        (587, Security.STARTTLS),
        (25, Security.STARTTLS),
    )
    use_presets: bool = True
    sources: frozenset[Source] = frozenset(
        {
            Source.AUTOCONFIG,
            Source.WELL_KNOWN,
            Source.ISPDB,
            Source.MX,
            Source.SRV,
            Source.GUESS,
        }
    )


# -- presets ---------------------------------------------------------------


def _candidate(
    provider: Provider, preset: ServerPreset | None, protocol: Protocol, email: str
) -> tuple[ServerCandidate, ...]:
    if preset is None:
        return ()
    return (
        ServerCandidate(
            protocol,
            preset.host,
            preset.port,
            preset.security,
            preset.username_for(email),
            oauth=provider.oauth is not None,
            password=provider.password,
        ),
    )


def from_provider(provider: Provider, email: str, source: Source) -> DetectedSettings:
    """Turn a preset into detected settings for one address."""
    return DetectedSettings(
        source=source,
        imap=_candidate(provider, provider.imap, Protocol.IMAP, email),
        pop3=_candidate(provider, provider.pop3, Protocol.POP3, email),
        smtp=_candidate(provider, provider.smtp, Protocol.SMTP, email),
        provider_id=provider.id,
        display_name=provider.name,
        oauth=provider.oauth,
    )


# -- config-v1.1.xml -------------------------------------------------------

_SOCKET_TYPES = {
    "ssl": Security.SSL,
    "tls": Security.SSL,
    "starttls": Security.STARTTLS,
    "plain": Security.NONE,
}


def _local(tag: object) -> str:
    """Return an element's name without namespace, lower-cased."""
    return str(tag).rpartition("}")[2].lower()


def _child_text(element: ET.Element, name: str) -> str:
    for child in element:
        if _local(child.tag) == name and child.text:
            return child.text.strip()
    return ""


def _expand(template: str, email: str) -> str:
    local, _, domain = email.rpartition("@")
    return (
        template.replace("%EMAILADDRESS%", email)
        .replace("%EMAILLOCALPART%", local)
        .replace("%EMAILDOMAIN%", domain)
    )


def _server_from_xml(element: ET.Element, email: str) -> ServerCandidate | None:
    protocol = {"imap": Protocol.IMAP, "pop3": Protocol.POP3, "smtp": Protocol.SMTP}
    kind = protocol.get(element.get("type", "").strip().lower())
    host = _expand(_child_text(element, "hostname"), email).strip().lower()
    if kind is None or not host or " " in host:
        return None
    security = _SOCKET_TYPES.get(_child_text(element, "sockettype").lower())
    if security is None:
        return None
    try:
        port = int(_child_text(element, "port"))
    except ValueError:
        port = DEFAULT_PORTS[(kind, security)]
    if not 0 < port < 65536:
        port = DEFAULT_PORTS[(kind, security)]
    username = _expand(_child_text(element, "username") or "%EMAILADDRESS%", email)
    methods = {
        (child.text or "").strip().lower()
        for child in element
        if _local(child.tag) == "authentication"
    } - {""}
    return ServerCandidate(
        kind,
        host,
        port,
        security,
        username.strip(),
        oauth="oauth2" in methods,
        # No method named: the file predates the element; assume a password.
        password=not methods or bool(methods & PASSWORD_METHODS),
    )


def _oauth_from_xml(element: ET.Element) -> OAuthProvider | None:
    """Read ``<oAuth2>`` (issuer, scope, authURL, tokenURL); None when unusable."""
    scope = _child_text(element, "scope")
    scopes = tuple(dict.fromkeys(scope.split()))[:MAX_OAUTH_SCOPES]
    authorize_url = _child_text(element, "authurl")
    token_url = _child_text(element, "tokenurl")
    if not (authorize_url and token_url and scopes):
        return None
    issuer = _child_text(element, "issuer")
    try:
        return declared(
            authorize_url=authorize_url,
            token_url=token_url,
            scopes=scopes,
            issuer=issuer if issuer.startswith("https://") else None,
        )
    except (SignInError, ValueError) as err:
        _LOGGER.debug("Ignoring an unusable <oAuth2> element: %s", err)
        return None


def parse_config_xml(text: str | bytes, email: str) -> DetectedSettings | None:
    """Parse a config-v1.1.xml file tolerantly; None when it holds no server.

    Unknown elements are ignored, namespaces and tag case do not matter, and a
    server with a missing or broken field is skipped rather than failing all.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        # ElementTree never fetches external entities, and the bundled expat
        # (>= 2.4) bounds entity expansion; the body is size-capped before.
        root = ET.fromstring(text.strip().lstrip("\ufeff"))  # noqa: S314
    except ET.ParseError:
        return None
    servers: dict[Protocol, list[ServerCandidate]] = {
        Protocol.IMAP: [],
        Protocol.POP3: [],
        Protocol.SMTP: [],
    }
    display_name = None
    oauth: OAuthProvider | None = None
    for element in root.iter():
        name = _local(element.tag)
        if name == "oauth2" and oauth is None:
            oauth = _oauth_from_xml(element)
        elif name in ("incomingserver", "outgoingserver"):
            candidate = _server_from_xml(element, email)
            if candidate is not None and candidate not in servers[candidate.protocol]:
                servers[candidate.protocol].append(candidate)
        elif name == "displayname" and display_name is None and element.text:
            display_name = element.text.strip() or None
    if not (servers[Protocol.IMAP] or servers[Protocol.POP3]):
        return None
    return DetectedSettings(
        source=Source.AUTOCONFIG,
        imap=tuple(servers[Protocol.IMAP]),
        pop3=tuple(servers[Protocol.POP3]),
        smtp=tuple(servers[Protocol.SMTP]),
        display_name=display_name,
        oauth=oauth,
    )


# -- helpers ---------------------------------------------------------------


def base_domain(host: str) -> str:
    """Return the registrable domain of a host name (simple suffix heuristic)."""
    labels = host.strip(".").lower().split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in TWO_LEVEL_SUFFIXES:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


class Detector:
    """One detection run for one address."""

    def __init__(
        self,
        email: str,
        session: aiohttp.ClientSession,
        settings: AutoconfigSettings,
        resolver: DnsResolver | None = None,
    ) -> None:
        """Keep what every lookup needs."""
        self.email = email.strip()
        self.domain = email_domain(self.email)
        self.session = session
        self.settings = settings
        self.resolver = resolver or DnsResolver(
            settings.nameservers, timeout=settings.dns_timeout
        )
        self._probe_ctx: ssl.SSLContext | None = None

    def _url(self, template: str, domain: str) -> str:
        return template.format(
            domain=quote(domain, safe=""), address=quote(self.email, safe="")
        )

    async def _fetch_config(self, url: str, source: Source) -> DetectedSettings | None:
        try:
            async with self.session.get(
                url,
                timeout=aiohttp.ClientTimeout(total=self.settings.http_timeout),
                allow_redirects=True,
            ) as response:
                if response.status != 200:
                    return None
                body = await read_bounded(response, MAX_CONFIG_BYTES)
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            _LOGGER.debug("No %s config at %s: %s", source, url, err)
            return None
        found = parse_config_xml(body, self.email)
        return replace(found, source=source) if found else None

    async def autoconfig(self, domain: str | None = None) -> DetectedSettings | None:
        """Ask autoconfig.<domain>."""
        url = self._url(self.settings.autoconfig_url, domain or self.domain)
        return await self._fetch_config(url, Source.AUTOCONFIG)

    async def well_known(self) -> DetectedSettings | None:
        """Ask <domain>/.well-known/autoconfig."""
        url = self._url(self.settings.well_known_url, self.domain)
        return await self._fetch_config(url, Source.WELL_KNOWN)

    async def ispdb(self, domain: str | None = None) -> DetectedSettings | None:
        """Ask the ISP database."""
        base = self.settings.ispdb_url
        url = base.rstrip("/") + "/" + quote(domain or self.domain, safe="")
        return await self._fetch_config(url, Source.ISPDB)

    async def mx(self) -> DetectedSettings | None:
        """Follow the MX to its provider: presets, autoconfig, then the ISPDB."""
        try:
            records = await self.resolver.mx(self.domain)
        except (DnsError, OSError) as err:
            _LOGGER.debug("MX lookup for %s failed: %s", self.domain, err)
            return None
        if not records or not records[0].host:
            return None
        mx_base = base_domain(records[0].host)
        if mx_base == self.domain:
            return None
        provider = (
            find_provider_by_mx(records[0].host) if self.settings.use_presets else None
        )
        if provider is not None:
            return from_provider(provider, self.email, Source.MX)
        for lookup in (self.autoconfig, self.ispdb):
            found = await lookup(mx_base)
            if found is not None:
                return replace(found, source=Source.MX)
        return None

    async def srv(self) -> DetectedSettings | None:
        """Read RFC 6186/8314 SRV records; a "." target means "not offered"."""
        services = (
            ("_imaps._tcp", Protocol.IMAP, Security.SSL),
            ("_imap._tcp", Protocol.IMAP, Security.STARTTLS),
            ("_pop3s._tcp", Protocol.POP3, Security.SSL),
            ("_pop3._tcp", Protocol.POP3, Security.STARTTLS),
            ("_submissions._tcp", Protocol.SMTP, Security.SSL),
            ("_submission._tcp", Protocol.SMTP, Security.STARTTLS),
        )

        async def lookup(service: str) -> list[tuple[int, int, int, str]]:
            try:
                records = await self.resolver.srv(f"{service}.{self.domain}")
            except (DnsError, OSError):
                return []
            return [(r.priority, -r.weight, r.port, r.target) for r in records]

        answers = await asyncio.gather(*(lookup(s[0]) for s in services))
        found: dict[Protocol, list[tuple[tuple[int, int, int], ServerCandidate]]] = {
            Protocol.IMAP: [],
            Protocol.POP3: [],
            Protocol.SMTP: [],
        }
        for (_, protocol, security), records in zip(services, answers, strict=True):
            for priority, weight, port, target in records:
                if target in ("", ".") or not port:
                    continue
                candidate = ServerCandidate(
                    protocol, target.rstrip("."), port, security, self.email
                )
                # RFC 8314: implicit TLS first, then the records' own order.
                tls_rank = 0 if security is Security.SSL else 1
                found[protocol].append(((tls_rank, priority, weight), candidate))
        ordered = {
            p: tuple(c for _, c in sorted(v, key=lambda item: item[0]))
            for p, v in found.items()
        }
        if not (ordered[Protocol.IMAP] or ordered[Protocol.POP3]):
            return None
        return DetectedSettings(
            source=Source.SRV,
            imap=ordered[Protocol.IMAP],
            pop3=ordered[Protocol.POP3],
            smtp=ordered[Protocol.SMTP],
        )

    async def guess(self) -> DetectedSettings | None:
        """Probe usual host names; keep only servers that answer as expected."""
        loop = asyncio.get_running_loop()
        self._probe_ctx = await loop.run_in_executor(
            None, lambda: create_ssl_context(verify=False)
        )
        cfg = self.settings
        plans = (
            (Protocol.IMAP, cfg.guess_imap_hosts, cfg.guess_imap_ports),
            (Protocol.POP3, cfg.guess_pop3_hosts, cfg.guess_pop3_ports),
            (Protocol.SMTP, cfg.guess_smtp_hosts, cfg.guess_smtp_ports),
        )
        candidates = [
            ServerCandidate(
                protocol, host.format(domain=self.domain), port, security, self.email
            )
            for protocol, hosts, ports in plans
            for port, security in ports
            for host in dict.fromkeys(hosts)
        ]
        results = await asyncio.gather(*(self._probe(c) for c in candidates))
        alive = [c for c, ok in zip(candidates, results, strict=True) if ok]
        if not any(c.protocol is not Protocol.SMTP for c in alive):
            return None
        # Prefer implicit TLS over STARTTLS; keep host-template order otherwise.
        rank = {Security.SSL: 0, Security.STARTTLS: 1, Security.NONE: 2}

        def pick(protocol: Protocol) -> tuple[ServerCandidate, ...]:
            mine = [c for c in alive if c.protocol is protocol]
            return tuple(sorted(mine, key=lambda c: rank[c.security]))

        return DetectedSettings(
            source=Source.GUESS,
            imap=pick(Protocol.IMAP),
            pop3=pick(Protocol.POP3),
            smtp=pick(Protocol.SMTP),
        )

    async def _probe(self, candidate: ServerCandidate) -> bool:
        """Greet a server and check that it speaks the protocol (and STARTTLS)."""
        try:
            async with asyncio.timeout(self.settings.probe_timeout):
                return await probe_server(candidate, self._probe_ctx)
        except (OSError, TimeoutError, ValueError, EOFError):
            return False

    async def run(self) -> DetectedSettings | None:
        """Run every lookup at once; return the best answer before the deadline."""
        if self.settings.use_presets and (provider := find_provider(self.email)):
            return from_provider(provider, self.email, Source.PRESET)
        if not self.domain or "." not in self.domain:
            return None
        steps: list[
            tuple[Source, Callable[[], Coroutine[Any, Any, DetectedSettings | None]]]
        ] = [
            (Source.AUTOCONFIG, self.autoconfig),
            (Source.WELL_KNOWN, self.well_known),
            (Source.ISPDB, self.ispdb),
            (Source.MX, self.mx),
            (Source.SRV, self.srv),
            (Source.GUESS, self.guess),
        ]
        tasks: list[asyncio.Task[DetectedSettings | None]] = [
            asyncio.create_task(step(), name=f"mail_relay autoconfig {source}")
            for source, step in steps
            if source in self.settings.sources
        ]
        try:
            async with asyncio.timeout(self.settings.deadline):
                for task in tasks:
                    with contextlib.suppress(Exception):
                        if (result := await task) is not None:
                            return result
        except TimeoutError:
            _LOGGER.debug("Autodetection for %s hit its deadline", self.domain)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if (
                task.done()
                and not task.cancelled()
                and task.exception() is None
                and (result := task.result()) is not None
            ):
                return result
        return None


async def detect(
    email: str,
    session: aiohttp.ClientSession,
    settings: AutoconfigSettings | None = None,
    *,
    resolver: DnsResolver | None = None,
) -> DetectedSettings | None:
    """Find the servers for an address; None when nothing was found."""
    detector = Detector(email, session, settings or AutoconfigSettings(), resolver)
    return await detector.run()


# -- probes for the guess step ---------------------------------------------


async def _read_line(reader: asyncio.StreamReader) -> str:
    line = await reader.readline()
    if not line:
        raise EOFError("connection closed")
    return line.decode("latin-1").rstrip("\r\n")


async def probe_server(
    candidate: ServerCandidate, tls_context: ssl.SSLContext | None
) -> bool:
    """Return whether a server greets like its protocol (and offers STARTTLS).

    Implicit-TLS probes do not verify the certificate: they only check what
    the server is; the login test that follows verifies it.
    """
    use_tls = candidate.security is Security.SSL
    reader, writer = await asyncio.open_connection(
        candidate.host,
        candidate.port,
        ssl=tls_context if use_tls else None,
        server_hostname=candidate.host if use_tls else None,
    )
    try:
        return await _PROBES[candidate.protocol](reader, writer, candidate.security)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def _probe_imap(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, security: Security
) -> bool:
    if not (await _read_line(reader)).upper().startswith("* OK"):
        return False
    writer.write(b"p1 CAPABILITY\r\n")
    capabilities: set[str] = set()
    while not (line := await _read_line(reader)).startswith("p1 "):
        if line.upper().startswith("* CAPABILITY"):
            capabilities.update(line.upper().split()[2:])
    writer.write(b"p2 LOGOUT\r\n")
    ok = line.upper().startswith("P1 OK") and any(
        c.startswith("IMAP4") for c in capabilities
    )
    return ok and (security is not Security.STARTTLS or "STARTTLS" in capabilities)


async def _probe_pop3(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, security: Security
) -> bool:
    if not (await _read_line(reader)).startswith("+OK"):
        return False
    writer.write(b"CAPA\r\n")
    capabilities: set[str] = set()
    if (await _read_line(reader)).startswith("+OK"):
        while (line := await _read_line(reader)) != ".":
            capabilities.add(line.split(" ")[0].upper())
    writer.write(b"QUIT\r\n")
    return security is not Security.STARTTLS or "STLS" in capabilities


async def _probe_smtp(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, security: Security
) -> bool:
    greeting = await _read_line(reader)
    while greeting.startswith("220-"):
        greeting = await _read_line(reader)
    if not greeting.startswith("220"):
        return False
    writer.write(b"EHLO mail-relay.invalid\r\n")
    extensions: set[str] = set()
    while True:
        line = await _read_line(reader)
        if not line.startswith("250"):
            return False
        extensions.add(line[4:].split(" ")[0].upper())
        if line[3:4] != "-":
            break
    writer.write(b"QUIT\r\n")
    return security is not Security.STARTTLS or "STARTTLS" in extensions


_PROBES: dict[
    Protocol,
    Callable[[asyncio.StreamReader, asyncio.StreamWriter, Security], Awaitable[bool]],
] = {
    Protocol.IMAP: _probe_imap,
    Protocol.POP3: _probe_pop3,
    Protocol.SMTP: _probe_smtp,
}

__all__ = [
    "AutoconfigSettings",
    "DetectedSettings",
    "Detector",
    "ServerCandidate",
    "Source",
    "base_domain",
    "detect",
    "from_provider",
    "parse_config_xml",
    "probe_server",
]
