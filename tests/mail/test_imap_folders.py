"""Several folders of one account on one connection, and the account filter.

Against a real Dovecot (which offers NOTIFY) and the same Dovecot behind a
proxy that hides NOTIFY from its capabilities (the STATUS fallback).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import asdict
from typing import Any

import pytest

from custom_components.mail_relay.mail.filtering import accepts, sender_matches
from custom_components.mail_relay.mail.imap import FolderState, ImapClient
from custom_components.mail_relay.mail.imap.parse import parse_status
from custom_components.mail_relay.mail.imap.syntax import search_criteria
from custom_components.mail_relay.mail.message import MailEvent
from custom_components.mail_relay.mail.models import Security, ServerSettings
from custom_components.mail_relay.mail.options import FilterOptions
from custom_components.mail_relay.mail.probe import list_folder_uses
from tests.mail.test_imap import Sink, deliver, make_watcher, running, settings_for
from tests.mail.wire import Wire
from tests.mailserver import DovecotServer
from tests.mailserver.dovecot import make_message
from tests.mailserver.imap_scripted import ScriptedImapServer, Writer
from tests.mailserver.proxy import FaultyProxy

FOLDERS = ("INBOX", "Alarmes", "Factures & reçus")


async def make_folders(settings: ServerSettings, context: Any) -> None:
    client = ImapClient(settings, ssl_context=context)
    await client.connect()
    for folder in FOLDERS[1:]:
        await client.create_folder(folder)
    await client.logout()


async def append(
    settings: ServerSettings, context: Any, folder: str, *messages: bytes
) -> float:
    """Deliver into a folder by APPEND; return when the server confirmed it."""
    client = ImapClient(settings, ssl_context=context)
    await client.connect()
    for message in messages:
        await client.append(folder, message)
    done = time.monotonic()
    await client.logout()
    return done


def by_folder(events: list[MailEvent]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for event in events:
        found.setdefault(event.folder, []).append(event.subject)
    return found


def last_states(sink: Sink) -> dict[str, FolderState]:
    return {state.folder: state for state in sink.states}


def hide_notify(data: bytes) -> bytes:
    return re.sub(rb" NOTIFY\b", b"", data)


# -- the rule and the syntax -------------------------------------------------------


def test_status_answers_are_read_per_folder() -> None:
    lines = [
        b"INBOX (UIDNEXT 3)",  # ours, as aioimaplib hands it over
        b"STATUS Alarmes (MESSAGES 1 UIDNEXT 9 UIDVALIDITY 17)",  # NOTIFY's
        b'"Factures &AOk-" (UIDNEXT 4 UNSEEN 2)',
        b"Status completed (0.001 + 0.000 secs).",
    ]
    assert parse_status(lines) == {
        "INBOX": {"UIDNEXT": 3},
        "Alarmes": {"MESSAGES": 1, "UIDNEXT": 9, "UIDVALIDITY": 17},
        "Factures &AOk-": {"UIDNEXT": 4, "UNSEEN": 2},
    }


def test_filter_values_are_quoted_or_left_to_the_client() -> None:
    assert search_criteria((), "", False) is None
    assert search_criteria(("@example.org",), "", True) == 'UNSEEN FROM "example.org"'
    assert (
        search_criteria(("a@x.org", "b.org", "c.org"), 'porte "ouverte" \\', False)
        == 'OR FROM "a@x.org" OR FROM "b.org" FROM "c.org"'
        ' SUBJECT "porte \\"ouverte\\" \\\\"'
    )
    # A line break would end the command and start another: never sent; nor
    # non-ASCII text, which a quoted string cannot carry.
    assert search_criteria(("x.org",), "a\r\nA1 DELETE INBOX", False) == 'FROM "x.org"'
    assert search_criteria(("chloé.fr", "x.org"), "reçu", False) is None


def test_filter_rule() -> None:
    assert sender_matches("alarm@example.org", "Alarm@Example.org")
    assert sender_matches("example.org", "a@mail.example.org")
    assert sender_matches("@example.org", "a@example.org")
    assert not sender_matches("example.org", "a@badexample.org")
    assert not sender_matches("alarm@example.org", "other@example.org")
    event = MailEvent(
        account="a",
        protocol="imap",
        folder="INBOX",
        uid="1",
        uidvalidity=1,
        message_id=None,
        date=None,
        sender="alarm@example.org",
        sender_name=None,
        to=[],
        cc=[],
        reply_to=None,
        subject="Porte OUVERTE",
        text="",
        size=1,
    )
    assert accepts(FilterOptions(), event, seen=True)
    assert accepts(FilterOptions(subject_contains="ouverte"), event, seen=False)
    assert not accepts(FilterOptions(subject_contains="fermée"), event, seen=False)
    assert not accepts(FilterOptions(unseen_only=True), event, seen=True)
    assert not accepts(FilterOptions(senders=("other.org",)), event, seen=False)


async def special_use_list(tag: str, _line: str, out: Writer) -> None:
    await out.write(
        b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
        b'* LIST (\\HasNoChildren \\Sent) "/" "Envoy&AOk-s"\r\n'
        b'* LIST (\\HasNoChildren \\Junk) "/" "Spam"\r\n'
        b'* LIST (\\Noselect \\HasChildren) "/" "Archives"\r\n'
        b'* LIST (\\HasNoChildren) "/" "Alarmes"\r\n' + f"{tag} OK done\r\n".encode()
    )


async def test_folders_are_listed_with_their_special_use() -> None:
    """What the options form offers: INBOX first, special folders named, no \\Noselect."""
    async with ScriptedImapServer(answers={"LIST": special_use_list}) as server:
        found = await list_folder_uses(
            ServerSettings("127.0.0.1", server.port, Security.NONE, "u", "p")
        )
    assert found == [
        ("INBOX", None),
        ("Alarmes", None),
        ("Envoyés", "sent"),
        ("Spam", "junk"),
    ]


# -- transports ----------------------------------------------------------------------


@pytest.mark.parametrize("notify", [True, False], ids=["notify", "status-fallback"])
async def test_three_folders_on_one_connection(
    dovecot: DovecotServer, tls_context: Any, notify: bool
) -> None:
    """One event per message with its folder, on one login, by either transport.

    IDLE is renewed every 3 s. With NOTIFY, ``Alarmes`` is pushed: its mail
    comes well before a renewal. ``Factures & reçus`` is looked at on each
    renewal either way (Dovecot's NOTIFY never reports names in modified
    UTF-7), as every folder is when the proxy hides NOTIFY.
    """
    user = dovecot.add_user()
    async with FaultyProxy(dovecot.host, dovecot.imap_port) as proxy:
        if not notify:
            proxy.rewrite = hide_notify
        settings = settings_for(dovecot, user, "none", port=proxy.port)
        await make_folders(settings, None)
        sink = Sink()
        watcher = make_watcher(
            settings, sink, tls_context, folders=FOLDERS, idle_renew=3.0
        )
        logins_before = len(await asyncio.to_thread(dovecot.logins, user))
        async with running(watcher):
            assert watcher.status.notify is notify
            assert watcher.status.idle
            latencies: dict[str, float] = {}
            for folder in FOLDERS:
                sent = await append(
                    settings, None, folder, make_message(f"pour {folder}")
                )
                await sink.wait(lambda: len(sink.events) == len(latencies) + 1, 10)
                latencies[folder] = time.monotonic() - sent
            await deliver(dovecot, user, make_message("par LMTP"))
            await sink.wait(lambda: len(sink.events) == 4)
            await asyncio.sleep(0.5)  # nothing more comes
        assert by_folder(sink.events) == {
            "INBOX": ["pour INBOX", "par LMTP"],
            "Alarmes": ["pour Alarmes"],
            "Factures & reçus": ["pour Factures & reçus"],
        }
        assert latencies["INBOX"] < 1.5, latencies  # IDLE
        if notify:
            assert latencies["Alarmes"] < 1.5, latencies  # pushed
        assert all(latency < 5.0 for latency in latencies.values()), latencies
        # The watcher's own login only (the deliveries log in too: one each).
        logins = await asyncio.to_thread(dovecot.logins, user)
        assert len(logins) - logins_before == 1 + len(FOLDERS)
        marks = {f: s.last_uid for f, s in watcher.states.items()}
        assert marks == {"INBOX": 2, "Alarmes": 1, "Factures & reçus": 1}
        assert watcher.status.unread == 1  # APPEND stores mail read


async def test_restart_and_crash_neither_repeat_nor_lose_in_any_folder(
    dovecot: DovecotServer, tls_context: Any
) -> None:
    """Each folder resumes from its own mark: after a stop, and after a crash mid-burst."""
    user = dovecot.add_user()
    settings = settings_for(dovecot, user)
    await make_folders(settings, tls_context)
    first = Sink()
    watcher = make_watcher(settings, first, tls_context, folders=FOLDERS)
    async with running(watcher):
        await append(settings, tls_context, "Alarmes", make_message("a1"))
        await first.wait(lambda: len(first.events) == 1)
    # Away: mail lands in every folder.
    for folder in FOLDERS:
        await append(
            settings,
            tls_context,
            folder,
            *[make_message(f"{folder} {n}") for n in range(3)],
        )
    second = Sink()
    saved = {
        f: FolderState.from_saved(asdict(s)) for f, s in last_states(first).items()
    }
    watcher = make_watcher(
        settings, second, tls_context, folders=FOLDERS, state=saved, idle_renew=1.0
    )
    await watcher.connect_once()
    task = asyncio.create_task(watcher.run())

    def crash_in_second_folder(state: FolderState) -> None:
        second.on_state(state)
        if state.folder == "Factures & reçus" and state.last_uid == 2:
            task.cancel()  # killed: what was saved so far is all there is

    watcher._on_state = crash_in_second_folder
    with pytest.raises(asyncio.CancelledError):
        await task
    await watcher.close()
    assert 0 < len(second.events) < 9  # stopped in the middle
    third = Sink()
    watcher = make_watcher(
        settings,
        third,
        tls_context,
        folders=FOLDERS,
        state=last_states(first) | last_states(second),  # as a host keeps them
        idle_renew=1.0,
    )
    async with running(watcher):
        await third.wait(lambda: len(second.events) + len(third.events) == 9)
        await append(settings, tls_context, "Factures & reçus", make_message("après"))
        await third.wait(lambda: third.subjects[-1:] == ["après"])
        await asyncio.sleep(0.3)
    subjects = first.subjects + second.subjects + third.subjects
    expected = ["a1", *[f"{f} {n}" for f in FOLDERS for n in range(3)], "après"]
    assert sorted(subjects) == sorted(expected)  # each exactly once


async def test_a_refused_folder_does_not_stop_the_others(
    dovecot: DovecotServer, tls_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user = dovecot.add_user()
    settings = settings_for(dovecot, user)
    await make_folders(settings, tls_context)
    sink = Sink()
    watcher = make_watcher(
        settings, sink, tls_context, folders=("INBOX", "Disparu", "Alarmes")
    )
    async with running(watcher):
        await append(settings, tls_context, "Alarmes", make_message("toujours là"))
        await sink.wait(lambda: len(sink.events) == 1)
    assert sink.events[0].folder == "Alarmes"
    assert "Folder Disparu" in caplog.text


# -- the filter ----------------------------------------------------------------------


async def test_filter_searches_on_the_server_and_never_replays(
    dovecot: DovecotServer, tls_context: Any
) -> None:
    """Mail the filter passes over is not downloaded, fires nothing, and stays passed.

    The subject holds quotes and a backslash: user text, quoted in SEARCH.
    """
    user = dovecot.add_user()
    settings = settings_for(dovecot, user)
    wire = Wire()
    sink = Sink()
    watcher = make_watcher(
        settings,
        sink,
        tls_context,
        filter=FilterOptions(
            senders=("alarm@example.org", "maison.fr"),
            subject_contains='porte "ouverte" \\',
        ),
        trace=wire,
    )
    wanted = 'La porte "ouverte" \\ du garage'
    async with running(watcher):
        await deliver(
            dovecot,
            user,
            make_message(wanted, sender="spam@example.net"),
            make_message("Autre chose", sender="alarm@example.org"),
            make_message(wanted, sender="Alarme <capteur@cave.maison.fr>"),
        )
        await sink.wait(lambda: watcher.state.last_uid == 3)
        await asyncio.sleep(0.3)
    assert [(e.uid, e.sender) for e in sink.events] == [("3", "capteur@cave.maison.fr")]
    sent = wire.sent()
    assert b'SUBJECT "porte \\"ouverte\\" \\\\"' in sent
    # Only the match was downloaded.
    assert re.findall(rb"UID FETCH (\S+) \(UID FLAGS", sent) == [b"3"]

    # Without the filter, nothing of the past comes back; new mail does.
    again = Sink()
    watcher = make_watcher(settings, again, tls_context, state=sink.states[-1])
    async with running(watcher):
        await deliver(dovecot, user, make_message("nouveau", sender="x@y.org"))
        await again.wait(lambda: len(again.events) == 1)
        await asyncio.sleep(0.3)
    assert again.subjects == ["nouveau"]


async def test_unseen_only_passes_over_mail_read_before_it_was_seen(
    dovecot: DovecotServer, tls_context: Any
) -> None:
    user = dovecot.add_user()
    settings = settings_for(dovecot, user)
    await make_folders(settings, tls_context)
    sink = Sink()
    watcher = make_watcher(
        settings,
        sink,
        tls_context,
        folders=FOLDERS,
        filter=FilterOptions(unseen_only=True),
    )
    async with running(watcher):
        # APPEND stores mail \Seen (our client does, as for a Sent copy).
        await append(settings, tls_context, "Alarmes", make_message("déjà lu"))
        await deliver(dovecot, user, make_message("pas lu"))
        await sink.wait(lambda: len(sink.events) == 1)
        await sink.wait(lambda: watcher.states["Alarmes"].last_uid == 1)
        await asyncio.sleep(0.3)
    assert sink.subjects == ["pas lu"]
