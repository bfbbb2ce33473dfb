"""Parsing raw mail into the event payload, including broken and hostile input."""

from __future__ import annotations

import json
from email import policy
from email.message import EmailMessage

import pytest

from custom_components.mail_relay.mail.bounds import MAX_EVENT_BYTES
from custom_components.mail_relay.mail.html import html_to_text
from custom_components.mail_relay.mail.message import (
    authentication_results,
    body_text,
    event_from_message,
)

COMMON = {
    "account": "me@example.org",
    "protocol": "pop3",
    "folder": "INBOX",
    "uid": "u1",
    "uidvalidity": None,
}


def event(raw: bytes, text_limit: int = 2048, **kw):
    return event_from_message(raw, size=None, text_limit=text_limit, **(COMMON | kw))


def test_plain_message_fields() -> None:
    raw = (
        b"From: =?utf-8?q?Fran=C3=A7oise_Dupr=C3=A9?= <Francoise@Example.FR>\r\n"
        b"To: A <a@x.org>, b@Y.org\r\nCc: c@z.org\r\nReply-To: r@x.org\r\n"
        b"Subject: =?iso-8859-1?q?R=E9union_demain?=\r\n"
        b"Date: Mon, 23 Nov 2026 10:00:00 +0100\r\nMessage-ID: <abc@x>\r\n\r\nBonjour\r\n"
    )
    ev = event(raw).as_dict()
    assert ev["sender"] == "francoise@example.fr"
    assert ev["sender_name"] == "Françoise Dupré"
    assert ev["to"] == ["a@x.org", "b@y.org"]
    assert ev["cc"] == ["c@z.org"]
    assert ev["reply_to"] == "r@x.org"
    assert ev["subject"] == "Réunion demain"
    assert ev["date"] == "2026-11-23T10:00:00+01:00"
    assert ev["message_id"] == "<abc@x>"
    assert ev["text"] == "Bonjour"
    assert ev["size"] == len(raw)
    assert ev["auto_submitted"] is None  # a person wrote it
    assert "headers" not in ev


def test_auto_submitted_tells_robots_from_people() -> None:
    def keyword(value: str) -> str | None:
        raw = f"From: a@x.org\r\nAuto-Submitted: {value}\r\n\r\nHi\r\n".encode()
        return event(raw).auto_submitted

    assert keyword("auto-generated") == "auto-generated"
    assert keyword('Auto-Replied; owner-email="a@x.org"') == "auto-replied"
    assert keyword("no") is None


def test_html_only_mail_becomes_text() -> None:
    msg = EmailMessage()
    msg["Subject"] = "html"
    msg.set_content(
        "<html><head><style>p{}</style></head><body><p>Hello&nbsp;<b>world</b></p><p>Line 2 &amp; more</p>"
        "<script>alert(1)</script></body></html>",
        subtype="html",
    )
    ev = event(msg.as_bytes())
    assert ev.text == "Hello world\n\nLine 2 & more"


def test_multipart_attachments_listed_and_text_preferred() -> None:
    msg = EmailMessage()
    msg["Subject"] = "report"
    msg.set_content("plain body")
    msg.add_alternative("<p>html body</p>", subtype="html")
    msg.add_attachment(
        b"x" * 3000, maintype="application", subtype="pdf", filename="facture.pdf"
    )
    ev = event(msg.as_bytes())
    assert ev.text == "plain body"
    assert [(a.filename, a.content_type, a.size) for a in ev.attachments] == [
        ("facture.pdf", "application/pdf", 3000)
    ]


def test_unknown_charset_and_broken_mime_still_give_an_event() -> None:
    raw = (
        b"From: x@y.org\r\nSubject: =?x-unknown?q?caf=E9?=\r\n"
        b'Content-Type: multipart/mixed; boundary="nope"\r\n\r\n'
        b"--wrong\r\nContent-Type: text/plain; charset=x-bogus\r\n\r\ncaf\xe9 cr\xc3\xa8me\r\n"
    )
    ev = event(raw)
    assert ev.subject.startswith("caf")
    assert ev.sender == "x@y.org"


def test_truncated_base64_body_decodes_what_arrived() -> None:
    msg = EmailMessage()
    msg.set_content("é" * 400, cte="base64")
    raw = msg.as_bytes()
    ev = event(raw[: len(raw) // 2])
    assert ev.text
    assert set(ev.text) == {"é"}


def test_text_limit() -> None:
    msg = EmailMessage()
    msg.set_content("a" * 5000)
    assert len(event(msg.as_bytes(), text_limit=100).text) == 100


def test_event_stays_under_home_assistant_limit() -> None:
    msg = EmailMessage()
    msg["Subject"] = "big"
    msg.set_content("ü" * 100_000)
    ev = event(msg.as_bytes(), text_limit=200_000, include_headers=True)
    size = len(json.dumps(ev.as_dict(), ensure_ascii=False).encode())
    assert size < MAX_EVENT_BYTES
    assert len(ev.text) > 10_000  # truncated, not dropped


def test_headers_on_request() -> None:
    ev = event(b"X-Custom: 1\r\nSubject: s\r\n\r\nbody", include_headers=True)
    assert ev.headers == {"x-custom": ["1"], "subject": ["s"]}


def test_authentication_results_dmarc_pass_verifies() -> None:
    results, verified = authentication_results(
        "mx.example.net; spf=pass smtp.mailfrom=bank.fr; dkim=pass header.d=bank.fr; dmarc=pass header.from=bank.fr",
        "bank.fr",
    )
    assert verified
    assert results["spf"] == "pass"
    assert results["dmarc"] == "pass"
    assert results["dkim_domains"] == ["bank.fr"]


def test_authentication_results_unaligned_dkim_is_not_verified() -> None:
    results, verified = authentication_results(
        "mx.example.net; spf=pass smtp.mailfrom=evil.com; dkim=pass header.d=evil.com; dmarc=fail header.from=bank.fr",
        "bank.fr",
    )
    assert not verified
    assert results["dmarc"] == "fail"


def test_aligned_dkim_subdomain_verifies() -> None:
    _, verified = authentication_results(
        "mx; dkim=pass header.d=mail.bank.fr", "bank.fr"
    )
    assert verified


def test_spoofed_lower_header_is_ignored() -> None:
    # The sender wrote a fake header; the receiving server's one is on top.
    raw = (
        b"Authentication-Results: mx.real; spf=fail smtp.mailfrom=bank.fr; dmarc=fail header.from=bank.fr\r\n"
        b"Authentication-Results: fake; dmarc=pass header.from=bank.fr\r\n"
        b"From: bank@bank.fr\r\nSubject: pay\r\n\r\nx"
    )
    ev = event(raw)
    assert ev.sender_verified is False
    assert ev.authentication["dmarc"] == "fail"


def test_no_authentication_header() -> None:
    ev = event(b"From: a@b.c\r\n\r\nx")
    assert ev.sender_verified is False
    assert ev.authentication == {}


def test_body_text_quoted_printable_latin1() -> None:
    assert (
        body_text(
            b"caf=E9 =\r\nnoir",
            encoding="quoted-printable",
            charset="iso-8859-1",
            subtype="plain",
        )
        == "café noir"
    )


def test_html_to_text_entities() -> None:
    assert html_to_text("<div>a&lt;b</div><br>c") == "a<b\n\nc"


# -- non-ASCII text that must survive (issue 19, points 1 and 2) -------------

FOLDED_MIXED = (
    # An encoded word, a fold, then plain text, as Python's own email (policy
    # SMTP) and many mail programs write a long subject.
    b"From: =?utf-8?q?Ga=C3=ABlle_L=C3=A9vy?= <gaelle@example.fr>\r\n"
    b"Subject: =?utf-8?q?T=C3=BCr_offen_=E2=80=93?=\r\n"
    b" Temperatur 23 =?utf-8?b?wrBDIOKckyDmuKnluqY=?=\r\n"
    b"Message-ID: <m1@example.fr>\r\n"
    b"\r\n"
    b"x\r\n"
)


def test_fold_between_encoded_word_and_text_keeps_its_space() -> None:
    data = event(FOLDED_MIXED)
    assert data.subject == "Tür offen – Temperatur 23 °C ✓ 温度"
    assert data.sender_name == "Gaëlle Lévy"


@pytest.mark.parametrize(
    "subject",
    [
        # Python's email folds these right after an encoded word.
        "Alarme : porte du garage ouverte – détectée à 23 h 10 par le capteur numéro 4",
        "Tür offen – Temperatur im Keller über dreiundzwanzig Grad gemessen",
    ],
)
def test_subject_written_by_python_email_round_trips(subject: str) -> None:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "alarme@example.fr"
    msg["Subject"] = subject
    msg.set_content("ok")
    assert event(msg.as_bytes()).subject == subject


def test_encoded_words_side_by_side_join_without_space() -> None:
    raw = b"Subject: =?utf-8?q?Gr=C3=BC?=\r\n =?utf-8?q?=C3=9Fe?= aus\r\n\r\nx\r\n"
    assert event(raw).subject == "Grüße aus"


def test_8bit_body_keeps_every_character() -> None:
    text = "Grüße aus dem Keller – 23 °C, l’alarme, 5 €, œuvre ✓ 🚪"
    raw = (
        b"From: a@example.fr\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text.encode() + b"\r\n"
    )
    assert event(raw).text == text


def test_8bit_latin1_body_uses_its_charset() -> None:
    raw = (
        b"From: a@example.fr\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-15\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + "5 € l'œuvre".encode("iso-8859-15")
    )
    assert event(raw).text == "5 € l'œuvre"
