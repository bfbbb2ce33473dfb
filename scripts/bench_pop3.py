#!/usr/bin/env python3
"""Measure POP3 polling against a real Dovecot; prints JSON. Not run by the tests.

A maildrop of 5,000 messages is polled by ``Pop3Poller`` with nothing new, then
with 10 new messages; beside it, a plain ``poplib`` client does what a naive
client does on every poll (LIST, then RETR of every message). Time and bytes
received (POP3 lines, after TLS) are reported for each.

    .venv/bin/python scripts/bench_pop3.py [--messages 5000] [--new 10]
        [--security ssl|starttls|none] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import poplib
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from custom_components.mail_relay.mail.message import MailEvent  # noqa: E402
from custom_components.mail_relay.mail.models import (  # noqa: E402
    Security,
    ServerSettings,
)
from custom_components.mail_relay.mail.pop3 import Pop3Poller  # noqa: E402
from tests.mailserver import DovecotServer, MailUser, make_certificate  # noqa: E402
from tests.mailserver.dovecot import make_message  # noqa: E402


class Counter:
    def __init__(self) -> None:
        self.total = 0

    def __call__(self, n: int) -> None:
        self.total += n


class CountingPOP3(poplib.POP3):
    """Plain poplib, counting the bytes of every line it reads."""

    received = 0

    def _getline(self):
        line, octets = super()._getline()
        self.received += octets
        return line, octets


class CountingPOP3_SSL(CountingPOP3, poplib.POP3_SSL):
    pass


def naive_poll(
    server: DovecotServer, user: MailUser, security: str, context: ssl.SSLContext
) -> dict[str, float | int]:
    """LIST + RETR everything, as a client without UIDL bookkeeping does."""
    started = time.perf_counter()
    pop: CountingPOP3
    if security == "ssl":
        pop = CountingPOP3_SSL(server.host, server.pop3s_port, context=context)
    else:
        pop = CountingPOP3(server.host, server.pop3_port)
        if security == "starttls":
            pop.stls(context)
    pop.user(user.username)
    pop.pass_(user.password)
    _, listing, _ = pop.list()
    for entry in listing:
        pop.retr(int(entry.split()[0]))
    pop.quit()
    return {
        "seconds": round(time.perf_counter() - started, 4),
        "bytes": pop.received,
        "messages": len(listing),
    }


async def timed_poll(poller: Pop3Poller, counter: Counter) -> dict[str, float | int]:
    events: list[MailEvent] = []

    async def on_message(event: MailEvent) -> None:
        events.append(event)

    before = counter.total
    started = time.perf_counter()
    result = await poller.poll_once(on_message)
    return {
        "seconds": round(time.perf_counter() - started, 4),
        "bytes": counter.total - before,
        "events": len(events),
        "count": result.count,
    }


async def bench(args: argparse.Namespace) -> dict[str, object]:
    cert = make_certificate(Path(tempfile.mkdtemp(prefix="mailrelay-bench-")))
    server = DovecotServer(cert)
    server.start()
    try:
        user = server.add_user()
        server.fill_maildir(user, args.messages)
        context = cert.client_context()
        port = server.pop3s_port if args.security == "ssl" else server.pop3_port
        settings = ServerSettings(
            server.host, port, Security(args.security), user.username, user.password
        )
        counter = Counter()
        poller = Pop3Poller(
            settings,
            account=user.address,
            state=None,
            ssl_context=context,
            byte_counter=counter,
        )
        # First setup: Dovecot indexes the maildrop, the poller takes it as seen.
        baseline = await timed_poll(poller, counter)
        runs = [await timed_poll(poller, counter) for _ in range(args.repeat)]
        server.deliver(user, [make_message(f"new {i}") for i in range(args.new)])
        with_new = await timed_poll(poller, counter)
        naive = naive_poll(server, user, args.security, context)
        seconds = [float(r["seconds"]) for r in runs]
        return {
            "machine": platform.machine(),
            "python": platform.python_version(),
            "security": args.security,
            "maildrop": args.messages,
            "poller": {
                "first_setup_poll": baseline,
                "nothing_new": {
                    "seconds_median": round(statistics.median(seconds), 4),
                    "seconds_min": round(min(seconds), 4),
                    "seconds_max": round(max(seconds), 4),
                    "bytes": runs[-1]["bytes"],
                    "events": sum(int(r["events"]) for r in runs),
                    "runs": args.repeat,
                },
                f"{args.new}_new": with_new,
            },
            "naive_poplib_list_retr_all": naive,
        }
    finally:
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--new", type=int, default=10)
    parser.add_argument(
        "--security", choices=["ssl", "starttls", "none"], default="ssl"
    )
    parser.add_argument("--repeat", type=int, default=5)
    print(json.dumps(asyncio.run(bench(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
