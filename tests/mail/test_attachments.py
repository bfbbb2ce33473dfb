"""Saved attachments: hostile names made safe, files never replaced, strict decoding."""

from __future__ import annotations

import base64
import os
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from custom_components.mail_relay.mail.attachments import (
    MAX_SAVED_NAME_BYTES,
    SkipReason,
    message_candidates,
    mime_patterns,
    safe_filename,
    save_all,
    type_wanted,
    write_unique,
)
from custom_components.mail_relay.mail.message import attachment_bytes
from custom_components.mail_relay.mail.options import AttachmentSaveOptions


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("facture.pdf", "facture.pdf"),
        ("../../etc/passwd", "etc_passwd"),
        ("..\\..\\Windows\\win.ini", "Windows_win.ini"),
        ("/etc/shadow", "etc_shadow"),
        ("..", "unnamed"),
        ("", "unnamed"),
        (" . . ", "unnamed"),
        (".bashrc", "bashrc"),  # no hidden files
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("LPT1.pdf", "_LPT1.pdf"),
        ("CONSOLE.pdf", "CONSOLE.pdf"),  # only the device names themselves
        # RIGHT-TO-LEFT OVERRIDE makes "invoice\u202efdp.exe" read "invoiceexe.pdf".
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("zero\u200bwidth.pdf", "zerowidth.pdf"),
        ("tab\there\nnew\x00line.pdf", "tabherenewline.pdf"),
        ('a<b>c:d"e|f?g*h.pdf', "a_b_c_d_e_f_g_h.pdf"),
        ("Relevé  de   compte.pdf", "Relevé de compte.pdf"),
        ("Releve\u0301.pdf", "Relevé.pdf"),  # NFC: one letter, not two
        ("請求書 2026年.pdf", "請求書 2026年.pdf"),
        ("счёт.pdf", "счёт.pdf"),
        ("فاتورة.pdf", "فاتورة.pdf"),
        ("nom...pdf", "nom.pdf"),
    ],
)
def test_safe_filename(given: str, expected: str) -> None:
    assert safe_filename(given) == expected


def test_long_names_are_cut_on_a_character_keeping_the_extension() -> None:
    name = safe_filename("é" * 400 + ".pdf")
    assert name.endswith("é.pdf")
    assert len(name.encode()) <= MAX_SAVED_NAME_BYTES
    # No extension worth the name: cut as a whole.
    assert len(safe_filename("x" * 1000).encode()) == MAX_SAVED_NAME_BYTES


def test_type_patterns() -> None:
    assert type_wanted("application/pdf", ["application/pdf"])
    assert type_wanted("IMAGE/JPEG", ["image/*"])
    assert not type_wanted("text/csv", ["application/pdf", "image/*"])
    assert type_wanted("text/csv", [])  # nothing chosen: every type
    assert type_wanted("text/csv", [" ", ""])
    assert mime_patterns(["Application/PDF, image/*", " ", "text/csv"]) == (
        "application/pdf",
        "image/*",
        "text/csv",
    )
    assert mime_patterns("image/*") == ("image/*",)


def test_write_unique_never_replaces_anything(tmp_path: Path) -> None:
    target = tmp_path / "out"
    first = write_unique(target, "a.pdf", b"one")
    second = write_unique(target, "a.pdf", b"two")
    third = write_unique(target, "a.pdf", b"three")
    assert [p.name for p in (first, second, third)] == [
        "a.pdf",
        "a (1).pdf",
        "a (2).pdf",
    ]
    assert first.read_bytes() == b"one"
    # A symbolic link of that name is not followed, nor replaced.
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (target / "b.pdf").symlink_to(victim)
    written = write_unique(target, "b.pdf", b"payload")
    assert written.name == "b (1).pdf"
    assert victim.read_bytes() == b"keep me"
    assert write_unique(target, "noext", b"x").name == "noext"
    assert write_unique(target, "noext", b"x").name == "noext (1)"


def test_base64_is_strict_for_files() -> None:
    data = os.urandom(100)
    encoded = base64.encodebytes(data)
    assert attachment_bytes(encoded, "base64") == data
    assert attachment_bytes(encoded.rstrip(b"=\n"), "base64") == data  # no padding
    for junk in (b"!!!! not base64 ****", b"abc=def=", b"a"):
        with pytest.raises(ValueError, match="base64"):
            attachment_bytes(junk, "base64")
    assert attachment_bytes(b"caf=C3=A9", "quoted-printable") == "café".encode()
    assert attachment_bytes(b"raw", None) == b"raw"


def _nested(depth: int) -> bytes:
    """A PDF under ``depth`` nested multiparts: a mail built to exhaust recursion."""
    head = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'
        for i in range(depth)
    )
    pdf = base64.b64encode(b"%PDF deep").decode()
    tail = "".join(f"\r\n--b{i}--" for i in reversed(range(depth)))
    return (
        "From: a@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
        + head
        + "Content-Type: application/pdf\r\n"
        'Content-Disposition: attachment; filename="deep.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n" + pdf + tail + "\r\n"
    ).encode()


async def test_whole_message_attachments_saved(tmp_path: Path) -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["Subject"] = "pièces"
    msg.set_content("texte")
    msg.add_attachment(
        b"%PDF-1", maintype="application", subtype="pdf", filename="f.pdf"
    )
    msg.add_attachment(
        os.urandom(4096), maintype="image", subtype="png", filename="../x.png"
    )
    inner = EmailMessage()
    inner["Subject"] = "transféré"
    inner.set_content("dedans")
    msg.add_attachment(inner)
    candidates = await message_candidates(msg.as_bytes())
    rules = AttachmentSaveOptions(types=("application/pdf", "message/*"), max_size=1024)
    outcomes = await save_all(candidates, rules, tmp_path)
    by_name = {o.attachment.filename: o for o in outcomes}
    assert by_name["f.pdf"].attachment.saved_path == str(tmp_path / "f.pdf")
    assert (tmp_path / "f.pdf").read_bytes() == b"%PDF-1"
    assert by_name["../x.png"].reason is SkipReason.TYPE
    forwarded = next(
        o for o in outcomes if o.attachment.content_type == "message/rfc822"
    )
    assert forwarded.reason is None
    assert b"transf" in Path(str(forwarded.attachment.saved_path)).read_bytes()


async def test_deeply_nested_mail_is_read_without_recursion(tmp_path: Path) -> None:
    start = time.monotonic()
    candidates = await message_candidates(_nested(500))
    outcomes = await save_all(candidates, AttachmentSaveOptions(), tmp_path)
    assert [o.attachment.filename for o in outcomes] == ["deep.pdf"]
    assert (tmp_path / "deep.pdf").read_bytes() == b"%PDF deep"
    assert time.monotonic() - start < 5


async def test_write_failure_skips_the_file_only(tmp_path: Path) -> None:
    msg = EmailMessage()
    msg.set_content("x")
    msg.add_attachment(b"1", maintype="application", subtype="pdf", filename="a.pdf")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    candidates = await message_candidates(msg.as_bytes())
    # The folder is a file: the attachment is skipped with the reason, no raise.
    outcomes = await save_all(candidates, AttachmentSaveOptions(), blocker / "sub")
    assert [o.reason for o in outcomes] == [SkipReason.WRITE_FAILED]
    assert outcomes[0].error
