"""The ``mail-relay`` command: check an account, watch mailboxes, send mail.

It runs the same core as the Home Assistant integration, without Home
Assistant: ``check`` is the setup wizard's login test with the conversation
on show, ``watch`` prints the integration's event payload as one JSON line per
new message, ``send`` is the ``send_mail`` action. POP3 polling is driven by
APScheduler here (Home Assistant's own scheduler drives it in the integration);
IMAP uses the watcher's IDLE.

Exit codes (also in the README):

====  ==================================================================
0     success (``watch``: stopped by Ctrl-C or SIGTERM, state saved)
1     other error (unexpected server answer, unreadable state file, ...)
2     usage: bad option, missing password, unreadable file, invalid mail
3     the server refused the user name or password
4     TLS failed or the certificate is not trusted
5     the server cannot be reached, dropped the connection, or timed out
6     the provider accepts only OAuth2 sign-in, not a password
7     STARTTLS was asked for but the server does not offer it
8     autodetection found no server for the address
9     ``send``: the server refused the message or a recipient
130   interrupted (Ctrl-C) before ``watch`` was running
====  ==================================================================

Passwords never come from the command line (other users can read it): a
prompt, the ``MAIL_RELAY_PASSWORD`` environment variable, ``--password-fd N``
or, in a ``--config`` file, ``password_env`` / ``password_file``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import getpass
import itertools
import json
import logging
import os
import re
import signal
import socket
import sys
import tempfile
import textwrap
import threading
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .autoconfig import AutoconfigSettings, ServerCandidate, Source, detect
from .compose import Attachment, OutgoingMail
from .errors import (
    AuthError,
    CertificateError,
    ConnectError,
    MailError,
    MailTimeoutError,
    MessageError,
    OAuthRequiredError,
    SendError,
    StartTlsUnavailableError,
    TlsError,
)
from .imap import FolderState, ImapWatcher, WatchStatus, quote
from .message import MailEvent
from .models import DEFAULT_PORTS, Protocol, Security, ServerSettings
from .pop3 import Pop3Poller, Pop3State, Retention
from .probe import imap_login, pop3_login, smtp_login, ssl_context
from .providers import Provider, find_provider_by_id
from .smtp import SmtpSender

PASSWORD_ENV = "MAIL_RELAY_PASSWORD"  # noqa: S105  # a variable name
STATE_VERSION = 1
DEFAULT_TIMEOUT = 15.0
DEFAULT_POLL_INTERVAL = 300.0
MIN_POLL_INTERVAL = 1.0
STOP_GRACE = 10.0  # seconds a poll in flight may take to finish at Ctrl-C

_LOGGER = logging.getLogger(__name__)
_WIRE = logging.getLogger("mail_relay.wire")


class Exit(IntEnum):
    """Exit codes; scripts may rely on them."""

    OK = 0
    OTHER = 1
    USAGE = 2
    AUTH = 3
    TLS = 4
    CONNECTION = 5
    OAUTH = 6
    STARTTLS = 7
    NOT_FOUND = 8
    REFUSED = 9
    INTERRUPTED = 130


class CliError(Exception):
    """Ends the command with a message and an exit code."""

    def __init__(self, message: str, code: Exit, *, summary: str = "") -> None:
        """Keep the exit code (and a few words for tables) next to the message."""
        super().__init__(message)
        self.code = code
        self.summary = summary or message


def usage_error(message: str) -> CliError:
    """Return the error for a command that cannot run as given."""
    return CliError(message, Exit.USAGE)


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


# -- messages and exit codes ---------------------------------------------------


def explain(err: MailError, what: str, settings: ServerSettings) -> CliError:
    """Say in plain English what went wrong, with the matching exit code."""
    where = f"{settings.host}:{settings.port}"
    detail = str(err) or type(err).__name__
    summary: str
    advice: str
    code: Exit
    if isinstance(err, OAuthRequiredError):
        summary = "OAuth2 sign-in required"
        advice = (
            f"{settings.host} accepts only OAuth2 sign-in; it refuses passwords,"
            f" even app passwords ({detail})."
        )
        code = Exit.OAUTH
    elif isinstance(err, AuthError):
        summary = f"login refused ({detail})"
        advice = (
            f"{settings.host} refused the login of {settings.username!r} ({detail})."
            " Check the password (some providers want an app password) and the"
            " user name (--username)."
        )
        code = Exit.AUTH
    elif isinstance(err, StartTlsUnavailableError):
        summary = "STARTTLS not offered, password not sent"
        advice = (
            f"{where} does not offer STARTTLS, so the password was not sent"
            f" ({detail}). Try --security ssl on the implicit-TLS port; use"
            " --security none only on a network you trust."
        )
        code = Exit.STARTTLS
    elif isinstance(err, CertificateError):
        summary = f"certificate not trusted ({detail})"
        advice = (
            f"the certificate of {settings.host} is not trusted ({detail}). If the"
            " server uses a private CA, trust it with --ca-file FILE or"
            " SSL_CERT_FILE; --insecure turns verification off (the connection"
            " stays encrypted, but anyone on the way could pose as the server)."
        )
        code = Exit.TLS
    elif isinstance(err, TlsError):
        summary = f"TLS failed ({detail})"
        advice = (
            f"TLS with {where} failed ({detail}). Check the security: ssl on"
            " 993/995/465, starttls on 143/110/587."
        )
        code = Exit.TLS
    elif isinstance(err, MailTimeoutError):
        summary = "no answer in time"
        advice = f"{where} did not answer in time ({detail})."
        code = Exit.CONNECTION
    elif isinstance(err, ConnectError):
        summary = f"cannot connect ({detail})"
        advice = f"cannot talk to {where} ({detail}). Check the host and the port."
        code = Exit.CONNECTION
    elif isinstance(err, SendError):
        summary = f"message refused ({err.code} {err.reply})"
        advice = f"the server refused the message: {err.code} {err.reply}"
        code = Exit.REFUSED
    elif isinstance(err, MessageError):
        summary = f"invalid message ({detail})"
        advice = f"the message is invalid: {detail}"
        code = Exit.USAGE
    else:
        summary = f"unexpected answer ({detail})"
        advice = f"{where} answered unexpectedly ({detail})."
        code = Exit.OTHER
    return CliError(f"{what}: {advice}", code, summary=summary)


def say(message: str) -> None:
    """Tell the user something on stderr (stdout is for results)."""
    print(message, file=sys.stderr, flush=True)


# -- verbose mode: the protocol conversation, password masked -------------------

_LOGIN_LINE = re.compile(
    r'^(?P<keep>(?:\S+ )?LOGIN (?:"(?:[^"\\]|\\.)*"|\S+) ).*$', re.IGNORECASE
)
_PASS_LINE = re.compile(r"^(?P<keep>PASS ).*$", re.IGNORECASE)
_AUTH_LINE = re.compile(
    r"^(?P<keep>(?:\S+ )?AUTH(?:ENTICATE)? \S+)(?P<rest> .*)?$", re.IGNORECASE
)
MASK = "****"


class Masker(logging.Filter):
    """Hide the password in everything logged, in every form it travels in.

    Client lines are masked by shape (LOGIN/PASS arguments, AUTH initial
    responses and the answers to the server's challenges); on top of that,
    the password itself and its base64 forms are replaced wherever they occur.
    """

    def __init__(self) -> None:
        """Start with no secret known."""
        super().__init__()
        self._secrets: list[str] = []
        self._in_auth: dict[str, bool] = {}

    def add(self, username: str, password: str) -> None:
        """Learn a password (and its encodings) to hide."""
        if not password:
            return

        def b64(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        forms = {
            password,
            b64(password),
            b64(f"\0{username}\0{password}"),
            b64(f"{username}\0{username}\0{password}"),
        }
        with contextlib.suppress(ValueError):
            forms.add(quote(password)[1:-1])
        self._secrets = sorted(
            set(self._secrets) | {f for f in forms if f}, key=len, reverse=True
        )

    def scrub(self, text: str) -> str:
        """Replace every known secret."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def line(self, proto: str, direction: str, line: str) -> str:
        """Mask one line of the conversation."""
        if direction == "S":
            if not (line.startswith(("334", "+ ")) or line == "+"):
                self._in_auth[proto] = False
            return self.scrub(line)
        if self._in_auth.get(proto):
            return MASK
        if match := _LOGIN_LINE.match(line):
            return match["keep"] + MASK
        if match := _PASS_LINE.match(line):
            return match["keep"] + MASK
        if match := _AUTH_LINE.match(line):
            self._in_auth[proto] = True
            return match["keep"] + (" " + MASK if match["rest"] else "")
        return self.scrub(line)

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub every record that reaches the handler."""
        record.msg = self.scrub(record.getMessage())
        record.args = None
        return True


MASKER = Masker()
WIRE_MAX_LINES = 20


def wire(proto: str, direction: str, data: bytes | str) -> None:
    """Log what went over the wire (decrypted), one record per line."""
    if not _WIRE.isEnabledFor(logging.DEBUG):
        return
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    lines = text.splitlines()
    for line in lines[:WIRE_MAX_LINES]:
        _WIRE.debug("%s %s: %s", proto, direction, MASKER.line(proto, direction, line))
    if len(lines) > WIRE_MAX_LINES:
        _WIRE.debug(
            "%s %s: ... (%d more lines)", proto, direction, len(lines) - WIRE_MAX_LINES
        )


def _tap(cls: type, name: str, before: Callable[..., None]) -> None:
    """Call ``before`` with the arguments of ``cls.name`` on every call."""
    original = getattr(cls, name)

    def tapped(self: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        before(self, *args, **kwargs)
        return original(self, *args, **kwargs)

    setattr(cls, name, tapped)


def _tap_result(cls: type, name: str, after: Callable[[Any], None]) -> None:
    """Call ``after`` with what ``cls.name`` returned."""
    original = getattr(cls, name)

    def tapped(self: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        result = original(self, *args, **kwargs)
        after(result)
        return result

    setattr(cls, name, tapped)


def install_wire_taps() -> None:
    """Show the conversation of every protocol client (``--verbose`` only).

    aiosmtplib and our POP3 client do not log their traffic, and our IMAP
    LOGIN bypasses aioimaplib's logging on purpose, so the CLI taps the few
    methods where lines go in and out. Only this process is affected.
    """
    from aioimaplib import aioimaplib as aioimap
    from aiosmtplib.protocol import SMTPProtocol

    from . import imap, pop3

    _tap(SMTPProtocol, "data_received", lambda _s, data: wire("smtp", "S", data))
    _tap(SMTPProtocol, "write", lambda _s, data: wire("smtp", "C", data))
    _tap(imap._Protocol, "data_received", lambda _s, data: wire("imap", "S", data))
    _tap(
        aioimap.IMAP4ClientProtocol,
        "send",
        lambda _s, line, *_a, **_k: wire("imap", "C", line),
    )
    _tap(
        imap.ImapClient,
        "_login",
        lambda client, _proto: wire(
            "imap", "C", f"LOGIN {quote(client.settings.username)} {MASK}"
        ),
    )
    _tap(pop3._Client, "send", lambda _s, line: wire("pop3", "C", line))
    _tap_result(pop3._Client, "_getline", lambda res: wire("pop3", "S", res[0]))
    _tap_result(pop3._Client, "multiline", lambda res: wire("pop3", "S", res[0]))


def setup_logging(*, verbose: bool) -> None:
    """Warnings always, the conversation and debug details with --verbose."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(MASKER)
    handler.setFormatter(
        logging.Formatter("%(message)s" if verbose else "%(levelname)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # "maximum number of running instances reached" is coalescing at work.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    if verbose:
        _WIRE.setLevel(logging.DEBUG)
        logging.getLogger("custom_components.mail_relay").setLevel(logging.DEBUG)
        install_wire_taps()


# -- settings ------------------------------------------------------------------


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
    push: bool = True
    poll_interval: float = DEFAULT_POLL_INTERVAL
    retention: Retention = Retention.KEEP
    retention_days: int = 14
    text_limit: int = 2048
    include_headers: bool = False
    mark_seen: bool = False
    entry_id: str | None = None
    note: str | None = None  # something detection wants the user to know
    detect_seconds: float | None = None

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


@contextlib.asynccontextmanager
async def progress(message: str) -> AsyncIterator[None]:
    """Show that something slow is running: a spinner on a terminal, else a line."""
    stream = sys.stderr
    started = time.monotonic()
    if not stream.isatty():
        say(message + "...")
        yield
        return

    async def spin() -> None:
        for frame in itertools.cycle("|/-\\"):
            elapsed = time.monotonic() - started
            stream.write(f"\r{frame} {message}... {elapsed:.0f} s ")
            stream.flush()
            await asyncio.sleep(0.1)

    task = asyncio.create_task(spin())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        stream.write("\r\x1b[K")
        stream.flush()


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
    )


def _read_fd(fd: int) -> str:
    """Read one line (the password) from a file descriptor, then close it."""
    chunks: list[bytes] = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
            if b"\n" in chunk:
                break
    except OSError as err:
        raise usage_error(f"cannot read the password from fd {fd}: {err}") from None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return b"".join(chunks).split(b"\n", 1)[0].rstrip(b"\r").decode()


class PasswordSource:
    """Where the password comes from; a file descriptor can be read only once."""

    def __init__(self, fd: int | None) -> None:
        """Remember the options; nothing is read yet."""
        self._fd = fd
        self._from_fd: str | None = None

    async def get(self, username: str, spec: dict[str, Any] | None = None) -> str:
        """Return the password: config entry, fd, environment, then a prompt."""
        spec = spec or {}
        if "password_env" in spec:
            name = str(spec["password_env"])
            if name not in os.environ:
                raise usage_error(f"the environment variable {name} is not set")
            return os.environ[name]
        if "password_file" in spec:
            path = Path(str(spec["password_file"])).expanduser()
            try:
                text = await asyncio.to_thread(path.read_text)
            except OSError as err:
                raise usage_error(f"cannot read {path}: {err.strerror}") from None
            return text.splitlines()[0] if text else ""
        if "password" in spec:
            return str(spec["password"])
        # The fd and the prompt block the loop on purpose: nothing else runs
        # yet, and Ctrl-C at the prompt must interrupt at once.
        if self._fd is not None:
            if self._from_fd is None:
                self._from_fd = _read_fd(self._fd)
            return self._from_fd
        if PASSWORD_ENV in os.environ:
            return os.environ[PASSWORD_ENV]
        if sys.stdin.isatty():
            return getpass.getpass(f"Password for {username}: ")
        raise usage_error(
            f"no password: run in a terminal to be asked, set {PASSWORD_ENV},"
            " or pass it on a file descriptor with --password-fd N"
        )


async def add_password(
    account: Account, source: PasswordSource, spec: dict[str, Any] | None = None
) -> Account:
    """Ask for the password once and put it into both servers."""
    login = account.incoming or account.smtp or ServerSettings("", 0, Security.SSL, "")
    password = await source.get(login.username or account.address, spec)
    MASKER.add(login.username, password)
    incoming = (
        replace(account.incoming, password=password) if account.incoming else None
    )
    smtp = account.smtp
    if smtp is not None and smtp.username:
        smtp = replace(smtp, password=password)
        MASKER.add(smtp.username, password)
    return replace(account, incoming=incoming, smtp=smtp)


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


# -- check -----------------------------------------------------------------------

IMAP_NOTABLE = ("IDLE", "MOVE", "UIDPLUS", "CONDSTORE", "LITERAL+", "SPECIAL-USE")


def wrapped(label: str, text: str) -> list[str]:
    """Indent a long list under its label, 88 columns wide."""
    return textwrap.wrap(
        text,
        width=88,
        initial_indent=f"  {label}: ",
        subsequent_indent=" " * (len(label) + 4),
        break_on_hyphens=False,
    )


def describe(settings: ServerSettings) -> str:
    """One line: where, how, as whom."""
    return (
        f"{settings.host}:{settings.port}, {SECURITY_LABELS[settings.security]},"
        f" user {settings.username or '(none: no login)'}"
    )


async def check_imap(settings: ServerSettings, io_timeout: float) -> list[str]:
    """Log in, list capabilities and folders; return report lines."""
    client = await imap_login(settings, io_timeout)
    try:
        caps = sorted(client.capabilities)
        folders = await client.list_folders()
        await client.select("INBOX", readonly=True)
        unread = await client.unread_count()
    finally:
        await client.logout()
    have = set(caps)
    notable = [f"{c}: {'yes' if c in have else 'no'}" for c in IMAP_NOTABLE]
    if settings.security is Security.STARTTLS:
        notable.insert(0, "STARTTLS: used")
    return [
        *wrapped("capabilities", " ".join(caps)),
        "  " + ", ".join(notable),
        f"  folders ({len(folders)}): "
        + ", ".join(folders[:12])
        + (", ..." if len(folders) > 12 else ""),
        f"  INBOX: {unread} unread",
    ]


async def check_pop3(settings: ServerSettings, io_timeout: float) -> list[str]:
    """Log in once; return report lines with the capabilities."""
    caps = (await pop3_login(settings, io_timeout)).capabilities
    if caps is None:
        return ["  capabilities: (the server does not answer CAPA)"]
    names = sorted(" ".join([k, *v]) for k, v in caps.items())
    notable = [f"{c}: {'yes' if c in caps else 'no'}" for c in ("UIDL", "TOP")]
    if settings.security is Security.STARTTLS:
        notable.insert(0, "STLS: used")
    return [*wrapped("capabilities", ", ".join(names)), "  " + ", ".join(notable)]


async def check_smtp(settings: ServerSettings, io_timeout: float) -> list[str]:
    """Connect, secure and log in; return report lines with the extensions."""
    extensions = await smtp_login(settings, io_timeout)
    names = sorted(
        (f"{k.upper()} {v}".strip() for k, v in extensions.items()), key=str.lower
    )
    lines = wrapped("extensions", ", ".join(names))
    if settings.security is Security.STARTTLS:
        lines.append("  STARTTLS: used")
    return lines


def home_assistant_block(account: Account) -> list[str]:
    """Return the values to type into Home Assistant's "Server settings" step."""
    rows: list[tuple[str, str]] = [
        ("Email address", account.address),
        ("How to receive mail", account.protocol.value.upper()),
    ]
    if account.incoming is not None:
        s = account.incoming
        rows += [
            ("Incoming server", s.host),
            ("Incoming port", str(s.port)),
            ("Incoming security", SECURITY_LABELS[s.security]),
            ("Incoming username", s.username),
        ]
    if account.smtp is not None:
        s = account.smtp
        rows += [
            ("SMTP server (outgoing)", s.host),
            ("SMTP port", str(s.port)),
            ("SMTP security", SECURITY_LABELS[s.security]),
            ("SMTP username", s.username or "(empty: no login)"),
        ]
    verify = account.incoming.verify_tls if account.incoming else True
    rows.append(("Verify the server certificate", "yes" if verify else "no"))
    width = max(len(label) for label, _ in rows) + 2
    return [
        "Settings for Home Assistant (Settings > Devices & services > Add"
        " integration > Mail Relay):",
        *(f"  {label + ' ':.<{width}} {value}" for label, value in rows),
    ]


async def cmd_check(args: argparse.Namespace) -> int:
    """Detect, log in to each server, and say what works."""
    account = await resolve_servers(
        args, args.address, need_incoming=True, need_smtp=False
    )
    if args.no_smtp:
        account = replace(account, smtp=None)
    assert account.incoming is not None
    if account.note:
        say(account.note)
    kind = account.protocol.value.upper()
    print(f"Settings from: {account.found_in()}")
    print(f"Incoming ({kind}): {describe(account.incoming)}")
    print(
        "Outgoing (SMTP): "
        + (describe(account.smtp) if account.smtp else "not tested (no --smtp-host)")
    )
    sys.stdout.flush()
    warn_insecure(account)
    if account.provider is not None and account.provider.oauth_required:
        say(
            f"note: {account.provider.name} accepts only OAuth2 sign-in; expect the"
            " password to be refused."
        )
    account = await add_password(account, PasswordSource(args.password_fd))
    assert account.incoming is not None

    failures: list[CliError] = []
    idle = False
    tests: list[tuple[str, ServerSettings, Callable[..., Awaitable[list[str]]]]] = [
        (kind, account.incoming, check_imap if kind == "IMAP" else check_pop3)
    ]
    if account.smtp is not None:
        tests.append(("SMTP", account.smtp, check_smtp))
    for label, settings, test in tests:
        started = time.monotonic()
        try:
            lines = await test(settings, args.timeout)
        except MailError as err:
            failure = explain(err, f"{label} login", settings)
            failures.append(failure)
            print(f"{label}: FAILED: {failure.summary}")
            continue
        print(f"{label}: login OK ({time.monotonic() - started:.2f} s)")
        for line in lines:
            print(line)
        if label == "IMAP":
            idle = any("IDLE: yes" in line for line in lines)

    if failures:
        print(f"Verdict: FAILED (exit {int(failures[0].code)}): {failures[0]}")
        provider = account.provider
        if provider and provider.app_password and failures[0].code is Exit.AUTH:
            print(
                f"{provider.name} wants an app password, not the account password"
                + (f": {provider.help_url}" if provider.help_url else ".")
            )
        return failures[0].code
    receive = (
        f"receive with IMAP ({'IDLE push' if idle else 'no IDLE: polled'})"
        if kind == "IMAP"
        else "receive with POP3 (polled)"
    )
    send = "send with SMTP" if account.smtp else "SMTP not tested"
    print(f"Verdict: OK: {account.address} can {receive}; {send}.")
    print()
    for line in home_assistant_block(account):
        print(line)
    return Exit.OK


# -- state file ------------------------------------------------------------------


def default_state_path() -> Path:
    """Where ``watch`` keeps its state unless told otherwise (XDG)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mail-relay" / "state.json"


def write_atomically(path: Path, text: str) -> None:
    """Write a file so that a crash leaves the old or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class StateFile:
    """The JSON file that lets ``watch`` restart without repeating lines.

    Saves run in a worker thread, one at a time; changes made during a save
    are written by the next one, and ``flush()`` waits for the last.
    """

    def __init__(self, path: Path) -> None:
        """Remember the path; ``load()`` reads it."""
        self.path = path
        self.accounts: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._dirty = False

    def load(self) -> None:
        """Read the file; a missing file is an empty state, a broken one an error."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as err:
            raise CliError(
                f"cannot read the state file {self.path}: {err.strerror}", Exit.OTHER
            ) from None
        try:
            data = json.loads(text)
            accounts = data["accounts"]
            if not isinstance(accounts, dict):
                raise TypeError("accounts is not an object")  # noqa: TRY301
        except (ValueError, KeyError, TypeError) as err:
            raise CliError(
                f"the state file {self.path} is damaged ({err}); fix it or delete it"
                " (then mail already in the mailboxes is not reported again, but"
                " mail that arrived while stopped is not reported either)",
                Exit.OTHER,
            ) from None
        self.accounts = accounts

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Record one watcher's state and save soon."""
        self.accounts[key] = value
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._save())

    async def _save(self) -> None:
        while self._dirty:
            self._dirty = False
            text = json.dumps(
                {"version": STATE_VERSION, "accounts": self.accounts}, indent=1
            )
            try:
                await asyncio.to_thread(write_atomically, self.path, text)
            except OSError as err:
                say(f"error: cannot write the state file {self.path}: {err}")
                return

    async def flush(self) -> None:
        """Wait until everything recorded is on disk."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self._dirty:
            await self._save()


def state_key(protocol: Protocol, settings: ServerSettings, folder: str = "") -> str:
    """Identify a mailbox; another server or login starts afresh."""
    base = f"{protocol.value}://{settings.username}@{settings.host}:{settings.port}"
    return f"{base}/{folder}" if folder else base


# -- watch -----------------------------------------------------------------------

FATAL = (AuthError, CertificateError, StartTlsUnavailableError)


class Output:
    """Print one JSON line per message; stop everything if the reader went away."""

    def __init__(self, stop: asyncio.Event) -> None:
        """Share the stop signal with the watchers."""
        self._stop = stop

    def emit(self, entry_id: str | None, event: MailEvent) -> None:
        """Write the Home Assistant event payload as one line."""
        data = {"entry_id": entry_id, **event.as_dict()}
        try:
            sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader is gone (``| head -1``): nothing more to do.
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            self._stop.set()


class Runner:
    """One watched mailbox (an IMAP folder or a POP3 maildrop)."""

    label: str
    error: CliError | None = None

    async def start(self) -> None:
        """Connect once; fatal errors raise ``CliError``, others retry later."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop and leave the state ready to be saved."""
        raise NotImplementedError


class ImapRunner(Runner):
    """An IMAP folder watched with IDLE (or polled when the server lacks it)."""

    def __init__(
        self,
        account: Account,
        folder: str,
        state: StateFile,
        output: Output,
        on_fatal: Callable[[Runner], None],
        timeout: float,
    ) -> None:
        """Prepare the watcher with the saved mark, if any."""
        assert account.incoming is not None
        self.account = account
        self.settings = account.incoming
        self.folder = folder
        self.label = f"{account.address} ({folder})"
        self._state = state
        self._output = output
        self._on_fatal = on_fatal
        self._timeout = timeout
        self._key = state_key(Protocol.IMAP, self.settings, folder)
        self._task: asyncio.Task[None] | None = None
        self._connected: bool | None = None
        self.watcher: ImapWatcher | None = None

    def _saved(self) -> FolderState | None:
        saved = self._state.accounts.get(self._key)
        if not isinstance(saved, dict):
            return None
        try:
            return FolderState(saved["uidvalidity"], int(saved["last_uid"]))
        except (KeyError, TypeError, ValueError):
            return None

    async def _on_message(self, event: MailEvent) -> None:
        self._output.emit(self.account.entry_id, event)

    def _on_state(self, state: FolderState) -> None:
        self._state.set(self._key, asdict(state))

    def _on_status(self, status: WatchStatus) -> None:
        if status.connected == self._connected:
            return
        self._connected = status.connected
        if status.connected:
            how = "IDLE" if status.idle else "polling"
            say(f"{self.label}: watching {self.settings.host} ({how})")
        elif status.last_error:
            say(f"{self.label}: connection lost ({status.last_error}); reconnecting")

    async def start(self) -> None:
        """Connect once so that a wrong password is reported at once."""
        self.watcher = ImapWatcher(
            self.settings,
            account=self.account.address,
            folder=self.folder,
            state=self._saved(),
            on_message=self._on_message,
            on_state=self._on_state,
            on_status=self._on_status,
            ssl_context=await ssl_context(self.settings),
            push=self.account.push,
            poll_interval=self.account.poll_interval,
            text_limit=self.account.text_limit,
            include_headers=self.account.include_headers,
            mark_seen=self.account.mark_seen,
            backoff_max=60.0,
            timeout=self._timeout,
        )
        try:
            await self.watcher.connect_once()
        except FATAL as err:
            await self.watcher.close()
            raise explain(err, self.label, self.settings) from err
        except MailError as err:
            say(f"{self.label}: {explain(err, 'not connected yet', self.settings)}")
        self._task = asyncio.create_task(self._run(self.watcher))

    async def _run(self, watcher: ImapWatcher) -> None:
        try:
            await watcher.run()
        except FATAL as err:
            self.error = explain(err, self.label, self.settings)
            say(f"error: {self.error}")
            self._on_fatal(self)

    async def stop(self) -> None:
        """Stop watching, then log out (so the close is no outage)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.watcher is not None:
            await self.watcher.close()


class Pop3Runner(Runner):
    """A POP3 maildrop polled by APScheduler."""

    def __init__(
        self,
        account: Account,
        state: StateFile,
        output: Output,
        on_fatal: Callable[[Runner], None],
        scheduler: AsyncIOScheduler,
        timeout: float,
    ) -> None:
        """Prepare the poller with the saved UIDLs, if any."""
        assert account.incoming is not None
        self.account = account
        self.settings = account.incoming
        self.label = account.address
        self._state = state
        self._output = output
        self._on_fatal = on_fatal
        self._scheduler = scheduler
        self._timeout = timeout
        self._key = state_key(Protocol.POP3, self.settings)
        self._lock = asyncio.Lock()
        self._failures = 0
        self._job: Any = None
        self.poller: Pop3Poller | None = None

    def _saved(self) -> Pop3State | None:
        saved = self._state.accounts.get(self._key)
        if not isinstance(saved, dict) or not isinstance(saved.get("seen"), dict):
            return None
        return Pop3State(seen={str(k): float(v) for k, v in saved["seen"].items()})

    async def _on_message(self, event: MailEvent) -> None:
        self._output.emit(self.account.entry_id, event)

    def _save(self) -> None:
        assert self.poller is not None
        if not self.poller.baseline_pending:  # an empty set would repeat old mail
            self._state.set(self._key, asdict(self.poller.state))

    async def start(self) -> None:
        """Poll once now, then every interval (with jitter) from the scheduler."""
        self.poller = Pop3Poller(
            self.settings,
            account=self.account.address,
            state=self._saved(),
            retention=self.account.retention,
            retention_days=self.account.retention_days,
            text_limit=self.account.text_limit,
            include_headers=self.account.include_headers,
            ssl_context=await ssl_context(self.settings),
            timeout=self._timeout,
        )
        try:
            await self._poll()
        except FATAL as err:
            raise explain(err, self.label, self.settings) from err
        except MailError as err:
            say(f"{self.label}: {explain(err, 'first poll failed', self.settings)}")
            self._failures = 1
        else:
            say(
                f"{self.label}: polling {self.settings.host} every"
                f" {self.account.poll_interval:g} s"
            )
        interval = self.account.poll_interval
        self._job = self._scheduler.add_job(
            self._scheduled,
            IntervalTrigger(seconds=interval, jitter=min(interval * 0.1, 30.0)),
            id=f"pop3 {self._key}",
            name=f"POP3 {self.label}",
            max_instances=1,
            coalesce=True,
        )
        if self._failures:
            self._retry_soon()

    async def _poll(self) -> None:
        assert self.poller is not None
        async with self._lock:
            try:
                await self.poller.poll_once(self._on_message)
            finally:
                self._save()

    async def _scheduled(self) -> None:
        """One scheduled poll; never raises into the scheduler."""
        try:
            await self._poll()
        except FATAL as err:
            self.error = explain(err, self.label, self.settings)
            say(f"error: {self.error}")
            self._job.remove()
            self._on_fatal(self)
            return
        except MailError as err:
            if not self._failures:
                say(f"{self.label}: poll failed ({err}); retrying")
            self._failures += 1
            self._retry_soon()
            return
        except Exception:
            _LOGGER.exception("%s: unexpected error while polling", self.label)
            return
        if self._failures:
            say(f"{self.label}: {self.settings.host} answers again")
        self._failures = 0

    def _retry_soon(self) -> None:
        """After a failure, poll again sooner than the interval (backoff)."""
        delay = min(self.account.poll_interval, 2.0 ** (self._failures - 1))
        if delay < self.account.poll_interval:
            when = datetime.now(UTC) + timedelta(seconds=delay)
            self._job.modify(next_run_time=when)

    async def stop(self) -> None:
        """Let a poll in flight finish (it commits), then stop polling."""
        if self._job is not None:
            with contextlib.suppress(Exception):
                self._job.remove()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_GRACE), self._lock:
                pass


CONFIG_KEYS = frozenset(
    {
        "address", "id", "protocol", "host", "port", "security", "username",
        "smtp_host", "smtp_port", "smtp_security", "smtp_username", "insecure",
        "password", "password_env", "password_file", "folder", "folders", "push",
        "poll_interval", "retention", "retention_days", "text_limit",
        "include_headers", "mark_seen",
    }
)  # fmt: skip


def load_config(path: Path) -> dict[str, Any]:
    """Read a JSON or TOML config file (by extension; TOML unless ``.json``)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise usage_error(f"cannot read {path}: {err.strerror}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise usage_error(f"{path} is not valid: {err}") from None
    if not isinstance(data, dict):
        raise usage_error(f"{path}: expected a table/object at the top")
    accounts = data.get("accounts", data.get("account"))
    if not isinstance(accounts, list) or not accounts:
        raise usage_error(f"{path}: no [[account]] entries")
    for number, spec in enumerate(accounts, 1):
        if not isinstance(spec, dict) or "address" not in spec:
            raise usage_error(f"{path}: account {number} has no address")
        unknown = sorted(set(spec) - CONFIG_KEYS)
        if unknown:
            raise usage_error(
                f"{path}: account {number} has unknown keys: {', '.join(unknown)}"
            )
        if "password" in spec and path.stat().st_mode & 0o077:
            say(
                f"warning: {path} holds a password and other users can read it;"
                " chmod 600 it, or use password_env / password_file"
            )
    return data


def _options(
    account: Account, args: argparse.Namespace, spec: dict[str, Any]
) -> Account:
    folders = spec.get("folders") or spec.get("folder") or args.folder or ["INBOX"]
    if isinstance(folders, str):
        folders = [folders]
    interval = float(spec.get("poll_interval", args.poll_interval))
    if interval < MIN_POLL_INTERVAL:
        raise usage_error(f"the poll interval must be at least {MIN_POLL_INTERVAL:g} s")
    try:
        retention = Retention(spec.get("retention", args.retention))
    except ValueError:
        raise usage_error("retention must be keep, delete or days") from None
    return replace(
        account,
        folders=tuple(str(f) for f in folders),
        push=bool(spec.get("push", not args.no_push)),
        poll_interval=interval,
        retention=retention,
        retention_days=int(spec.get("retention_days", args.retention_days)),
        text_limit=int(spec.get("text_limit", args.text_limit)),
        include_headers=bool(spec.get("include_headers", args.include_headers)),
        mark_seen=bool(spec.get("mark_seen", args.mark_seen)),
        entry_id=spec.get("id"),
    )


async def watch_accounts(args: argparse.Namespace) -> tuple[list[Account], Path]:
    """Build the accounts from the address or the config file, passwords in."""
    passwords = PasswordSource(args.password_fd)
    state_path = args.state
    specs: list[dict[str, Any]]
    if args.config:
        config = load_config(Path(args.config).expanduser())
        specs = config.get("accounts", config.get("account"))
        if state_path is None and config.get("state"):
            state_path = Path(str(config["state"])).expanduser()
    elif args.address:
        specs = [{"address": args.address}]
    else:
        raise usage_error("give an ADDRESS or --config FILE")
    accounts = []
    for spec in specs:
        account = await resolve_servers(
            args,
            str(spec["address"]),
            need_incoming=True,
            need_smtp=False,
            spec=spec if args.config else None,
        )
        account = replace(account, smtp=None)
        if account.detect_seconds is not None:
            say(f"{account.address}: settings from {account.found_in()}")
        if account.note:
            say(account.note)
        warn_insecure(account)
        account = _options(account, args, spec if args.config else {})
        accounts.append(await add_password(account, passwords, spec))
    return accounts, Path(state_path) if state_path else default_state_path()


async def cmd_watch(args: argparse.Namespace) -> int:
    """Print one JSON line per new message until stopped."""
    accounts, state_path = await watch_accounts(args)
    state = StateFile(state_path)
    await asyncio.to_thread(state.load)
    stop = asyncio.Event()
    output = Output(stop)
    scheduler = AsyncIOScheduler()
    runners: list[Runner] = []

    def on_fatal(_runner: Runner) -> None:
        if all(r.error is not None for r in runners):
            stop.set()

    for account in accounts:
        if account.protocol is Protocol.IMAP:
            runners += [
                ImapRunner(account, folder, state, output, on_fatal, args.timeout)
                for folder in account.folders
            ]
        else:
            runners.append(
                Pop3Runner(account, state, output, on_fatal, scheduler, args.timeout)
            )

    loop = asyncio.get_running_loop()
    started: list[Runner] = []
    code: int = Exit.OK
    scheduler.start()
    try:
        for runner in runners:
            await runner.start()
            started.append(runner)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        say("Watching; one JSON line per new message. Ctrl-C stops.")
        await stop.wait()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # A second Ctrl-C while stopping interrupts at once.
            loop.remove_signal_handler(sig)
        errors = [r.error for r in runners if r.error is not None]
        if errors:
            code = errors[0].code
    finally:
        scheduler.pause()
        for runner in started:
            await runner.stop()
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # the scheduler shuts down in a loop callback
        await state.flush()
    say(f"Stopped; state saved in {state_path}.")
    return code


# -- send ------------------------------------------------------------------------


def _read_file(path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as err:
        raise usage_error(f"cannot read {path}: {err.strerror}") from None


async def cmd_send(args: argparse.Namespace) -> int:
    """Send one message through the account's SMTP server."""
    if not (args.to or args.cc or args.bcc):
        raise usage_error("give at least one recipient with --to, --cc or --bcc")
    text = args.text
    if args.text_file:
        data = (
            await asyncio.to_thread(sys.stdin.buffer.read)
            if args.text_file == "-"
            else await asyncio.to_thread(_read_file, args.text_file)
        )
        text = data.decode("utf-8", "replace")
    html = None
    if args.html:
        html = (await asyncio.to_thread(_read_file, args.html)).decode(
            "utf-8", "replace"
        )
    attachments = []
    for path in args.attach or []:
        content = await asyncio.to_thread(_read_file, path)
        attachments.append(Attachment(Path(path).name, content))
    account = await resolve_servers(
        args, args.address, need_incoming=False, need_smtp=True
    )
    assert account.smtp is not None
    if account.detect_seconds is not None:
        say(f"Settings from {account.found_in()}")
    warn_insecure(account)
    if account.smtp.username:
        account = await add_password(
            replace(account, incoming=None), PasswordSource(args.password_fd)
        )
    assert account.smtp is not None
    mail = OutgoingMail(
        sender=args.address,
        to=args.to or [],
        cc=args.cc or [],
        bcc=args.bcc or [],
        subject=args.subject,
        text=text,
        html=html,
        sender_name=args.sender_name,
        reply_to=args.reply_to or [],
        attachments=attachments,
    )
    sender = SmtpSender(account.smtp, timeout=args.timeout)
    try:
        result = await sender.send(mail)
    except MailError as err:
        raise explain(err, "send", account.smtp) from err
    finally:
        await sender.close()
    print(f"Sent to {', '.join(result.accepted) or 'nobody'}: {result.reply}".rstrip())
    for rcpt, (code, reply) in result.refused.items():
        print(f"Refused {rcpt}: {code} {reply}")
    return Exit.REFUSED if result.refused else Exit.OK


# -- command line ----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Build the command line: three subcommands sharing the server options."""
    common = argparse.ArgumentParser(add_help=False)
    servers = common.add_argument_group(
        "servers (given here, they turn autodetection off)"
    )
    servers.add_argument("--protocol", choices=["imap", "pop3"], help="default imap")
    servers.add_argument("--host", help="incoming (IMAP/POP3) server")
    servers.add_argument("--port", type=int, help="default: by protocol and security")
    servers.add_argument("--security", choices=[s.value for s in Security])
    servers.add_argument("--username", help="incoming login (default: the address)")
    servers.add_argument("--smtp-host")
    servers.add_argument("--smtp-port", type=int)
    servers.add_argument("--smtp-security", choices=[s.value for s in Security])
    servers.add_argument(
        "--smtp-username", help='SMTP login (default: the address; "" for none)'
    )
    tls = common.add_argument_group("TLS")
    tls.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify certificates (the connection stays encrypted)",
    )
    tls.add_argument(
        "--ca-file",
        help="also trust the CA certificates in this PEM file (sets SSL_CERT_FILE)",
    )
    found = common.add_argument_group("autodetection")
    found.add_argument("--ispdb-url", help="ISP database base URL")
    found.add_argument(
        "--autoconfig-url", help="autoconfig URL template with {domain}, {address}"
    )
    found.add_argument("--well-known-url", help="well-known URL template")
    found.add_argument(
        "--dns-server",
        action="append",
        metavar="HOST[:PORT]",
        help="DNS server for MX/SRV lookups (repeatable)",
    )
    found.add_argument(
        "--no-guess", action="store_true", help="do not probe usual host names"
    )
    found.add_argument("--detect-timeout", type=float, default=10.0, metavar="SECONDS")
    other = common.add_argument_group("other")
    other.add_argument(
        "--password-fd",
        type=int,
        metavar="N",
        help=f"read the password from file descriptor N (else {PASSWORD_ENV},"
        " else a prompt)",
    )
    other.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS"
    )
    other.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show the protocol conversation on stderr (password masked)",
    )

    parser = argparse.ArgumentParser(
        prog="mail-relay",
        description="Check a mail account, watch mailboxes, send mail: the Mail"
        " Relay integration's core, without Home Assistant.",
        epilog="Exit codes: 0 ok, 1 other error, 2 usage, 3 login refused,"
        " 4 TLS/certificate, 5 connection/timeout, 6 OAuth2 required,"
        " 7 STARTTLS unavailable, 8 no server found, 9 message refused,"
        " 130 interrupted.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser(
        "check",
        parents=[common],
        help="find the servers, test the logins, list capabilities",
    )
    check.add_argument("address")
    check.add_argument("--no-smtp", action="store_true", help="test incoming only")

    watch = sub.add_parser(
        "watch", parents=[common], help="print one JSON line per new message"
    )
    watch.add_argument("address", nargs="?")
    watch.add_argument("--config", help="TOML or JSON file with several accounts")
    watch.add_argument(
        "--state", type=Path, help=f"state file (default {default_state_path()})"
    )
    watch.add_argument("--folder", action="append", help="IMAP folder (repeatable)")
    watch.add_argument("--no-push", action="store_true", help="poll instead of IDLE")
    watch.add_argument(
        "--poll-interval",
        type=float,
        default=DEFAULT_POLL_INTERVAL,
        metavar="SECONDS",
        help="POP3 (and IMAP without IDLE) polling interval",
    )
    watch.add_argument(
        "--retention", default="keep", choices=[r.value for r in Retention]
    )
    watch.add_argument("--retention-days", type=int, default=14)
    watch.add_argument("--text-limit", type=int, default=2048)
    watch.add_argument("--include-headers", action="store_true")
    watch.add_argument("--mark-seen", action="store_true")

    send = sub.add_parser("send", parents=[common], help="send one message")
    send.add_argument("address", help="the sender's address (the account)")
    send.add_argument("--to", action="append")
    send.add_argument("--cc", action="append")
    send.add_argument("--bcc", action="append")
    send.add_argument("--reply-to", action="append")
    send.add_argument("--subject", default="")
    send.add_argument("--text", help="plain text body")
    send.add_argument("--text-file", help="plain text body from a file (- for stdin)")
    send.add_argument("--html", metavar="FILE", help="HTML body from a file")
    send.add_argument("--attach", action="append", metavar="FILE")
    send.add_argument("--sender-name")
    return parser


class CliEventLoop(asyncio.SelectorEventLoop):
    """An event loop whose name lookups run in daemon threads.

    Autodetection starts every lookup at once and drops the slow ones when a
    better source answers; in the default executor, an abandoned
    ``getaddrinfo`` (a guessed host name, a slow resolver) would still hold
    up the exit for seconds after the answer was printed.
    """

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,  # the name asyncio uses
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        """Resolve in a thread of its own that never delays the exit."""
        future: asyncio.Future[list[Any]] = self.create_future()

        def deliver(outcome: Callable[[], None]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self.call_soon_threadsafe(outcome)

        def settle(result: list[Any] | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result or [])

        def lookup() -> None:
            try:
                result = socket.getaddrinfo(host, port, family, type, proto, flags)
            except Exception as err:  # handed to the caller, as asyncio does
                deliver(functools.partial(settle, None, err))
            else:
                deliver(functools.partial(settle, result, None))

        threading.Thread(target=lookup, name="mail-relay lookup", daemon=True).start()
        return await future


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "check": cmd_check,
    "watch": cmd_watch,
    "send": cmd_send,
}


def fail(error: CliError) -> NoReturn:
    """Print the message and leave with its code."""
    say(f"mail-relay: error: {error}")
    raise SystemExit(int(error.code))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    args = build_parser().parse_args(argv)
    if args.ca_file:
        if not Path(args.ca_file).is_file():
            fail(usage_error(f"--ca-file {args.ca_file}: no such file"))
        # OpenSSL reads it when each context loads the default trust store, on
        # top of the system's certificate directory.
        os.environ["SSL_CERT_FILE"] = str(Path(args.ca_file).resolve())
    setup_logging(verbose=args.verbose)
    try:
        return asyncio.run(COMMANDS[args.command](args), loop_factory=CliEventLoop)
    except CliError as err:
        fail(err)
    except KeyboardInterrupt:
        say("mail-relay: interrupted")
        return Exit.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
