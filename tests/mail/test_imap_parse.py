"""Table-driven tests of the tolerant IMAP parsers on captured server answers.

The Dovecot rows are answers Dovecot 2.3.19 gave to the client (captured with
the trace hook against tests/mailserver); the others are shapes from RFC 3501's
examples and from Cyrus, Courier and Exchange (upper-case names, extension
data, NIL fields, literals).
"""

from __future__ import annotations

from collections import namedtuple
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from custom_components.mail_relay.mail.imap import (
    ListEntry,
    Namespace,
    parse_bodystructure,
    parse_data,
    parse_fetch,
    parse_internaldate,
    parse_list,
    parse_namespace,
)
from custom_components.mail_relay.mail.imap.parse import _numbers

Response = namedtuple("Response", "result lines")


def lit(data: bytes) -> bytes:
    """An IMAP literal: ``{n}`` CRLF and the octets."""
    return b"{%d}\r\n" % len(data) + data


def lines(raw: bytes) -> list[Any]:
    """Untagged answer data followed by the tagged status, as aioimaplib keeps it."""
    return [raw, b"Fetch completed."]


DOVECOT_HEADER = (
    b"From: sender@example.org\r\nTo: user@mailrelay.test\r\n"
    b"Subject: Test message\r\nMIME-Version: 1.0\r\n\r\n"
)
DOVECOT_TEXT = (
    b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 31 2 NIL NIL NIL NIL)'
)
DOVECOT_MIXED = (
    b'((("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 12 1 NIL NIL NIL NIL)'
    b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 18 1 NIL NIL NIL NIL)'
    b' "alternative" ("boundary" "===============8111212049130971635==") NIL NIL NIL)'
    b'("application" "octet-stream" NIL NIL NIL "base64" 822 NIL ("attachment"'
    b' ("filename*" "utf-8\'\'r%C3%A9sum%C3%A9%20du%20mois.bin")) NIL NIL)'
    b'("message" "rfc822" NIL NIL NIL "8bit" 125 (NIL "inner" NIL NIL NIL NIL NIL'
    b' NIL NIL NIL) ("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 12 1 NIL'
    b' NIL NIL NIL) 6 NIL ("attachment" NIL) NIL NIL) "mixed" ("boundary"'
    b' "===============8106747142601592728==") NIL NIL NIL)'
)

# -- FETCH: raw answer -> {uid: {item: value}} (selected items) ----------------

FETCH_ROWS = [
    pytest.param(
        b"* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE 529 INTERNALDATE"
        b' "01-Dec-2026 21:39:20 +0000" BODYSTRUCTURE '
        + DOVECOT_TEXT
        + b" BODY[HEADER] "
        + lit(DOVECOT_HEADER)
        + b" BODY[1]<0> "
        + lit(b"Hello from the test server.\r\n")
        + b")",
        {
            1: {
                "FLAGS": [b"\\Recent"],
                "RFC822.SIZE": b"529",
                "INTERNALDATE": b"01-Dec-2026 21:39:20 +0000",
                "BODY[HEADER]": DOVECOT_HEADER,
                "BODY[1]<0>": b"Hello from the test server.\r\n",
            }
        },
        id="dovecot-2.3-metadata-and-partial-text",
    ),
    pytest.param(
        b"* 2 FETCH (UID 2 BODY[1.1]<0> " + lit(b"plain body\r\n") + b")",
        {2: {"BODY[1.1]<0>": b"plain body\r\n"}},
        id="dovecot-2.3-section-fetch",
    ),
    pytest.param(
        b"* 2 FETCH (UID 2 BINARY.SIZE[2] 600)",
        {2: {"BINARY.SIZE[2]": b"600"}},
        id="dovecot-2.3-binary-size",
    ),
    pytest.param(
        b"* 3 FETCH (FLAGS (\\Seen))\r\n* 3 FETCH (UID 7 FLAGS (\\Seen \\Answered))",
        {7: {"FLAGS": [b"\\Seen", b"\\Answered"]}},
        id="unsolicited-fetch-without-uid-ignored",
    ),
    pytest.param(
        b'* 12 FETCH (FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700"'
        b" RFC822.SIZE 4286 BODY[HEADER] " + lit(b"Subject: x\r\n\r\n") + b" UID 12)",
        {12: {"RFC822.SIZE": b"4286", "BODY[HEADER]": b"Subject: x\r\n\r\n"}},
        id="exchange-uid-last-after-literal",
    ),
    pytest.param(
        b"* 5 FETCH (UID 9 FLAGS ())\r\n* 5 FETCH (UID 9 RFC822.SIZE 10)",
        {9: {"FLAGS": [], "RFC822.SIZE": b"10"}},
        id="cyrus-two-answers-merged-by-uid",
    ),
    pytest.param(
        b"* 4 fetch (uid 4 body[header] NIL)",
        {4: {"UID": b"4", "BODY[HEADER]": None}},
        id="courier-lower-case-and-nil-section",
    ),
    pytest.param(
        b"* 6 FETCH (UID 6 BODY[1] " + lit(b'a ) ( " {3}\r\n') + b" FLAGS (\\Seen)",
        {6: {"BODY[1]": b'a ) ( " {3}\r\n', "FLAGS": [b"\\Seen"]}},
        id="literal-with-syntax-inside-and-unclosed-answer",
    ),
    pytest.param(b"* 1 FETCH (UID abc FLAGS ())", {}, id="unparsable-uid"),
    pytest.param(b"", {}, id="empty-answer"),
]


@pytest.mark.parametrize(("raw", "expected"), FETCH_ROWS)
def test_parse_fetch(raw: bytes, expected: dict[int, dict[str, Any]]) -> None:
    parsed = parse_fetch(lines(raw))
    assert set(parsed) == set(expected)
    for uid, items in expected.items():
        assert {key: parsed[uid].get(key) for key in items} == items


# -- BODYSTRUCTURE: raw -> (plain section, html section, attachments) ---------------

Summary = tuple[str | None, str | None, list[tuple[str, str, int]]]

BODYSTRUCTURE_ROWS = [
    pytest.param(DOVECOT_TEXT, ("1", None, []), id="dovecot-2.3-single-text"),
    pytest.param(
        DOVECOT_MIXED,
        (
            "1.1",
            "1.2",
            [
                ("résumé du mois.bin", "application/octet-stream", 822 * 57 // 78),
                ("unnamed", "message/rfc822", 125),
            ],
        ),
        id="dovecot-2.3-mixed-rfc2231-and-rfc822",
    ),
    pytest.param(
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)'
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff")'
        b' "<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64"'
        b' 4554 73) "MIXED")',
        ("1", None, []),
        id="rfc3501-example-named-text-is-text",
    ),
    pytest.param(
        b'(("text" "plain" ("charset" "us-ascii" "format" "flowed") NIL NIL "7bit"'
        b' 1234 20 NIL NIL NIL NIL)("application" "pdf" ("name" "a.pdf") NIL NIL'
        b' "base64" 7800 NIL ("attachment" ("filename" "a.pdf" "size" "5700")) NIL'
        b' NIL) "mixed" ("boundary" "cyrus") NIL NIL)',
        ("1", None, [("a.pdf", "application/pdf", 7800 * 57 // 78)]),
        id="cyrus-extension-data-md5-nil",
    ),
    pytest.param(
        b'(("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 2048 40 NIL'
        b' NIL NIL NIL)("APPLICATION" "PDF" ("NAME" "report.pdf") NIL NIL "BASE64"'
        b' 78000 NIL ("ATTACHMENT" ("FILENAME" "report.pdf" "SIZE" "57000")) NIL'
        b' NIL)("IMAGE" "PNG" ("NAME" "logo.png") "<logo@x>" NIL "BASE64" 780 NIL'
        b' ("INLINE" ("FILENAME" "logo.png")) NIL NIL) "MIXED" ("BOUNDARY" "ex")'
        b' NIL "en-US" NIL)',
        (
            None,
            "1",
            [
                ("report.pdf", "application/pdf", 78000 * 57 // 78),
                ("logo.png", "image/png", 780 * 57 // 78),
            ],
        ),
        id="exchange-upper-case-inline-image",
    ),
    pytest.param(
        b'("application" "octet-stream" ("name" ' + lit(b"data.bin") + b") NIL NIL"
        b' "8bit" 42 NIL NIL NIL NIL)',
        (None, None, [("data.bin", "application/octet-stream", 42)]),
        id="courier-literal-parameter",
    ),
    pytest.param(
        b'("text" "plain" NIL NIL NIL NIL NIL NIL)',
        ("1", None, []),
        id="nil-params-and-size",
    ),
    pytest.param(
        b'((NIL NIL NIL NIL NIL NIL 10)("text" "html" NIL NIL NIL "7bit" 5 1) "mixed")',
        (None, "2", []),
        id="nil-type-part-skipped",
    ),
    pytest.param(
        b'("application" "octet-stream" ("name*0*" "utf-8\'\'%C3%A9t%C3%A9"'
        b' "name*1" ".zip") NIL NIL "base64" 78)',
        (None, None, [("été.zip", "application/octet-stream", 57)]),
        id="rfc2231-continuations",
    ),
    pytest.param(b"NIL", (None, None, []), id="nil-bodystructure"),
    pytest.param(
        b'(("text" "plain" NIL NIL NIL "7bit" 3', ("1", None, []), id="unbalanced"
    ),
]


def summary(raw: bytes) -> Summary:
    tokens = parse_data(raw)
    structure = parse_bodystructure(tokens[0] if tokens else None)
    return (
        structure.plain.section if structure.plain else None,
        structure.html.section if structure.html else None,
        [(a.filename, a.content_type, a.size) for a in structure.attachments],
    )


@pytest.mark.parametrize(("raw", "expected"), BODYSTRUCTURE_ROWS)
def test_parse_bodystructure(raw: bytes, expected: Summary) -> None:
    assert summary(raw) == expected


# -- INTERNALDATE -------------------------------------------------------------------

INTERNALDATE_ROWS = [
    pytest.param(
        b"01-Dec-2026 21:39:20 +0000",
        datetime(2026, 12, 1, 21, 39, 20, tzinfo=UTC),
        id="dovecot-2.3",
    ),
    pytest.param(
        b"17-Jul-1996 02:44:25 -0700",
        datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7))),
        id="rfc3501-example",
    ),
    pytest.param(
        b" 4-Mar-2024 08:05:00 +0100",
        datetime(2024, 3, 4, 8, 5, tzinfo=timezone(timedelta(hours=1))),
        id="space-padded-day",
    ),
    pytest.param(b"2024-03-04T08:05:00Z", None, id="not-imap-syntax"),
    pytest.param(None, None, id="nil"),
]


@pytest.mark.parametrize(("raw", "expected"), INTERNALDATE_ROWS)
def test_parse_internaldate(raw: bytes | None, expected: datetime | None) -> None:
    assert parse_internaldate(raw) == expected


# -- SEARCH (aioimaplib strips the SEARCH word) ----------------------------------------

SEARCH_ROWS = [
    pytest.param(
        [b"1 2", b"Search completed (0.001 + 0.000 secs)."], [1, 2], id="dovecot"
    ),
    pytest.param([b"", b"Search completed."], [], id="nothing-found"),
    pytest.param([b"4 7", b"9", b"SEARCH completed"], [4, 7, 9], id="split-answer"),
    pytest.param([b"3 (MODSEQ 917162500)", b"OK"], [3], id="condstore-modseq-left-out"),
    pytest.param([b"Completed."], [], id="only-status"),
]


@pytest.mark.parametrize(("raw_lines", "expected"), SEARCH_ROWS)
def test_search_numbers(raw_lines: list[bytes], expected: list[int]) -> None:
    assert _numbers(Response("OK", raw_lines)) == expected


# -- NAMESPACE (aioimaplib strips the NAMESPACE word) -----------------------------

NAMESPACE_ROWS = [
    pytest.param(
        [b'(("INBOX." ".")) NIL (("#shared." ".")("shared." "."))', b"OK"],
        Namespace("INBOX.", "."),
        id="courier-5.0",
    ),
    pytest.param(
        [b'(("" "/")) (("~" "/")) (("#shared/" "/")("#public/" "/"))', b"OK"],
        Namespace("", "/"),
        id="dovecot-default",
    ),
    pytest.param(
        [b'(("INBOX." ".")) (("user." ".")) (("" "."))', b"Ok Completed"],
        Namespace("INBOX.", "."),
        id="cyrus-altnamespace-off",
    ),
    pytest.param(
        [b'(("" "/" "X-PARAM" ("FLAG1" "FLAG2"))) NIL NIL', b"OK"],
        Namespace("", "/"),
        id="rfc2342-extension-data",
    ),
    pytest.param([b'(("" NIL)) NIL NIL', b"OK"], Namespace("", None), id="flat"),
    pytest.param(
        [b'((" &AMk-l&AOk-ments/" "/")) NIL NIL', b"OK"],
        Namespace(" Éléments/", "/"),
        id="modified-utf7-prefix",
    ),
    pytest.param([b"NIL NIL NIL", b"OK"], None, id="no-personal-namespace"),
    pytest.param([b"OK"], None, id="only-status"),
]


@pytest.mark.parametrize(("raw_lines", "expected"), NAMESPACE_ROWS)
def test_parse_namespace(raw_lines: list[bytes], expected: Namespace | None) -> None:
    assert parse_namespace(raw_lines) == expected


FOLDER_ROWS = [
    # namespace, the user's name, the server's name, and back
    (Namespace("INBOX.", "."), "Sent", "INBOX.Sent"),
    (Namespace("INBOX.", "."), "INBOX", "INBOX"),
    (Namespace("INBOX.", "."), "INBOX.Sent", "INBOX.Sent"),
    (Namespace("INBOX", "."), "Envoyés", "INBOX.Envoyés"),
    (Namespace("", "/"), "Sent", "Sent"),
    (Namespace("", None), "Sent", "Sent"),
]


@pytest.mark.parametrize(("namespace", "name", "full"), FOLDER_ROWS)
def test_namespace_folder_names(namespace: Namespace, name: str, full: str) -> None:
    assert namespace.folder(name) == full
    if name.upper() != "INBOX":
        assert namespace.relative(full) == name.removeprefix("INBOX.")


# -- LIST (aioimaplib strips the LIST word) ----------------------------------------

LIST_ROWS = [
    pytest.param(
        [
            b'(\\Unmarked \\HasChildren) "." "INBOX"',
            b'(\\HasNoChildren \\Sent) "." "INBOX.Sent"',
            b"OK LIST completed",
        ],
        [
            ListEntry("INBOX", ".", frozenset({"\\unmarked", "\\haschildren"})),
            ListEntry("INBOX.Sent", ".", frozenset({"\\hasnochildren", "\\sent"})),
        ],
        id="courier-5.0",
    ),
    pytest.param(
        [b'(\\Noselect) "/" ""', b"List completed."],
        [ListEntry("", "/", frozenset({"\\noselect"}))],
        id="dovecot-delimiter-query",
    ),
    pytest.param(
        [b"(\\HasNoChildren) NIL INBOX", b"OK"],
        [ListEntry("INBOX", None, frozenset({"\\hasnochildren"}))],
        id="flat-nil-delimiter-atom-name",
    ),
    pytest.param(
        [b'() "/" {13}', bytearray(b"Envoy&AOk-s x"), b"", b"OK"],
        [ListEntry("Envoyés x", "/", frozenset())],
        id="literal-name-modified-utf7",
    ),
    pytest.param([b"garbage (", b"OK"], [], id="garbage"),
]


@pytest.mark.parametrize(("raw_lines", "expected"), LIST_ROWS)
def test_parse_list(raw_lines: list[Any], expected: list[ListEntry]) -> None:
    assert parse_list(raw_lines) == expected
