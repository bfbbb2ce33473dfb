"""POP3 watching against Dovecot's real POP3: UIDL polling, retention, security."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from custom_components.mail_relay.mail import pop3 as pop3_module
from custom_components.mail_relay.mail.errors import (
    AuthError,
    CertificateError,
    ConnectError,
    MailTimeoutError,
    StartTlsUnavailableError,
)
from custom_components.mail_relay.mail.message import MailEvent
from custom_components.mail_relay.mail.models import Security, ServerSettings
from custom_components.mail_relay.mail.options import (
    FilterOptions,
    Pop3PollOptions,
    Retention,
    Timeouts,
)
from custom_components.mail_relay.mail.pop3 import (
    PollResult,
    Pop3Poller,
    Pop3State,
)
from tests.mail.options import with_options
from tests.mail.wire import Wire
from tests.mailserver import DovecotServer, MailUser
from tests.mailserver.dovecot import (
    NON_ASCII_SUBJECT,
    NON_ASCII_TEXT,
    make_message,
    non_ascii_message,
)
from tests.mailserver.ports import free_port
from tests.mailserver.proxy import FaultyProxy, Mode

DAY = 86400.0


def settings(
    server: DovecotServer, user: MailUser, security: str = "ssl", password: str = ""
) -> ServerSettings:
    port = server.pop3s_port if security == "ssl" else server.pop3_port
    return ServerSettings(
        server.host,
        port,
        Security(security),
        user.username,
        password or user.password,
    )


class Recorder:
    """The host's callback: records events, optionally failing on one subject."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.events: list[MailEvent] = []
        self.fail_on = fail_on

    async def __call__(self, event: MailEvent) -> None:
        if self.fail_on is not None and event.subject == self.fail_on:
            raise RuntimeError("the host could not fire the event")
        self.events.append(event)

    @property
    def subjects(self) -> list[str]:
        return [e.subject for e in self.events]


def sent_verbs(wire: Wire) -> list[str]:
    """The first word of every command line the client sent."""
    return [line.split()[0] for line in wire.sent().decode().splitlines()]


def make_poller(
    server: DovecotServer,
    user: MailUser,
    state: Pop3State | None,
    security: str = "ssl",
    **kw,
) -> Pop3Poller:
    return Pop3Poller(
        settings(server, user, security),
        account=user.address,
        state=state,
        **with_options(Pop3PollOptions, kw),
    )


def log_lines(server: DovecotServer, needle: str) -> list[str]:
    log = server.directory / "dovecot.log"
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if needle in line]


async def wait_lines(
    server: DovecotServer, needle: str, expected: int, start: int = 0, also: str = ""
) -> list[str]:
    """Log lines containing ``needle`` after ``start``, once ``expected`` exist.

    Dovecot's log process writes a moment after the session ended.
    """
    lines: list[str] = []
    for _ in range(200):
        lines = [line for line in log_lines(server, needle)[start:] if also in line]
        if len(lines) >= expected:
            break
        await asyncio.sleep(0.05)
    return lines


async def logouts(server: DovecotServer, user: MailUser, expected: int) -> list[str]:
    """The POP3 logout lines of a user, once Dovecot has written ``expected``."""
    return await wait_lines(
        server, f"pop3({user.address})", expected, also="Logged out"
    )


def traffic(line: str) -> dict[str, int]:
    """Parse Dovecot's 'top=N/bytes, retr=N/bytes, del=N/total' logout figures."""
    return {
        name: int(count) for name, count in re.findall(r"\b(top|retr|del)=(\d+)/", line)
    }


async def test_new_mail_reported_once_then_only_uidl(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    dovecot.deliver(mail_user, [make_message(f"hello {i}") for i in range(3)])
    counted = Wire()
    poller = make_poller(dovecot, mail_user, Pop3State(), trace=counted)
    seen = Recorder()

    first = await poller.poll_once(seen)
    assert first == PollResult(count=3, new=3, deleted=0)
    assert seen.subjects == ["hello 0", "hello 1", "hello 2"]
    assert {e.protocol for e in seen.events} == {"pop3"}
    assert {e.folder for e in seen.events} == {"INBOX"}
    assert sorted(poller.state.seen) == sorted(e.uid for e in seen.events)
    assert all(e.size and e.size > 100 for e in seen.events)
    assert seen.events[0].text == "Hello from the test server."
    bytes_first = counted.received

    second = await poller.poll_once(seen)
    bytes_second = counted.received - bytes_first
    third = await poller.poll_once(seen)
    bytes_third = counted.received - bytes_first - bytes_second
    assert second == third == PollResult(count=3, new=0, deleted=0)
    assert len(seen.events) == 3

    lines = await logouts(dovecot, mail_user, 3)
    assert traffic(lines[0]) == {"top": 3, "retr": 0, "del": 0}
    # Polls with nothing new download no message: only UIDL (and login) traffic.
    assert "top=0/0, retr=0/0, del=0/3" in lines[1]
    assert "top=0/0, retr=0/0, del=0/3" in lines[2]
    assert bytes_second == bytes_third
    assert bytes_second < bytes_first / 2
    print(f"\nPOP3 bytes: first poll {bytes_first}, nothing-new poll {bytes_second}")


async def test_first_setup_takes_existing_mail_as_seen(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    dovecot.deliver(mail_user, [make_message("old 1"), make_message("old 2")])
    poller = make_poller(dovecot, mail_user, None, retention=Retention.DELETE)
    seen = Recorder()

    assert await poller.poll_once(seen) == PollResult(count=2, new=0, deleted=0)
    assert seen.events == []
    assert len(poller.state.seen) == 2
    assert not poller.baseline_pending

    dovecot.deliver(mail_user, make_message("fresh"))
    result = await poller.poll_once(seen)
    assert seen.subjects == ["fresh"]
    # Delete-after-download removes what was reported, never mail we did not report.
    assert result == PollResult(count=2, new=1, deleted=1)
    assert dovecot.message_count(mail_user) == 2
    assert traffic((await logouts(dovecot, mail_user, 1))[0])["top"] == 0


async def test_restart_with_same_state_repeats_nothing(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    dovecot.deliver(mail_user, [make_message("one"), make_message("two")])
    first = make_poller(dovecot, mail_user, Pop3State())
    seen = Recorder()
    await first.poll_once(seen)
    assert seen.subjects == ["one", "two"]

    stored = json.loads(json.dumps(asdict(first.state)))  # what the host persists
    dovecot.deliver(mail_user, make_message("three"))
    after_restart = make_poller(dovecot, mail_user, Pop3State(**stored))
    await after_restart.poll_once(seen)
    assert seen.subjects == ["one", "two", "three"]
    await after_restart.poll_once(seen)
    assert seen.subjects == ["one", "two", "three"]


async def test_delete_after_download_empties_maildrop(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    dovecot.deliver(mail_user, [make_message(f"m{i}") for i in range(3)])
    poller = make_poller(dovecot, mail_user, Pop3State(), retention=Retention.DELETE)
    seen = Recorder()

    assert await poller.poll_once(seen) == PollResult(count=0, new=3, deleted=3)
    assert seen.subjects == ["m0", "m1", "m2"]
    assert dovecot.message_count(mail_user) == 0
    assert poller.state.seen == {}  # nothing left to remember
    assert await poller.poll_once(seen) == PollResult(count=0, new=0, deleted=0)
    assert len(seen.events) == 3


async def test_keep_days_deletes_only_older_mail(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    now = [1_800_000_000.0]
    poller = make_poller(
        dovecot,
        mail_user,
        Pop3State(),
        retention=Retention.DAYS,
        retention_days=14,
        clock=lambda: now[0],
    )
    seen = Recorder()
    dovecot.deliver(mail_user, [make_message("early 1"), make_message("early 2")])
    assert await poller.poll_once(seen) == PollResult(count=2, new=2, deleted=0)

    now[0] += 10 * DAY
    dovecot.deliver(mail_user, make_message("later"))
    assert await poller.poll_once(seen) == PollResult(count=3, new=1, deleted=0)

    now[0] += 5 * DAY  # early ones are 15 days old, the later one 5
    assert await poller.poll_once(seen) == PollResult(count=1, new=0, deleted=2)
    assert dovecot.message_count(mail_user) == 1
    later_uid = seen.events[2].uid
    assert list(poller.state.seen) == [later_uid]

    now[0] += 9 * DAY
    assert await poller.poll_once(seen) == PollResult(count=0, new=0, deleted=1)
    assert dovecot.message_count(mail_user) == 0
    assert seen.subjects == ["early 1", "early 2", "later"]


async def test_keep_forever_never_deletes(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    now = [1_800_000_000.0]
    poller = make_poller(
        dovecot, mail_user, Pop3State(), retention_days=1, clock=lambda: now[0]
    )
    seen = Recorder()
    dovecot.deliver(mail_user, [make_message("a"), make_message("b")])
    for _ in range(3):
        result = await poller.poll_once(seen)
        assert result.deleted == 0
        now[0] += 1000 * DAY
    assert dovecot.message_count(mail_user) == 2
    assert seen.subjects == ["a", "b"]
    assert all(
        traffic(line)["del"] == 0 for line in await logouts(dovecot, mail_user, 3)
    )


async def test_failed_callback_loses_nothing_and_deletes_nothing_unreported(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    dovecot.deliver(mail_user, [make_message(f"n{i}") for i in range(1, 4)])
    poller = make_poller(dovecot, mail_user, Pop3State(), retention=Retention.DELETE)
    failing = Recorder(fail_on="n2")

    with pytest.raises(RuntimeError, match="could not fire"):
        await poller.poll_once(failing)
    assert failing.subjects == ["n1"]
    assert list(poller.state.seen) == [failing.events[0].uid]
    assert dovecot.message_count(mail_user) == 3  # the session was not committed

    working = Recorder()
    assert await poller.poll_once(working) == PollResult(count=0, new=2, deleted=3)
    assert working.subjects == ["n2", "n3"]
    assert dovecot.message_count(mail_user) == 0


async def test_cancelled_poll_commits_nothing(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    dovecot.deliver(mail_user, [make_message("first"), make_message("stuck")])
    poller = make_poller(dovecot, mail_user, Pop3State(), retention=Retention.DELETE)
    reached = asyncio.Event()
    events: list[str] = []

    async def hangs(event: MailEvent) -> None:
        if event.subject == "stuck":
            reached.set()
            await asyncio.Event().wait()
        events.append(event.subject)

    task = asyncio.create_task(poller.poll_once(hangs))
    await asyncio.wait_for(reached.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == ["first"]
    assert dovecot.message_count(mail_user) == 2

    again = Recorder()
    assert await poller.poll_once(again) == PollResult(count=0, new=1, deleted=2)
    assert again.subjects == ["stuck"]


async def test_non_ascii_subject_and_8bit_body_arrive_intact(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    dovecot.deliver(mail_user, non_ascii_message(mail_user.address))
    seen = Recorder()
    await make_poller(dovecot, mail_user, Pop3State()).poll_once(seen)
    assert seen.subjects == [NON_ASCII_SUBJECT]
    assert seen.events[0].text == NON_ASCII_TEXT


async def test_pop3s_stls_and_clear_text_each_work(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    dovecot.deliver(mail_user, make_message("over every transport"))
    for security in ("ssl", "starttls", "none"):
        seen = Recorder()
        poller = make_poller(dovecot, mail_user, Pop3State(), security=security)
        assert await poller.poll_once(seen) == PollResult(count=1, new=1, deleted=0)
        assert seen.subjects == ["over every transport"]
    logins = dovecot.logins(mail_user)
    assert len(logins) == 3
    assert ", TLS," in logins[0]  # POP3S
    assert ", TLS," in logins[1]  # STLS
    assert ", TLS," not in logins[2]  # clear text, as the user chose


async def test_stls_required_fails_closed_without_sending_credentials(
    dovecot_without_tls: DovecotServer,
) -> None:
    server = dovecot_without_tls
    user = server.add_user()  # the login would succeed if it were ever sent
    before = len(log_lines(server, server.login_dropped_marker("pop3")))
    poller = make_poller(server, user, Pop3State(), security="starttls")

    with pytest.raises(StartTlsUnavailableError):
        await poller.poll_once(Recorder())
    with pytest.raises(StartTlsUnavailableError):
        await poller.check_login()

    ours = await wait_lines(server, server.login_dropped_marker("pop3"), 2, before)
    assert len(ours) >= 2
    assert all(server.dropped_without_credentials(line) for line in ours), ours
    assert log_lines(server, user.address) == []


async def test_wrong_password_is_auth_error(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    poller = Pop3Poller(
        settings(dovecot, mail_user, password="not-the-password"),
        account=mail_user.address,
        state=Pop3State(),
    )
    with pytest.raises(AuthError):
        await poller.check_login()


async def test_untrusted_certificate_is_refused(
    dovecot: DovecotServer, mail_user: MailUser
) -> None:
    for security in ("ssl", "starttls"):
        poller = make_poller(dovecot, mail_user, Pop3State(), security=security)
        with pytest.raises(CertificateError):
            await poller.poll_once(Recorder())
    assert dovecot.logins(mail_user) == []

    # Unless the user turned verification off for this account.
    unverified = ServerSettings(
        dovecot.host,
        dovecot.pop3s_port,
        Security.SSL,
        mail_user.username,
        mail_user.password,
        verify_tls=False,
    )
    await Pop3Poller(unverified, account="a", state=None).check_login()


async def test_check_login(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    await make_poller(dovecot, mail_user, None).check_login()
    assert len(await logouts(dovecot, mail_user, 1)) == 1


async def test_user_pass_when_server_lists_no_sasl_plain(
    dovecot: DovecotServer,
    mail_user: MailUser,
    trust_test_cert: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Dovecot always offers SASL PLAIN; hide it from CAPA to take the
    # USER/PASS path against the real server; the trace shows the verbs.
    real_caps = pop3_module._Client.capabilities
    wire = Wire()

    def without_sasl(self: pop3_module._Client) -> dict[str, list[str]] | None:
        caps = real_caps(self)
        assert caps is not None
        caps.pop("SASL", None)
        return caps

    monkeypatch.setattr(pop3_module._Client, "capabilities", without_sasl)
    dovecot.deliver(mail_user, make_message("by user/pass"))
    seen = Recorder()
    await make_poller(dovecot, mail_user, Pop3State(), trace=wire).poll_once(seen)
    assert seen.subjects == ["by user/pass"]
    verbs = sent_verbs(wire)
    assert "USER" in verbs
    assert "PASS" in verbs
    assert "AUTH" not in verbs


async def test_auth_plain_when_offered(
    dovecot: DovecotServer,
    mail_user: MailUser,
    trust_test_cert: Path,
) -> None:
    wire = Wire()
    await make_poller(dovecot, mail_user, Pop3State(), trace=wire).check_login()
    verbs = sent_verbs(wire)
    # CAPA, AUTH PLAIN, the base64 token, QUIT: no USER/PASS.
    assert len(verbs) == 4
    assert (verbs[0], verbs[1], verbs[3]) == ("CAPA", "AUTH", "QUIT")


async def test_retr_fallback_reads_at_most_the_cap(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    body = "\n".join(f"line {i} " + "x" * 70 for i in range(5000))  # ~400 KB
    dovecot.deliver(mail_user, make_message("big one", body=body))
    counted = Wire()
    poller = make_poller(
        dovecot,
        mail_user,
        Pop3State(),
        use_top=False,
        retr_cap=16 * 1024,
        text_limit=100_000,
        trace=counted,
    )
    seen = Recorder()
    await poller.poll_once(seen)
    (event,) = seen.events
    assert event.subject == "big one"
    assert event.size is not None
    assert event.size > 400_000  # the real size, from LIST
    assert event.text.startswith("line 0 ")
    assert len(event.text) < 16 * 1024  # only the capped part was kept
    assert counted.received > 400_000  # RETR has no partial form: the rest was read
    line = (await logouts(dovecot, mail_user, 1))[0]
    assert traffic(line) == {"top": 0, "retr": 1, "del": 0}


async def test_top_copes_with_overlong_lines(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    # poplib itself refuses lines over 2 KB; HTML mail often has them.
    body = "<p>" + "word " * 20_000 + "</p>"
    raw = (
        b"From: news@example.org\r\nTo: " + mail_user.address.encode() + b"\r\n"
        b"Subject: one long line\r\nContent-Type: text/html\r\n\r\n"
        + body.encode()
        + b"\r\n"
    )
    dovecot.deliver(mail_user, raw)
    seen = Recorder()
    await make_poller(dovecot, mail_user, Pop3State(), text_limit=50).poll_once(seen)
    (event,) = seen.events
    assert event.subject == "one long line"
    assert event.text.startswith("word word")
    assert traffic((await logouts(dovecot, mail_user, 1))[0])["top"] == 1


async def test_connection_refused_and_silent_server(
    mail_user: MailUser,
) -> None:
    refused = ServerSettings(
        "127.0.0.1", free_port(), Security.NONE, mail_user.username, "x"
    )
    with pytest.raises(ConnectError):
        await Pop3Poller(refused, account="a", state=None).check_login()

    # A server that accepts the connection but never greets.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        silent = ServerSettings(
            "127.0.0.1",
            listener.getsockname()[1],
            Security.NONE,
            mail_user.username,
            "x",
        )
        poller = Pop3Poller(silent, account="a", state=None, timeouts=Timeouts(io=0.5))
        with pytest.raises(MailTimeoutError):
            await poller.poll_once(Recorder())


async def test_large_maildrop_nothing_new(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    await asyncio.to_thread(dovecot.fill_maildir, mail_user, 5000)
    counted = Wire()
    poller = make_poller(dovecot, mail_user, None, trace=counted)
    seen = Recorder()
    assert await poller.poll_once(seen) == PollResult(count=5000, new=0, deleted=0)
    assert len(poller.state.seen) == 5000
    before = counted.received

    started = time.perf_counter()
    result = await poller.poll_once(seen)
    elapsed = time.perf_counter() - started
    assert result == PollResult(count=5000, new=0, deleted=0)
    assert seen.events == []
    lines = await logouts(dovecot, mail_user, 2)
    assert all("top=0/0, retr=0/0" in line for line in lines)
    print(
        f"\nPOP3 poll of 5,000 messages, nothing new: {elapsed * 1000:.0f} ms, "
        f"{counted.received - before} bytes received"
    )

    dovecot.deliver(mail_user, make_message("needle"))
    assert await poller.poll_once(seen) == PollResult(count=5001, new=1, deleted=0)
    assert seen.subjects == ["needle"]


async def test_a_server_that_drips_cannot_hold_a_poll(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    """One byte every 0.5 s keeps each read within the timeout: the session is cut.

    The next poll, once the server answers normally, reports the mail once.
    """
    dovecot.deliver(mail_user, make_message("during the slow spell"))
    async with FaultyProxy(dovecot.host, dovecot.pop3_port, drip=0.5) as proxy:
        poller = Pop3Poller(
            ServerSettings(
                "127.0.0.1",
                proxy.port,
                Security.NONE,
                mail_user.username,
                mail_user.password,
            ),
            account=mail_user.address,
            state=Pop3State(),
            timeouts=Timeouts(io=2.0, session=3.0),
        )
        seen = Recorder()
        proxy.set_mode(Mode.DRIP)
        started = time.monotonic()
        async with asyncio.timeout(60):  # only to catch a hang
            with pytest.raises(MailTimeoutError, match="longer than 3 s"):
                await poller.poll_once(seen)
        assert time.monotonic() - started < 10
        assert seen.events == []

        proxy.set_mode(Mode.PASS)
        await poller.poll_once(seen)
        await poller.poll_once(seen)
    assert seen.subjects == ["during the slow spell"]


async def test_filter_after_top_fires_only_for_matches_and_deletes_only_those(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path
) -> None:
    """Mail the filter passes over fires nothing, is never reported later, and stays.

    With deletion after download, only mail that fired an event is deleted:
    the user asked for no event, not for less mail.
    """
    poller = make_poller(
        dovecot,
        mail_user,
        Pop3State(),
        retention=Retention.DELETE,
        filter=FilterOptions(senders=("maison.fr",), subject_contains="porte"),
    )
    dovecot.deliver(
        mail_user,
        [
            make_message("Porte ouverte", sender="spam@example.net"),
            make_message("La porte du garage", sender="capteur@cave.maison.fr"),
            make_message("Facture", sender="compta@maison.fr"),
        ],
    )
    seen = Recorder()
    assert await poller.poll_once(seen) == PollResult(count=2, new=3, deleted=1)
    assert seen.subjects == ["La porte du garage"]
    assert dovecot.message_count(mail_user) == 2
    # Without the filter now: the mail it passed over is not replayed.
    again = make_poller(dovecot, mail_user, poller.state, retention=Retention.DELETE)
    dovecot.deliver(mail_user, make_message("Bonjour", sender="ami@example.net"))
    assert await again.poll_once(seen) == PollResult(count=2, new=1, deleted=1)
    assert seen.subjects == ["La porte du garage", "Bonjour"]
