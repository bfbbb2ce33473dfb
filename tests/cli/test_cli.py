"""The `mail-relay` command, run as a subprocess against the real test servers.

Each test starts ``python -m mail_relay_cli`` (what the
``mail-relay`` console script runs) and checks what a user sees: the output,
the exit code, and the mail that arrived or was printed. The autoconfig/ISPDB
HTTP server and the DNS server run in the test's event loop, so the commands
are awaited with asyncio's subprocess support, never blocking that loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.mailserver import DovecotServer, MailUser, SmtpServer, TestCertificate
from tests.mailserver.dns import DnsTestServer
from tests.mailserver.dovecot import make_message
from tests.mailserver.http import ConfigHttpServer, config_xml

ROOT = Path(__file__).parent.parent.parent
CLI = (sys.executable, "-m", "mail_relay_cli")
DOMAIN = "mailrelay.test"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a user who trusts no test certificate yet."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR", "MAIL_RELAY_PASSWORD")
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


async def run_cli(
    *args: str, env: dict[str, str], timeout: float = 30, pass_fds: tuple = ()
) -> Result:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
        pass_fds=pass_fds,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def detection_args(http: ConfigHttpServer, dns: DnsTestServer) -> list[str]:
    """Point every lookup at the local servers; probe no guessed host names."""
    return [
        "--autoconfig-url",
        http.base + "/autoconfig/{domain}/config-v1.1.xml",
        "--well-known-url",
        http.base + "/wk/{domain}/config-v1.1.xml",
        "--ispdb-url",
        http.base + "/ispdb/",
        "--dns-server",
        dns.nameserver,
        "--no-guess",
        "--detect-timeout",
        "5",
    ]


@pytest.fixture
async def http() -> AsyncIterator[ConfigHttpServer]:
    async with ConfigHttpServer() as server:
        yield server


@pytest.fixture
async def dns() -> AsyncIterator[DnsTestServer]:
    async with DnsTestServer() as server:
        yield server


# -- check -------------------------------------------------------------------


async def test_check_finds_settings_in_ispdb_and_logs_in(
    http: ConfigHttpServer,
    dns: DnsTestServer,
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    mail_user: MailUser,
    mail_cert: TestCertificate,
) -> None:
    http.files[f"/ispdb/{DOMAIN}"] = config_xml(
        domain=DOMAIN,
        imap=("127.0.0.1", dovecot.imaps_port, "SSL"),
        smtp=("127.0.0.1", smtp_server.starttls_port, "STARTTLS"),
    )
    env = cli_env(
        MAIL_RELAY_PASSWORD=mail_user.password, SSL_CERT_FILE=str(mail_cert.cert)
    )
    result = await run_cli(
        "check", mail_user.address, *detection_args(http, dns), env=env
    )

    assert result.code == 0, result.text
    assert f"Looking up the servers of {DOMAIN}" in result.err
    assert "Settings from: the ISP database (ISPDB)" in result.out
    assert f"Incoming (IMAP): 127.0.0.1:{dovecot.imaps_port}, SSL/TLS" in result.out
    assert "IMAP: login OK" in result.out
    assert "IDLE: yes" in result.out
    assert "MOVE: yes" in result.out
    assert "SMTP: login OK" in result.out
    assert "STARTTLS: used" in result.out
    assert (
        f"Verdict: OK: {mail_user.address} can receive with IMAP (IDLE push)"
        in result.out
    )
    # The block to copy into Home Assistant's "Server settings" step.
    assert re.search(rf"Incoming port \.+ {dovecot.imaps_port}\n", result.out)
    assert re.search(r"SMTP security \.+ STARTTLS\n", result.out)
    assert mail_user.password not in result.text


async def test_check_refuses_untrusted_certificate(
    dovecot: DovecotServer, mail_user: MailUser, mail_cert: TestCertificate
) -> None:
    args = (
        "check",
        mail_user.address,
        "--host",
        "127.0.0.1",
        "--port",
        str(dovecot.imaps_port),
    )
    result = await run_cli(*args, env=cli_env(MAIL_RELAY_PASSWORD=mail_user.password))

    assert result.code == 4, result.text
    assert (
        "IMAP: FAILED: certificate not trusted (self-signed certificate)" in result.out
    )
    assert "--ca-file" in result.out
    assert "Outgoing (SMTP): not tested" in result.out

    # The same certificate, trusted the way a private CA is: the login works.
    result = await run_cli(
        *args,
        "--ca-file",
        str(mail_cert.cert),
        env=cli_env(MAIL_RELAY_PASSWORD=mail_user.password),
    )
    assert result.code == 0, result.text
    assert "Verdict: OK" in result.out


async def test_check_wrong_password_is_exit_3_and_never_shown(
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    mail_user: MailUser,
    mail_cert: TestCertificate,
) -> None:
    wrong = "Wr0ng-Secret-42"
    result = await run_cli(
        "check",
        mail_user.address,
        "--host", "localhost",  # resolved through the CLI's lookup threads
        "--port", str(dovecot.imap_port),
        "--security", "starttls",
        "--smtp-host", "127.0.0.1",
        "--smtp-port", str(smtp_server.starttls_port),
        "--smtp-security", "starttls",
        "--verbose",
        env=cli_env(MAIL_RELAY_PASSWORD=wrong, SSL_CERT_FILE=str(mail_cert.cert)),
    )  # fmt: skip

    assert result.code == 3, result.text
    assert "IMAP: FAILED: login refused" in result.out
    assert "SMTP: FAILED: login refused" in result.out
    assert "Verdict: FAILED (exit 3)" in result.out
    assert "Check the password" in result.out
    # --verbose shows the conversation, with the secret masked everywhere.
    assert "imap C: " in result.err
    assert "STARTTLS" in result.err
    assert f'LOGIN "{mail_user.address}" ****' in result.err
    assert "smtp C: AUTH PLAIN ****" in result.err
    assert wrong not in result.text


async def test_check_pop3_from_srv_records_with_password_on_fd(
    http: ConfigHttpServer,
    dns: DnsTestServer,
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    mail_user: MailUser,
    mail_cert: TestCertificate,
) -> None:
    dns.records[(f"_pop3._tcp.{DOMAIN}", "SRV")] = [
        (0, 0, dovecot.pop3_port, "127.0.0.1")
    ]
    dns.records[(f"_submissions._tcp.{DOMAIN}", "SRV")] = [
        (0, 0, smtp_server.ssl_port, "127.0.0.1")
    ]
    read_end, write_end = os.pipe()
    os.write(write_end, mail_user.password.encode() + b"\n")
    os.close(write_end)
    try:
        result = await run_cli(
            "check",
            mail_user.address,
            *detection_args(http, dns),
            "--password-fd", str(read_end),
            "--verbose",
            env=cli_env(SSL_CERT_FILE=str(mail_cert.cert)),
            pass_fds=(read_end,),
        )  # fmt: skip
    finally:
        os.close(read_end)

    assert result.code == 0, result.text
    assert "Settings from: DNS SRV records" in result.out
    assert f"{DOMAIN} offers no IMAP server: using POP3." in result.err
    assert f"Incoming (POP3): 127.0.0.1:{dovecot.pop3_port}, STARTTLS" in result.out
    assert "POP3: login OK" in result.out
    assert "STLS: used, UIDL: yes, TOP: yes" in result.out
    assert "SMTP: login OK" in result.out
    assert "pop3 C: STLS" in result.err
    assert "pop3 C: AUTH PLAIN" in result.err
    assert "pop3 C: ****" in result.err  # the SASL answer
    assert "Verdict: OK" in result.out
    assert mail_user.password not in result.text


async def test_check_starttls_not_offered_fails_closed(
    dovecot_without_tls: DovecotServer,
) -> None:
    user = dovecot_without_tls.add_user()
    result = await run_cli(
        "check", user.address,
        "--host", "127.0.0.1",
        "--port", str(dovecot_without_tls.imap_port),
        "--security", "starttls",
        env=cli_env(MAIL_RELAY_PASSWORD=user.password),
    )  # fmt: skip
    assert result.code == 7, result.text
    assert "STARTTLS not offered, password not sent" in result.out


async def test_check_nothing_found_and_no_password(
    http: ConfigHttpServer, dns: DnsTestServer
) -> None:
    result = await run_cli(
        "check", f"nobody@{DOMAIN}", *detection_args(http, dns), env=cli_env()
    )
    assert result.code == 8, result.text
    assert f"No mail servers found for {DOMAIN}" in result.err

    # Not a terminal and no password given: say how to give one.
    result = await run_cli(
        "check", f"nobody@{DOMAIN}", "--host", "127.0.0.1", env=cli_env()
    )
    assert result.code == 2, result.text
    assert "MAIL_RELAY_PASSWORD" in result.err
    assert "--password-fd" in result.err


# -- send --------------------------------------------------------------------


async def test_send_with_html_and_attachment(
    tmp_path: Path,
    smtp_server: SmtpServer,
    mail_user: MailUser,
    mail_cert: TestCertificate,
) -> None:
    html = tmp_path / "body.html"
    html.write_text("<p>The <b>garage</b> door is open.</p>")
    report = tmp_path / "report.csv"
    report.write_text("door,open\n")
    smtp_args = (
        "--smtp-host", "127.0.0.1",
        "--smtp-port", str(smtp_server.ssl_port),
        "--smtp-security", "ssl",
    )  # fmt: skip
    env = cli_env(
        MAIL_RELAY_PASSWORD=mail_user.password, SSL_CERT_FILE=str(mail_cert.cert)
    )
    result = await run_cli(
        "send", mail_user.address, *smtp_args,
        "--to", "Owner <owner@example.org>",
        "--subject", "Porte du garage ouverte à 22 h",
        "--html", str(html),
        "--attach", str(report),
        env=env,
    )  # fmt: skip

    assert result.code == 0, result.text
    assert "Sent to owner@example.org" in result.out
    received = smtp_server.received_by("owner@example.org")[-1].parsed()
    assert received["Subject"] == "Porte du garage ouverte à 22 h"
    assert received["From"] == mail_user.address
    assert [p.get_filename() for p in received.iter_attachments()] == ["report.csv"]
    assert "garage" in received.get_body(("html",)).get_content()

    # A message the server refuses: exit 9 with the server's words.
    smtp_server.replies.append("554 5.7.1 Message rejected as spam")
    result = await run_cli(
        "send", mail_user.address, *smtp_args,
        "--to", "owner@example.org", "--text", "hello",
        env=env,
    )  # fmt: skip
    assert result.code == 9, result.text
    assert "554 5.7.1 Message rejected as spam" in result.err


# -- watch -------------------------------------------------------------------


class WatchProcess:
    """A running ``mail-relay watch``: read its JSON lines, then stop it."""

    def __init__(self, proc: asyncio.subprocess.Process, err_path: Path) -> None:
        self.proc = proc
        self.err_path = err_path

    @classmethod
    async def start(
        cls, *args: str, env: dict[str, str], err_path: Path
    ) -> WatchProcess:
        with err_path.open("w") as err:
            proc = await asyncio.create_subprocess_exec(
                *CLI,
                "watch",
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=env,
                cwd=ROOT,
            )
        watch = cls(proc, err_path)
        await watch.wait_stderr("Watching;")
        return watch

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    async def wait_stderr(self, needle: str, within: float = 20) -> None:
        deadline = time.monotonic() + within
        while needle not in self.stderr:
            if self.proc.returncode is not None or time.monotonic() > deadline:
                await self.kill()
                raise AssertionError(f"no {needle!r} on stderr:\n{self.stderr}")
            await asyncio.sleep(0.05)

    async def lines(self, count: int, within: float = 15) -> list[dict[str, Any]]:
        assert self.proc.stdout is not None
        events = []
        deadline = time.monotonic() + within
        for _ in range(count):
            try:
                raw = await asyncio.wait_for(
                    self.proc.stdout.readline(), max(deadline - time.monotonic(), 0.01)
                )
            except TimeoutError:
                await self.kill()
                raise AssertionError(
                    f"got {[e['subject'] for e in events]}, wanted {count} lines;"
                    f" stderr:\n{self.stderr}"
                ) from None
            assert raw.endswith(b"\n"), raw
            events.append(json.loads(raw))
        return events

    async def nothing_more(self, seconds: float) -> None:
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), seconds)
        except TimeoutError:
            return
        pytest.fail(f"unexpected line: {line!r}")

    async def interrupt(self) -> tuple[int, bytes]:
        """Ctrl-C, as a user would; return the exit code and any last output."""
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), 20)
        code = await asyncio.wait_for(self.proc.wait(), 20)
        return code, rest

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def subjects(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((e["protocol"], e["account"], e["subject"]) for e in events)


async def test_watch_imap_and_pop3_once_per_message_across_restarts(
    tmp_path: Path, own_dovecot: DovecotServer, mail_cert: TestCertificate
) -> None:
    imap_user = own_dovecot.add_user()
    pop_user = own_dovecot.add_user()
    for user in (imap_user, pop_user):  # already there: not news
        own_dovecot.deliver(user, make_message("Old", to=user.address))
    config = tmp_path / "accounts.json"
    config.write_text(
        json.dumps(
            {
                "state": str(tmp_path / "state.json"),
                "accounts": [
                    {
                        "address": imap_user.address,
                        "host": "127.0.0.1",
                        "port": own_dovecot.imaps_port,
                        "security": "ssl",
                        "password_env": "IMAP_PASSWORD",
                    },
                    {
                        "id": "pop-account",
                        "address": pop_user.address,
                        "protocol": "pop3",
                        "host": "127.0.0.1",
                        "port": own_dovecot.pop3_port,
                        "security": "starttls",
                        "password_env": "POP_PASSWORD",
                        "poll_interval": 1,
                    },
                ],
            }
        )
    )
    env = cli_env(
        IMAP_PASSWORD=imap_user.password,
        POP_PASSWORD=pop_user.password,
        SSL_CERT_FILE=str(mail_cert.cert),
    )

    def deliver(subject: str) -> None:
        for user in (imap_user, pop_user):
            own_dovecot.deliver(user, make_message(subject, to=user.address))

    def expected(*names: str) -> list[tuple[str, str, str]]:
        return sorted(
            (proto, user.address, name)
            for name in names
            for proto, user in (("imap", imap_user), ("pop3", pop_user))
        )

    watch = await WatchProcess.start(
        "--config", str(config), env=env, err_path=tmp_path / "err1"
    )
    try:
        deliver("One")
        deliver("Two")
        first = await watch.lines(4)
        assert subjects(first) == expected("One", "Two")
        pop_event = next(e for e in first if e["protocol"] == "pop3")
        imap_event = next(e for e in first if e["protocol"] == "imap")
        assert pop_event["entry_id"] == "pop-account"
        assert imap_event["entry_id"] is None
        assert imap_event["folder"] == "INBOX"
        assert imap_event["uid"] == "2"  # a real UID: "Old" was 1
        assert imap_event["sender"] == "sender@example.org"
        assert imap_event["text"].strip() == "Hello from the test server."
        assert set(imap_event) >= {
            "message_id",
            "date",
            "to",
            "attachments",
            "sender_verified",
        }

        # The server goes away and comes back: both accounts carry on.
        own_dovecot.restart()
        deliver("Three")
        assert subjects(await watch.lines(2, within=25)) == expected("Three")
        await watch.nothing_more(1.5)
        code, rest = await watch.interrupt()
    finally:
        await watch.kill()
    assert code == 0, watch.stderr
    assert rest == b""
    assert "connection lost" in watch.stderr  # it noticed, and said so
    assert "Stopped; state saved" in watch.stderr

    # Mail that arrives while stopped is reported by the next run, once; the
    # mail already printed is not printed again.
    deliver("Four")
    watch = await WatchProcess.start(
        "--config", str(config), env=env, err_path=tmp_path / "err2"
    )
    try:
        assert subjects(await watch.lines(2)) == expected("Four")
        deliver("Five")
        assert subjects(await watch.lines(2)) == expected("Five")
        await watch.nothing_more(1.5)
        code, rest = await watch.interrupt()
    finally:
        await watch.kill()
    assert (code, rest) == (0, b"")
    saved = json.loads((tmp_path / "state.json").read_text())
    assert len(saved["accounts"]) == 2


async def test_watch_single_address_fatal_error_exit_code(
    tmp_path: Path, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    """A wrong password stops ``watch`` at once with exit 3 (nothing to retry)."""
    proc = await run_cli(
        "watch", mail_user.address,
        "--host", "127.0.0.1",
        "--port", str(dovecot.imaps_port),
        "--insecure",
        "--state", str(tmp_path / "state.json"),
        env=cli_env(MAIL_RELAY_PASSWORD="not-the-password"),
    )  # fmt: skip
    assert proc.code == 3, proc.text
    assert "refused the login" in proc.err
    assert "certificate verification is off" in proc.err


async def test_check_warns_of_a_broken_search_and_hides_logindisabled() -> None:
    from tests.mail.test_imap_mailutils import GREETING, MAILUTILS
    from tests.mailserver.scripted import ScriptedImapServer

    script = dict(MAILUTILS)
    # Cyrus keeps LOGINDISABLED in the capabilities it sends after login.
    script["LOGIN"] = "{tag} OK [CAPABILITY IMAP4rev1 LOGINDISABLED NAMESPACE] Ok"
    script["LIST"] = '* LIST (\\HasNoChildren) "/" INBOX'
    async with ScriptedImapServer(script, GREETING) as server:
        result = await run_cli(
            "check",
            "user@mailrelay.test",
            "--host", "127.0.0.1",
            "--port", str(server.port),
            "--security", "none",
            "--no-smtp",
            env=cli_env(MAIL_RELAY_PASSWORD="secret"),
        )  # fmt: skip
    assert result.code == 0, result.text
    assert "capabilities: IMAP4REV1 NAMESPACE\n" in result.out
    assert "LOGINDISABLED" not in result.out
    assert "warning: this server's UID SEARCH disagrees with UID FETCH" in result.out
    assert "Verdict: OK" in result.out
