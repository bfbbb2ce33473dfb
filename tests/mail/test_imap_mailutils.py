"""A server whose UID SEARCH is broken (GNU Mailutils imap4d 3.15) still reports mail.

imap4d answers ``UID SEARCH UID 63:*`` with nothing and ``UID FETCH 63:* (UID)``
correctly; the scripted server below answers exactly that, as captured.
"""

from __future__ import annotations

import asyncio

from custom_components.mail_relay.mail.imap import FolderState, ImapWatcher
from custom_components.mail_relay.mail.message import MailEvent
from custom_components.mail_relay.mail.models import Protocol, Security, ServerSettings
from custom_components.mail_relay.mail.options import FilterOptions, ImapWatchOptions
from custom_components.mail_relay.mail.probe import SEARCH_INCONSISTENT, test_login
from tests.mailserver.scripted import ScriptedImapServer

UIDVALIDITY = 1764600000
GREETING = "* OK IMAP4rev1 Debian GNU Mailutils 3.15"


def _header(uid: int) -> bytes:
    return (
        f"From: sender@example.org\r\nTo: user@mailrelay.test\r\n"
        f"Subject: Courrier {uid}\r\nMessage-ID: <{uid}@example.org>\r\n\r\n"
    ).encode()


def _fetch_answer(uids: list[int]) -> str:
    lines = []
    for number, uid in enumerate(uids, start=1):
        header = _header(uid).decode()
        lines.append(
            f"* {number} FETCH (UID {uid} FLAGS () RFC822.SIZE 120"
            ' INTERNALDATE "01-Dec-2026 21:39:20 +0000" BODYSTRUCTURE'
            ' ("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 7 1 NIL NIL NIL NIL)'
            f" BODY[HEADER] {{{len(header)}}}\r\n{header} BODY[1]<0> {{7}}\r\n"
            "bonjour)"
        )
    return "\r\n".join(lines)


MAILUTILS = {
    "CAPABILITY": "* CAPABILITY IMAP4rev1 NAMESPACE ID LITERAL+ UNSELECT",
    "LOGIN": "{tag} OK LOGIN Completed",
    "SELECT": "* 3 EXISTS\r\n* 0 RECENT\r\n"
    f"* OK [UIDVALIDITY {UIDVALIDITY}] UID valid\r\n"
    "* OK [UIDNEXT 66] Predicted next uid\r\n"
    "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
    "{tag} OK [READ-WRITE] SELECT Completed",
    "EXAMINE": "* 3 EXISTS\r\n"
    f"* OK [UIDVALIDITY {UIDVALIDITY}] UID valid\r\n"
    "* OK [UIDNEXT 66] Predicted next uid\r\n"
    "{tag} OK [READ-ONLY] EXAMINE Completed",
    # The bug: nothing for a range, BAD for "*".
    "UID SEARCH UID": "* SEARCH\r\n{tag} OK SEARCH Completed",
    "UID SEARCH UID *": "{tag} BAD UID SEARCH Invalid arguments",
    "UID FETCH 1:* (UID)": "* 1 FETCH (UID 63)\r\n* 2 FETCH (UID 64)\r\n"
    "* 3 FETCH (UID 65)",
    "UID FETCH 63:* (UID)": "* 1 FETCH (UID 63)\r\n* 2 FETCH (UID 64)\r\n"
    "* 3 FETCH (UID 65)",
    "UID FETCH 63:65 (UID FLAGS": _fetch_answer([63, 64, 65]),
    "UID FETCH 66:* (UID)": "* 3 FETCH (UID 65)",
    "SEARCH UNSEEN": "* SEARCH 1 2 3",
    "NOOP": "{tag} OK NOOP Completed",
    "LOGOUT": "* BYE Session terminating.\r\n{tag} OK LOGOUT Completed",
}


def _settings(port: int) -> ServerSettings:
    return ServerSettings("127.0.0.1", port, Security.NONE, "user", "secret")


async def test_watcher_reports_mail_although_uid_search_finds_nothing() -> None:
    async with ScriptedImapServer(dict(MAILUTILS), GREETING) as server:
        events: list[MailEvent] = []
        got_three = asyncio.Event()
        counted = asyncio.Event()

        async def on_message(event: MailEvent) -> None:
            events.append(event)
            if len(events) == 3:
                got_three.set()

        watcher = ImapWatcher(
            _settings(server.port),
            account="user",
            state=FolderState(UIDVALIDITY, 62),
            on_message=on_message,
            on_status=lambda status: status.unread is None or counted.set(),
            options=ImapWatchOptions(poll_interval=3600),
        )
        task = asyncio.create_task(watcher.run())
        try:
            async with asyncio.timeout(10):
                await got_three.wait()
                await counted.wait()  # the sync's last step
            unread = watcher.status.unread
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await watcher.close()
    assert [e.subject for e in events] == ["Courrier 63", "Courrier 64", "Courrier 65"]
    assert (watcher.state.uidvalidity, watcher.state.last_uid) == (UIDVALIDITY, 65)
    assert unread == 3
    assert not any(c.startswith("UID SEARCH") for c in server.commands)


async def test_login_test_warns_of_the_broken_search() -> None:
    async with ScriptedImapServer(dict(MAILUTILS), GREETING) as server:
        warnings = await test_login(_settings(server.port), Protocol.IMAP)
    assert warnings == [SEARCH_INCONSISTENT]


async def test_login_test_has_no_warning_where_search_works(
    dovecot: object, mail_user: object
) -> None:
    from tests.mailserver import DovecotServer, MailUser
    from tests.mailserver.dovecot import make_message

    assert isinstance(dovecot, DovecotServer)
    assert isinstance(mail_user, MailUser)
    dovecot.deliver(mail_user, [make_message(), make_message()])
    settings = ServerSettings(
        dovecot.host,
        dovecot.imap_port,
        Security.NONE,
        mail_user.username,
        mail_user.password,
    )
    assert await test_login(settings, Protocol.IMAP) == []


async def test_a_server_refusing_uid_fetch_ranges_is_asked_by_search() -> None:
    from custom_components.mail_relay.mail.imap import ImapClient

    script = dict(MAILUTILS)
    script["UID FETCH 63:* (UID)"] = "{tag} BAD Invalid sequence"
    script["UID SEARCH UID 63:*"] = "* SEARCH 63 64 65"
    async with ScriptedImapServer(script, GREETING) as server:
        client = ImapClient(_settings(server.port), ssl_context=None)
        await client.connect()
        try:
            await client.select("INBOX")
            assert await client.new_uids(62) == [63, 64, 65]
        finally:
            await client.logout()


async def test_a_filter_is_not_narrowed_by_a_broken_search() -> None:
    """The filter's SEARCH would find nothing here: the probe says so, mail is judged here."""
    async with ScriptedImapServer(dict(MAILUTILS), GREETING) as server:
        events: list[MailEvent] = []
        done = asyncio.Event()

        async def on_message(event: MailEvent) -> None:
            events.append(event)

        watcher = ImapWatcher(
            _settings(server.port),
            account="user",
            state=FolderState(UIDVALIDITY, 62),
            on_message=on_message,
            on_status=lambda status: status.unread is None or done.set(),
            options=ImapWatchOptions(poll_interval=3600),
            filter=FilterOptions(subject_contains="courrier 6"),
        )
        task = asyncio.create_task(watcher.run())
        try:
            async with asyncio.timeout(10):
                await done.wait()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await watcher.close()
    assert [e.subject for e in events] == ["Courrier 63", "Courrier 64", "Courrier 65"]
    assert not any("SUBJECT" in c for c in server.commands)
