"""The command line: parse the arguments, run one subcommand, exit with its code."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import socket
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

import aiohttp

from custom_components.mail_relay.mail.models import Security
from custom_components.mail_relay.mail.options import (
    EventOptions,
    Pop3PollOptions,
    Retention,
)

from .check import cmd_check
from .errors import CliError, Exit, usage_error
from .oauth import add_arguments as add_oauth_arguments
from .output import say
from .passwords import PASSWORD_ENV
from .send import cmd_send
from .state import default_state_path
from .watch import cmd_watch
from .wire import setup_logging

DEFAULT_TIMEOUT = 15.0


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
        " 10 message not confirmed, 11 OAuth2 sign-in needed again,"
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
        default=Pop3PollOptions().poll_interval,
        metavar="SECONDS",
        help="POP3 (and IMAP without IDLE) polling interval",
    )
    watch.add_argument(
        "--retention",
        default=Pop3PollOptions().retention.value,
        choices=[r.value for r in Retention],
    )
    watch.add_argument(
        "--retention-days", type=int, default=Pop3PollOptions().retention_days
    )
    watch.add_argument("--text-limit", type=int, default=EventOptions().text_limit)
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
    for command in (check, watch, send):
        add_oauth_arguments(command)
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


async def run(args: argparse.Namespace) -> int:
    """Run the command with one HTTP session for the sign-in's requests."""
    async with aiohttp.ClientSession() as http:
        args.http = http
        return await COMMANDS[args.command](args)


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
        return asyncio.run(run(args), loop_factory=CliEventLoop)
    except CliError as err:
        fail(err)
    except KeyboardInterrupt:
        say("mail-relay: interrupted")
        return Exit.INTERRUPTED
