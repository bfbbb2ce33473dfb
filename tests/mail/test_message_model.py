"""One message model: IMAP and POP3 describe the same mail the same way.

The same message is delivered to a real Dovecot and read both ways: IMAP
builds its event from BODYSTRUCTURE and partial fetches, POP3 from the parsed
TOP answer. A forwarded mail (message/rfc822) is one attachment for both, its
own parts are not the outer mail's, and an HTML-only body gives the same text.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

from custom_components.mail_relay.mail.message import MailEvent
from custom_components.mail_relay.mail.pop3 import Pop3State
from tests.mail.test_imap import Sink, deliver, make_watcher, running, settings_for
from tests.mail.test_pop3 import Recorder, make_poller
from tests.mailserver import DovecotServer, MailUser


def _forwarding_mail(to: str) -> bytes:
    inner = EmailMessage()
    inner["From"] = "someone@example.org"
    inner["To"] = to
    inner["Subject"] = "inner subject"
    inner.set_content("the inner text must not become the outer text")
    inner.add_attachment(
        b"%PDF-1.4 inner", maintype="application", subtype="pdf", filename="inner.pdf"
    )
    outer = EmailMessage(policy=SMTP)
    outer["From"] = "forwarder@example.org"
    outer["To"] = to
    outer["Subject"] = "Fwd: something"
    outer.set_content("<p>See the <b>attached</b> mail</p>", subtype="html")
    outer.add_attachment(inner)  # message/rfc822, no file name
    outer.add_attachment(
        b"x" * 3000, maintype="application", subtype="pdf", filename="rapport.pdf"
    )
    return outer.as_bytes()


def _shape(event: MailEvent) -> tuple[str, list[tuple[str, str]]]:
    return event.text, [(a.filename, a.content_type) for a in event.attachments]


async def test_imap_and_pop3_agree_on_attachments_and_text(
    dovecot: DovecotServer, mail_user: MailUser, trust_test_cert: Path, tls_context: Any
) -> None:
    sink = Sink()
    watcher = make_watcher(settings_for(dovecot, mail_user), sink, tls_context)
    async with running(watcher):
        await deliver(dovecot, mail_user, _forwarding_mail(mail_user.address))
        await sink.wait(lambda: len(sink.events) == 1)
    pop3 = Recorder()
    await make_poller(dovecot, mail_user, Pop3State()).poll_once(pop3)
    (imap_event,) = sink.events
    (pop3_event,) = pop3.events
    expected = (
        "See the attached mail",
        [("unnamed", "message/rfc822"), ("rapport.pdf", "application/pdf")],
    )
    assert _shape(imap_event) == expected
    assert _shape(pop3_event) == expected
    # Decoded sizes: exact for the 3000-byte PDF either way (IMAP from
    # BINARY.SIZE or its estimate, POP3 from the bytes).
    assert imap_event.attachments[1].size == pop3_event.attachments[1].size == 3000
