"""``mail-relay check``: detect, log in to each server, say what works."""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from custom_components.mail_relay.mail.errors import MailError
from custom_components.mail_relay.mail.models import Security, ServerSettings
from custom_components.mail_relay.mail.probe import imap_login, pop3_login, smtp_login

from .account import SECURITY_LABELS, Account, resolve_servers, warn_insecure
from .errors import CliError, Exit, explain
from .oauth import add_credentials
from .output import say
from .passwords import PasswordSource
from .wire import tracer

IMAP_NOTABLE = ("IDLE", "MOVE", "UIDPLUS", "CONDSTORE", "LITERAL+", "SPECIAL-USE")
# What a server may still list after login though it describes the login itself
# (Cyrus keeps LOGINDISABLED): not a capability of the session we have.
IMAP_LOGIN_ONLY = frozenset({"LOGINDISABLED"})

SEARCH_WARNING = (
    "this server's UID SEARCH disagrees with UID FETCH (a known bug"
    " of GNU Mailutils imap4d). Mail Relay finds new mail by FETCH, so it works;"
    " other mail programs may miss mail here."
)


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
    client = await imap_login(settings, io_timeout, tracer())
    try:
        caps = sorted(client.capabilities - IMAP_LOGIN_ONLY)
        folders = await client.list_folders()
        await client.select("INBOX", readonly=True)
        unread = await client.unread_count()
        consistent = await client.search_consistent()
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
        *(wrapped("warning", SEARCH_WARNING) if consistent is False else []),
    ]


async def check_pop3(settings: ServerSettings, io_timeout: float) -> list[str]:
    """Log in once; return report lines with the capabilities."""
    caps = (await pop3_login(settings, io_timeout, tracer())).capabilities
    if caps is None:
        return ["  capabilities: (the server does not answer CAPA)"]
    names = sorted(" ".join([k, *v]) for k, v in caps.items())
    notable = [f"{c}: {'yes' if c in caps else 'no'}" for c in ("UIDL", "TOP")]
    if settings.security is Security.STARTTLS:
        notable.insert(0, "STLS: used")
    return [*wrapped("capabilities", ", ".join(names)), "  " + ", ".join(notable)]


async def check_smtp(settings: ServerSettings, io_timeout: float) -> list[str]:
    """Connect, secure and log in; return report lines with the extensions."""
    extensions = await smtp_login(settings, io_timeout, tracer())
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
    if account.provider is not None and account.provider.oauth_only and not args.oauth:
        say(
            f"note: {account.provider.name} refuses passwords: sign in with"
            " --oauth (and --client-id, your app's id)."
        )
    account = await add_credentials(account, args, PasswordSource(args.password_fd))
    assert account.incoming is not None
    if account.sign_in is not None and account.oauth is not None:
        print(f"Sign-in: OAuth2 with {account.oauth.name}")

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
            failure = explain(err, f"{label} login", settings, smtp=label == "SMTP")
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
