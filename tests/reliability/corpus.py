"""Hostile mail, as raw bytes: each one broke or slowed an earlier version.

Shared by the tests (every one must give a bounded event and stop nothing)
and by ``scripts/bench`` (the worst of them, for the loop-latency figure).
"""

from __future__ import annotations

from collections.abc import Callable

from custom_components.mail_relay.mail.message import MailEvent, event_from_message

HEAD = b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\n"


def eight_bit_headers() -> bytes:
    """Raw 8-bit bytes where the parser expects ASCII: a Header object comes back."""
    return (
        HEAD + b"Subject: 8-bit headers\r\n"
        b"Date: Mon, 1 Dec 2026 10:00:00 +0100 \xff\xfe\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\xe9\r\n\r\nCorps \xc3\xa9t\xc3\xa9\r\n"
        b"--b\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename=\xe9t\xe9.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n"
    )


def deeply_nested(levels: int = 1000) -> bytes:
    """Multiparts inside multiparts: recursion a thousand levels deep."""
    body = b"Content-Type: text/plain\r\n\r\nat the bottom\r\n"
    for level in range(levels):
        body = (
            b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n'
            % (level, level)
            + body
            + b"\r\n--n%d--\r\n" % level
        )
    return HEAD + b"Subject: deeply nested\r\nMIME-Version: 1.0\r\n" + body


def huge_subject(size: int = 1024 * 1024) -> bytes:
    """A 1 MB subject, folded the way a mail program would."""
    line = b"x" * 76
    folded = b"\r\n ".join([line] * (size // 76))
    return HEAD + b"Subject: " + folded + b"\r\n\r\nbody\r\n"


def huge_fields(size: int = 100 * 1024) -> bytes:
    """100 KB display names, Message-ID and Reply-To."""
    name = b"N" * size
    return (
        b"From: " + name + b" <alice@example.org>\r\n"
        b"To: " + name + b" <bob@example.org>\r\n"
        b"Reply-To: " + name + b" <r@example.org>\r\n"
        b"Message-ID: <" + b"m" * size + b"@example.org>\r\n"
        b"Subject: huge fields\r\n\r\nbody\r\n"
    )


def many_authentication_results(count: int = 5000) -> bytes:
    """5,000 Authentication-Results clauses in the topmost header."""
    clauses = b"; ".join(b"dkim=pass header.d=d%d.example" % n for n in range(count))
    return (
        HEAD + b"Subject: many results\r\n"
        b"Authentication-Results: mx.example.org; " + clauses + b"\r\n\r\nbody\r\n"
    )


def many_encoded_words(count: int = 100_000) -> bytes:
    """A subject of 100,000 RFC 2047 words (quadratic to decode)."""
    words = b" ".join([b"=?utf-8?q?=C3=A9?="] * count)
    return HEAD + b"Subject: " + words + b"\r\n\r\nbody\r\n"


def many_parts(count: int = 20_000) -> bytes:
    """20,000 attachments of one byte each."""
    parts = b"".join(
        b'--p\r\nContent-Type: application/octet-stream; name="f%d"\r\n\r\nx\r\n' % n
        for n in range(count)
    )
    return (
        HEAD + b"Subject: many parts\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n' + parts + b"--p--\r\n"
    )


CORPUS: dict[str, Callable[[], bytes]] = {
    "eight_bit_headers": eight_bit_headers,
    "deeply_nested": deeply_nested,
    "huge_subject": huge_subject,
    "huge_fields": huge_fields,
    "many_authentication_results": many_authentication_results,
    "many_encoded_words": many_encoded_words,
    "many_parts": many_parts,
}


def read_as_pop3(
    raw: bytes, *, text_limit: int = 2048, include_headers: bool = False
) -> MailEvent:
    """The event POP3 builds from these raw bytes (whole or ``TOP``)."""
    return event_from_message(
        raw,
        account="a@example.org",
        protocol="pop3",
        folder="INBOX",
        uid="1",
        uidvalidity=None,
        size=None,
        text_limit=text_limit,
        include_headers=include_headers,
    )
