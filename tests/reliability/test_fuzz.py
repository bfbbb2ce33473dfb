"""Property-based fuzzing, from raw bytes to event, on both parsing paths.

POP3 hands raw message bytes to ``event_from_message``; IMAP hands the lines
of a FETCH answer (text and literals, as aioimaplib gives them) to
``parse_fetch``, then ``fetched_message`` and ``build_event``. Whatever the
bytes, each must give an event under 32 KB and raise nothing. Derandomized:
the same 10,000 examples per path on every run, so a failure reproduces.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_components.mail_relay.mail.bounds import MAX_EVENT_BYTES
from custom_components.mail_relay.mail.imap.parse import (
    build_event,
    fetched_message,
    parse_fetch,
)
from custom_components.mail_relay.mail.message import MailEvent
from tests.mailserver.dovecot import make_message, non_ascii_message
from tests.reliability.corpus import eight_bit_headers, read_as_pop3

EXAMPLES = 10_000
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SEEDS = [
    make_message("seed"),
    non_ascii_message("bob@example.org"),
    eight_bit_headers(),
    b"",
]
# Bytes that matter to the parsers: MIME syntax, RFC 2047, IMAP syntax.
TOKENS = st.sampled_from(
    [
        b"\r\n",
        b"\r\n\r\n",
        b"--b\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\n',
        b"Content-Type: message/rfc822\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"=?utf-8?q?=C3=A9?=",
        b"=?x-unknown?b?////?=",
        b"=?utf-8?b?",
        b"\xff\xfe\x00",
        b"(",
        b")",
        b'"',
        b"{5}\r\n",
        b"{99999999}\r\n",
        b"NIL",
        b"\\",
    ]
)
CHUNK = st.one_of(st.binary(max_size=64), TOKENS)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few random splices: mostly valid, broken somewhere."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 16))
        data[at : at + cut] = draw(CHUNK)
    return bytes(data)


def _assert_event(event: MailEvent) -> None:
    size = len(json.dumps(event.as_dict(), ensure_ascii=False).encode())
    assert size < MAX_EVENT_BYTES


@FUZZ
@given(raw=st.one_of(mutated(SEEDS), st.binary(max_size=4096)), headers=st.booleans())
def test_pop3_path_from_raw_bytes(raw: bytes, headers: bool) -> None:
    _assert_event(read_as_pop3(raw, text_limit=4096, include_headers=headers))


FETCH_SEEDS = [
    b"* 1 FETCH (UID 7 RFC822.SIZE 420 FLAGS (\\Seen) "
    b'INTERNALDATE "01-Dec-2026 10:00:00 +0100" '
    b'BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 10 1 NIL NIL'
    b' NIL NIL)("application" "pdf" ("name" "a.pdf") NIL NIL "base64" 780 NIL'
    b' ("attachment" ("filename" "a.pdf")) NIL NIL) "mixed" ("boundary" "b") NIL NIL'
    b" NIL) BODY[HEADER] ",
    b"* 2 FETCH (UID 8 BODY[HEADER] ",
    b"* 3 FETCH (",
]


HEADER_SEEDS = [make_message("imap seed"), eight_bit_headers()]


@st.composite
def fetch_answer(draw: st.DrawFn) -> tuple[list[bytes | bytearray], bytes]:
    """A FETCH answer as aioimaplib splits it: a line, a literal, the rest."""
    line = draw(mutated(FETCH_SEEDS))
    header = draw(mutated(HEADER_SEEDS))
    lines: list[bytes | bytearray] = [
        line + b"{%d}" % len(header),
        bytearray(header),
        draw(st.sampled_from([b")", b" BODY[1]<0> {4}", b"", b"))"])),
    ]
    text = draw(st.binary(max_size=256))
    return [*lines, b"A1 OK done"], text


@FUZZ
@given(answer=fetch_answer(), headers=st.booleans())
def test_imap_path_from_fetch_answer(
    answer: tuple[list[bytes | bytearray], bytes], headers: bool
) -> None:
    lines, text = answer
    for uid, item in parse_fetch(lines).items():
        message = fetched_message(uid, item)
        message.text = text
        _assert_event(
            build_event(
                message,
                account="a",
                folder="INBOX",
                uidvalidity=1,
                text_limit=4096,
                include_headers=headers,
            )
        )
