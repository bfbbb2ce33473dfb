"""SMTP throughput: Mail Relay's notify entity vs Home Assistant's ``smtp`` notify.

Both send N notifications (default 200) through the same aiosmtpd listener with
STARTTLS + AUTH, in the same run, inside one Home Assistant test instance; the
server's own log counts what it accepted. The server runs in its own process (a
real mail server never shares Home Assistant's interpreter lock); ``--in-process``
runs it in threads instead. The machine is shared, so the contenders alternate
over several rounds and the best round of each is compared. Not part of the test
suite.

    .venv/bin/python scripts/bench_smtp.py [-n 200] [--rounds 3] [--concurrent]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mailserver.certs import TestCertificate, make_certificate  # noqa: E402
from tests.mailserver.ports import free_port  # noqa: E402
from tests.mailserver.smtp import MODES, SmtpServer  # noqa: E402

USER = "bench@mailrelay.test"
PASSWORD = "bench-password"  # local throwaway test server
CORE_RCPT = "core@mailrelay.test"
OURS_RCPT = "ours@mailrelay.test"


class Counts:
    """Ask the SMTP server (in this process or the child) what it accepted."""

    def __init__(self, server: SmtpServer | None, conn: object = None) -> None:
        self.server = server
        self.conn = conn

    def received(self, rcpt: str) -> int:
        if self.server is not None:
            return len(self.server.received_by(rcpt))
        self.conn.send(("count", rcpt))  # type: ignore[attr-defined]
        return int(self.conn.recv())  # type: ignore[attr-defined]

    def sessions(self) -> int:
        if self.server is not None:
            return self.server.sessions["starttls"]
        self.conn.send(("sessions", ""))  # type: ignore[attr-defined]
        return int(self.conn.recv())  # type: ignore[attr-defined]


def _serve(cert: TestCertificate, ports: dict[str, int], conn: object) -> None:
    """Child process: run the listeners and answer count queries."""
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    server = SmtpServer(cert, ports=ports)
    server.add_user(USER, PASSWORD)
    server.start()
    conn.send("ready")  # type: ignore[attr-defined]
    try:
        while True:
            what, arg = conn.recv()  # type: ignore[attr-defined]
            if what == "count":
                conn.send(len(server.received_by(arg)))  # type: ignore[attr-defined]
            elif what == "sessions":
                conn.send(server.sessions["starttls"])  # type: ignore[attr-defined]
            else:
                break
    finally:
        server.stop()


async def _run(
    host: str, port: int, counts: Counts, count: int, rounds: int, concurrent: bool
) -> dict[str, float]:
    # Imported late: HA reads REQUESTS_CA_BUNDLE when it builds its contexts.
    from homeassistant import loader
    from homeassistant.const import CONF_PASSWORD
    from homeassistant.setup import async_setup_component
    from pytest_homeassistant_custom_component.common import (
        MockConfigEntry,
        async_test_home_assistant,
    )

    from custom_components.mail_relay.const import (
        CONF_EMAIL,
        CONF_INCOMING_HOST,
        CONF_INCOMING_PORT,
        CONF_INCOMING_SECURITY,
        CONF_INCOMING_USERNAME,
        CONF_PROTOCOL,
        CONF_RECIPIENTS,
        CONF_SMTP_HOST,
        CONF_SMTP_PORT,
        CONF_SMTP_SECURITY,
        CONF_SMTP_USERNAME,
        CONF_VERIFY_SSL,
        DOMAIN,
    )

    results: dict[str, float] = {}
    async with async_test_home_assistant() as hass:
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
        # Home Assistant's own SMTP notify (legacy platform), same listener.
        assert await async_setup_component(
            hass,
            "notify",
            {
                "notify": [
                    {
                        "platform": "smtp",
                        "name": "core_smtp",
                        "server": host,
                        "port": port,
                        "encryption": "starttls",
                        "sender": USER,
                        "username": USER,
                        "password": PASSWORD,
                        "recipient": [CORE_RCPT],
                        "verify_ssl": True,
                    }
                ]
            },
        )
        await hass.async_block_till_done()
        assert hass.services.has_service("notify", "core_smtp")

        entry = MockConfigEntry(
            domain=DOMAIN,
            title=USER,
            data={
                CONF_EMAIL: USER,
                CONF_PASSWORD: PASSWORD,
                CONF_PROTOCOL: "imap",
                CONF_INCOMING_HOST: host,
                CONF_INCOMING_PORT: 993,
                CONF_INCOMING_SECURITY: "ssl",
                CONF_INCOMING_USERNAME: USER,
                CONF_SMTP_HOST: host,
                CONF_SMTP_PORT: port,
                CONF_SMTP_SECURITY: "starttls",
                CONF_SMTP_USERNAME: USER,
                CONF_VERIFY_SSL: True,
            },
            options={CONF_RECIPIENTS: [OURS_RCPT]},
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        entity_id = next(
            s.entity_id
            for s in hass.states.async_all("notify")
            if s.entity_id.startswith("notify.")
        )

        async def core(i: int) -> None:
            await hass.services.async_call(
                "notify",
                "core_smtp",
                {"title": f"core {i}", "message": "Porte ouverte."},
                blocking=True,
            )

        async def ours(i: int) -> None:
            await hass.services.async_call(
                "notify",
                "send_message",
                {
                    "entity_id": entity_id,
                    "title": f"ours {i}",
                    "message": "Porte ouverte.",
                },
                blocking=True,
            )

        sessions_before = counts.sessions()
        for _ in range(rounds):
            for name, send in (("core", core), ("ours", ours)):
                start = time.perf_counter()
                if concurrent:
                    await asyncio.gather(*(send(i) for i in range(count)))
                else:
                    for i in range(count):
                        await send(i)
                elapsed = time.perf_counter() - start
                best = results.get(f"{name}_seconds", float("inf"))
                results[f"{name}_seconds"] = min(best, elapsed)
                results.setdefault(f"{name}_all", 0.0)
                results[f"{name}_all"] += elapsed
        for name in ("core", "ours"):
            results[f"{name}_rate"] = count / results[f"{name}_seconds"]
            results[f"{name}_mean_rate"] = count * rounds / results[f"{name}_all"]

        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        await hass.async_stop(force=True)
    results["core_accepted"] = counts.received(CORE_RCPT)
    results["ours_accepted"] = counts.received(OURS_RCPT)
    # Core opens one per message; ours should need about one per round.
    results["sessions"] = counts.sessions() - sessions_before
    return results


def main() -> int:
    """Run the benchmark and print one line per contender."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--concurrent",
        action="store_true",
        help="fire all notifications at once instead of one after another",
    )
    parser.add_argument(
        "--in-process", action="store_true", help="run aiosmtpd in threads here"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        cert = make_certificate(Path(tmp))
        # Trust the test certificate the way a user trusts a private CA: our
        # sender reads the system store (SSL_CERT_FILE), HA's util.ssl reads
        # REQUESTS_CA_BUNDLE. Both verify; nobody turns verification off.
        os.environ["SSL_CERT_FILE"] = str(cert.cert)
        os.environ["REQUESTS_CA_BUNDLE"] = str(cert.cert)
        ports = {mode: free_port() for mode in MODES}
        server: SmtpServer | None = None
        child = None
        if args.in_process:
            server = SmtpServer(cert, ports=ports)
            server.add_user(USER, PASSWORD)
            server.start()
            counts = Counts(server)
        else:
            ctx = multiprocessing.get_context("spawn")
            parent_conn, child_conn = ctx.Pipe()
            child = ctx.Process(target=_serve, args=(cert, ports, child_conn))
            child.start()
            assert parent_conn.recv() == "ready"
            counts = Counts(None, parent_conn)
        try:
            res = asyncio.run(
                _run(
                    "127.0.0.1",
                    ports["starttls"],
                    counts,
                    args.count,
                    args.rounds,
                    args.concurrent,
                )
            )
        finally:
            if server is not None:
                server.stop()
            if child is not None:
                parent_conn.send(("stop", ""))
                child.join(10)
    n = args.count
    total = n * args.rounds
    mode = "concurrent" if args.concurrent else "sequential"
    where = "in-process" if args.in_process else "separate process"
    print(
        f"{n} notifications x {args.rounds} rounds, {mode}, aiosmtpd STARTTLS + AUTH "
        f"on 127.0.0.1 ({where}); best round / mean"
    )
    for label, key in (("HA core smtp", "core"), ("Mail Relay  ", "ours")):
        print(
            f"  {label}: {res[f'{key}_rate']:7.1f} msg/s best "
            f"({res[f'{key}_seconds']:.2f} s), {res[f'{key}_mean_rate']:7.1f} msg/s "
            f"mean, accepted {int(res[f'{key}_accepted'])}/{total}"
        )
    print(
        f"  ratio       : {res['ours_rate'] / res['core_rate']:.1f}x best, "
        f"{res['ours_mean_rate'] / res['core_mean_rate']:.1f}x mean"
    )
    print(f"  SMTP sessions opened during the rounds: {int(res['sessions'])}")
    ok = res["core_accepted"] == total and res["ours_accepted"] == total
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
