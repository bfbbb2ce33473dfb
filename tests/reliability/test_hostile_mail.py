"""Hostile mail: every one gives a bounded event, and the mail after it arrives.

Each mail of the corpus once stopped an account, held the event loop or gave
an event Home Assistant refuses. Read from raw bytes (the POP3 path) and
through a real Dovecot over IMAP and POP3, each followed by a normal mail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from custom_components.mail_relay.mail.attachments import message_candidates, save_all
from custom_components.mail_relay.mail.bounds import (
    MAX_ADDRESS,
    MAX_ATTACHMENTS,
    MAX_EVENT_BYTES,
    MAX_MESSAGE_ID,
    MAX_NAME,
    MAX_SUBJECT,
)
from custom_components.mail_relay.mail.message import MailEvent
from custom_components.mail_relay.mail.options import AttachmentSaveOptions
from custom_components.mail_relay.mail.pop3 import Pop3State
from tests.mail.test_imap import Sink, deliver, make_watcher, running, settings_for
from tests.mail.test_pop3 import Recorder, make_poller
from tests.mailserver import DovecotServer, MailUser
from tests.mailserver.dovecot import make_message
from tests.reliability.corpus import CORPUS, read_as_pop3


def event_size(event: MailEvent) -> int:
    """The bytes of the bus event as Home Assistant serialises it."""
    data = {"entry_id": "0" * 26, **event.as_dict()}
    return len(json.dumps(data, ensure_ascii=False).encode())


def assert_bounded(event: MailEvent) -> None:
    assert event_size(event) < MAX_EVENT_BYTES
    assert len(event.subject) <= MAX_SUBJECT
    assert len(event.sender or "") <= MAX_ADDRESS
    assert len(event.sender_name or "") <= MAX_NAME
    assert len(event.message_id or "") <= MAX_MESSAGE_ID
    assert len(event.attachments) <= MAX_ATTACHMENTS


@pytest.mark.parametrize("name", sorted(CORPUS))
@pytest.mark.parametrize("include_headers", [False, True])
def test_each_hostile_mail_gives_a_bounded_event(
    name: str, include_headers: bool
) -> None:
    event = read_as_pop3(
        CORPUS[name](), text_limit=32768, include_headers=include_headers
    )
    assert_bounded(event)
    assert event.sender == "alice@example.org" or name == "huge_fields"


def test_what_the_hostile_mails_still_tell() -> None:
    def read(name: str) -> MailEvent:
        return read_as_pop3(CORPUS[name]())

    eight_bit = read("eight_bit_headers")
    assert eight_bit.subject == "8-bit headers"
    assert eight_bit.text == "Corps été"
    assert [a.content_type for a in eight_bit.attachments] == ["application/pdf"]
    nested = read("deeply_nested")
    assert (nested.subject, nested.sender) == ("deeply nested", "alice@example.org")
    words = read("many_encoded_words").subject
    assert len(words) > 200
    assert set(words) == {"é"}  # only whole words decoded, none cut in half
    results = read("many_authentication_results").authentication
    assert results["server"] == "mx.example.org"
    assert len(results["dkim_domains"]) <= 10
    assert len(read("many_parts").attachments) == MAX_ATTACHMENTS


async def test_hostile_mail_stops_neither_imap_nor_pop3(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path, tls_context: Any
) -> None:
    names = sorted(CORPUS)
    sink = Sink()
    watcher = make_watcher(settings_for(dovecot, mail_user), sink, tls_context)
    async with running(watcher):
        await deliver(
            dovecot,
            mail_user,
            *[CORPUS[name]() for name in names],
            make_message("after the hostile ones", to=mail_user.address),
        )
        await sink.wait(lambda: len(sink.events) == len(names) + 1)
    pop3 = Recorder()
    await make_poller(dovecot, mail_user, Pop3State()).poll_once(pop3)
    for events in (sink.events, pop3.events):
        assert len(events) == len(names) + 1
        assert events[-1].subject == "after the hostile ones"
        for event in events:
            assert_bounded(event)
        by_subject = {e.subject for e in events}
        assert {"8-bit headers", "deeply nested", "many parts"} <= by_subject


@pytest.mark.parametrize("name", sorted(CORPUS))
async def test_each_hostile_mail_saves_safely(name: str, tmp_path: Path) -> None:
    """Saving attachments of hostile mail: bounded, inside the folder, or refused.

    A mail nested deeper than Python's parser can go is refused as unreadable
    (ValueError, which the action translates); no other error escapes.
    """
    if name == "deeply_nested":
        with pytest.raises(ValueError, match="unreadable"):
            await message_candidates(CORPUS[name]())
        return
    candidates = await message_candidates(CORPUS[name]())
    assert len(candidates) <= MAX_ATTACHMENTS
    outcomes = await save_all(candidates, AttachmentSaveOptions(), tmp_path)
    for outcome in outcomes:
        if outcome.attachment.saved_path is not None:
            assert Path(outcome.attachment.saved_path).parent == tmp_path
    assert all(p.parent == tmp_path for p in tmp_path.rglob("*"))
