"""Message building: what a recipient's mail client will see, and what is refused."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from custom_components.mail_relay.mail.compose import (
    OutgoingAttachment,
    OutgoingMail,
    compose,
)
from custom_components.mail_relay.mail.errors import MessageError
from custom_components.mail_relay.mail.html import html_to_text


def _parse(data: bytes) -> EmailMessage:
    msg = message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_wire_format_is_ascii_with_encoded_headers() -> None:
    composed = compose(
        OutgoingMail(
            sender="alerte@maison.fr",
            sender_name="Maison Dupré",
            to=["Élodie Château <elodie@example.fr>"],
            subject="Température élevée ☀ dans le séjour",
            text="Il fait 31 °C.",
        )
    )
    data = composed.as_bytes()
    data.decode("ascii")  # 7-bit clean: RFC 2047 words, encoded body
    assert b"\r\n" in data
    assert b"=?utf-8?" in data
    msg = _parse(data)
    assert msg["Subject"] == "Température élevée ☀ dans le séjour"
    assert msg["From"].addresses[0].display_name == "Maison Dupré"
    assert msg["To"].addresses[0].display_name == "Élodie Château"
    assert msg.get_content().strip() == "Il fait 31 °C."
    assert msg["Message-ID"].endswith("@maison.fr>")
    assert msg["Date"]


def test_bcc_only_in_envelope_and_recipients_deduplicated() -> None:
    composed = compose(
        OutgoingMail(
            sender="a@example.fr",
            to=["b@example.fr", "B@example.fr"],
            cc=["c@example.fr"],
            bcc=["hidden@example.fr"],
            reply_to=["Support <support@example.fr>"],
        )
    )
    assert composed.recipients == ("b@example.fr", "c@example.fr", "hidden@example.fr")
    msg = _parse(composed.as_bytes())
    assert "Bcc" not in msg
    assert b"hidden" not in composed.as_bytes()
    assert msg["Reply-To"] == "Support <support@example.fr>"


def test_html_only_gets_a_text_alternative() -> None:
    composed = compose(
        OutgoingMail(
            sender="a@example.fr",
            to=["b@example.fr"],
            html="<h1>Alerte</h1><p>Porte <b>ouverte</b></p><style>p{}</style>",
        )
    )
    msg = _parse(composed.as_bytes())
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    assert plain is not None
    assert plain.get_content().split() == ["Alerte", "Porte", "ouverte"]
    assert "ouverte" in html_to_text("<p>Porte&nbsp;<b>ouverte</b></p>")


def test_attachment_mime_types_from_names() -> None:
    composed = compose(
        OutgoingMail(
            sender="a@example.fr",
            to=["b@example.fr"],
            text="see attached",
            attachments=[
                OutgoingAttachment("rapport é.pdf", b"%PDF-1.4"),
                OutgoingAttachment("data.bin.unknownext", b"\x00\x01"),
                OutgoingAttachment("/etc/notes.csv", b"a,b\n", "text/csv"),
            ],
        )
    )
    parts = list(_parse(composed.as_bytes()).iter_attachments())
    assert [(p.get_filename(), p.get_content_type()) for p in parts] == [
        ("rapport é.pdf", "application/pdf"),
        ("data.bin.unknownext", "application/octet-stream"),
        ("notes.csv", "text/csv"),
    ]
    assert parts[0].get_content() == b"%PDF-1.4"


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("subject", "Hello\r\nBcc: victim@example.org", "subject"),
        ("subject", "Hello\nX-Spam: yes", "subject"),
        ("subject", "nul\x00byte", "subject"),
        ("subject", "separator\u2028line", "subject"),
        ("sender_name", "Eve\r\nBcc: victim@example.org", "sender name"),
        ("to", ["ok@example.org\r\nBcc: victim@example.org"], "to"),
        ("cc", ["Eve\n <eve@example.org>"], "cc"),
        ("reply_to", ["x@example.org\rBcc: y@example.org"], "reply_to"),
    ],
)
def test_header_injection_refused(field: str, value: object, needle: str) -> None:
    fields: dict[str, object] = {"sender": "a@example.fr", "to": ["b@example.fr"]}
    fields[field] = value
    with pytest.raises(MessageError, match=needle):
        compose(OutgoingMail(**fields))  # type: ignore[arg-type]


def test_injection_in_file_names_refused() -> None:
    with pytest.raises(MessageError, match="attachment file name"):
        compose(
            OutgoingMail(
                sender="a@example.fr",
                to=["b@example.fr"],
                attachments=[OutgoingAttachment("a.txt\r\nX-Evil: 1", b"x")],
            )
        )


@pytest.mark.parametrize(
    "address",
    [
        "not-an-address",
        "a@b",
        "a@@example.org",
        "a b@example.org",
        "a@example.org, b@example.org",
        "<a@example.org> trailing",
        '"quoted"@example.org',
        "a@.example.org",
        "",
    ],
)
def test_invalid_addresses_refused(address: str) -> None:
    with pytest.raises(MessageError, match="not a valid email address"):
        compose(OutgoingMail(sender="a@example.fr", to=[address]))


def test_no_recipient_refused() -> None:
    with pytest.raises(MessageError, match="no recipient"):
        compose(OutgoingMail(sender="a@example.fr", subject="x"))


def test_repeated_messages_keep_their_own_names_and_errors() -> None:
    """Parsed addresses are reused between messages; nothing leaks from one to the next."""
    first, second = (
        _parse(
            compose(
                OutgoingMail(
                    sender="alerte@maison.fr",
                    sender_name=name,
                    to=["Élodie <elodie@example.fr>", "bob@example.fr"],
                    subject=subject,
                    text="x",
                )
            ).as_bytes()
        )
        for name, subject in (("Maison", "un"), ("Garage", "deux"))
    )
    assert first["From"].addresses[0].display_name == "Maison"
    assert second["From"].addresses[0].display_name == "Garage"
    assert first["Subject"] == "un"
    assert second["Subject"] == "deux"
    assert [a.addr_spec for a in second["To"].addresses] == [
        "elodie@example.fr",
        "bob@example.fr",
    ]
    assert first["Message-ID"] != second["Message-ID"]
    for _ in range(2):  # an invalid address is refused every time, not once
        with pytest.raises(MessageError, match="not a valid email address"):
            compose(OutgoingMail(sender="alerte@maison.fr", to=["nope"], text="x"))


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("lea@société.fr", "lea@xn--socit-esab.fr"),
        ("Zoë <zoe@bücher.example>", "zoe@xn--bcher-kva.example"),
    ],
)
def test_internationalised_domains_use_their_ascii_form(given: str, sent: str) -> None:
    composed = compose(OutgoingMail(sender="a@maison.fr", to=[given], text="x"))
    assert composed.recipients == (sent,)
    data = composed.as_bytes()
    data.decode("ascii")
    assert _parse(data)["To"].addresses[0].addr_spec == sent
