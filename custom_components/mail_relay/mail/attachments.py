"""Saving the attachments of a received mail to a folder, safely.

The name a mail gives a file is hostile: it may climb out of the folder
(``../../etc/passwd``), name a device (``CON``), hide its real extension
behind a right-to-left override, or be longer than any file system takes.
``safe_filename`` makes it a plain, readable name; ``write_unique`` never
replaces a file (``name (1).pdf``). Which attachments are wanted, and how
large they may be, is ``AttachmentSaveOptions``; how the bytes are fetched
(one IMAP part, or a POP3 message read whole) is the caller's ``load``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from .bounds import MAX_ATTACHMENT_BYTES, MAX_NAME, cap
from .message import UNNAMED_ATTACHMENT, AttachmentInfo, message_attachments
from .options import AttachmentSaveOptions

# Bytes of a saved file's name (most file systems stop at 255), with room
# left for `` (999)``.
MAX_SAVED_NAME_BYTES = 240
# Extensions longer than this are not kept apart when a name is shortened.
MAX_EXTENSION = 16
# ``name (1).pdf`` ... ``name (999).pdf``; then the file is skipped.
MAX_COPIES = 999

# Windows device names: a file called ``CON.txt`` cannot be opened there (a
# share of /media read from Windows, a backup restored on it).
_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{n}" for n in range(1, 10)}
    | {f"LPT{n}" for n in range(1, 10)}
)
# Path separators and what Windows refuses in names.
_UNSAFE_CHARS = re.compile(r'[/\\:*?"<>|]')
# Unicode categories dropped: controls, format characters (bidirectional
# overrides, zero-width joiners), surrogates, line and paragraph separators.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class SkipReason(StrEnum):
    """Why an attachment was not saved (the response and the log say it)."""

    TYPE = "type_not_selected"  # not among the wanted MIME types
    TOO_LARGE = "too_large"  # over the size cap
    UNDECODABLE = "undecodable"  # its transfer encoding could not be undone
    WRITE_FAILED = "write_failed"  # the folder refused the file


@dataclass(frozen=True, slots=True)
class SaveOutcome:
    """What became of one attachment: saved (``attachment.saved_path``) or why not."""

    attachment: AttachmentInfo
    reason: SkipReason | None = None
    error: str | None = None  # the system's words for WRITE_FAILED

    def as_dict(self) -> dict[str, object]:
        """Describe the outcome for a response or a log line."""
        info = self.attachment
        out: dict[str, object] = {
            "filename": info.filename,
            "content_type": info.content_type,
            "size": info.size,
        }
        if self.reason is None:
            out["saved_path"] = info.saved_path
        else:
            out["reason"] = self.reason.value
            if self.error:
                out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True)
class Candidate:
    """An attachment and how to get its decoded bytes.

    ``load(limit)`` returns them, or None when they are more than ``limit``
    bytes; it raises ``ValueError`` when they cannot be decoded.
    """

    info: AttachmentInfo
    load: Callable[[int], Awaitable[bytes | None]]


def mime_patterns(values: Iterable[str] | str) -> tuple[str, ...]:
    """Clean MIME patterns as a person types them: one per entry, or by commas."""
    if isinstance(values, str):
        values = [values]
    return tuple(
        p.strip().lower() for value in values for p in value.split(",") if p.strip()
    )


def type_wanted(content_type: str, patterns: Iterable[str]) -> bool:
    """Whether a MIME type matches one of the patterns (``image/*``); none: all."""
    wanted = [p.strip().lower() for p in patterns if p.strip()]
    ctype = content_type.lower()
    return not wanted or any(fnmatch.fnmatchcase(ctype, p) for p in wanted)


def size_cap(rules: AttachmentSaveOptions) -> int:
    """Return the cap per file: the user's, never above the one for sending."""
    return max(0, min(rules.max_size, MAX_ATTACHMENT_BYTES))


def safe_filename(name: str) -> str:
    """Turn a mail's file name into a plain name for this folder only.

    Readable letters of any script stay; what could leave the folder,
    deceive the reader or fail on a file system goes.
    """
    text = unicodedata.normalize("NFC", cap(name, MAX_NAME * 4))
    text = "".join(
        ch for ch in text if unicodedata.category(ch) not in _DROPPED_CATEGORIES
    )
    # A path keeps its names, never its way up: ../../etc/passwd -> etc_passwd.
    parts = re.split(r"[/\\]+", text)
    text = "_".join(p for p in parts if p.strip(" ."))
    text = _UNSAFE_CHARS.sub("_", text)
    text = " ".join(text.split())  # tabs, runs of spaces, odd blanks
    text = re.sub(r"\.{2,}", ".", text).strip(" .")
    if not text:
        return UNNAMED_ATTACHMENT
    if text.split(".")[0].rstrip().upper() in _DEVICE_NAMES:
        text = "_" + text
    return _shorten(text, MAX_SAVED_NAME_BYTES)


def _split_extension(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > MAX_EXTENSION:
        return name, ""
    return stem, "." + ext


def _shorten(name: str, limit: int) -> str:
    """Cut a name to ``limit`` UTF-8 bytes, keeping its extension."""
    if len(name.encode()) <= limit:
        return name
    stem, ext = _split_extension(name)
    room = limit - len(ext.encode())
    short = stem.encode()[:room].decode("utf-8", "ignore").rstrip(" .")
    return (short or UNNAMED_ATTACHMENT) + ext


def write_unique(directory: Path, name: str, data: bytes) -> Path:
    """Write a new file in ``directory``; an existing one is never replaced.

    Blocking: run it in the executor. Created with ``O_EXCL``, so a file or
    a symbolic link of that name (even one appearing meanwhile) makes it
    take the next name, ``name (1).pdf``; a file cut short by a failed
    write is removed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stem, ext = _split_extension(name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for copy in range(MAX_COPIES + 1):
        path = directory / (name if copy == 0 else f"{stem} ({copy}){ext}")
        try:
            fd = os.open(path, flags, 0o644)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return path
    raise FileExistsError(f"{MAX_COPIES} files named {name} already in {directory}")


def encoded_bound(limit: int, encoding: str | None) -> int:
    """Octets a part of ``limit`` decoded bytes can take on the wire, and one more.

    Base64 carries 3 bytes per 4 characters plus the line ends (a half
    more covers lines down to 16 characters; mailers write 64 or 76);
    quoted-printable at most a third of its octets; other encodings as many.
    The decoded size is checked after the download.
    """
    enc = (encoding or "").strip().lower()
    if enc == "base64":
        return limit * 3 // 2 + 1024
    if enc == "quoted-printable":
        return limit * 3 + 1024
    return limit + 1


def refusal(info: AttachmentInfo, rules: AttachmentSaveOptions) -> SkipReason | None:
    """Why an attachment is not wanted before any of it is downloaded, if so."""
    if not type_wanted(info.content_type, rules.types):
        return SkipReason.TYPE
    if info.size > size_cap(rules):
        return SkipReason.TOO_LARGE
    return None


async def save_all(
    candidates: Iterable[Candidate], rules: AttachmentSaveOptions, directory: Path
) -> list[SaveOutcome]:
    """Download the wanted attachments one by one and write each to ``directory``.

    Connection errors from ``load`` end the call (the caller reports them);
    anything about one file skips that file only.
    """
    loop = asyncio.get_running_loop()
    limit = size_cap(rules)
    outcomes: list[SaveOutcome] = []
    for candidate in candidates:
        info = candidate.info
        reason = refusal(info, rules)
        if reason is not None:
            outcomes.append(SaveOutcome(info, reason))
            continue
        try:
            data = await candidate.load(limit)
        except ValueError:
            outcomes.append(SaveOutcome(info, SkipReason.UNDECODABLE))
            continue
        if data is None:
            outcomes.append(SaveOutcome(info, SkipReason.TOO_LARGE))
            continue
        try:
            path = await loop.run_in_executor(
                None, write_unique, directory, safe_filename(info.filename), data
            )
        except OSError as err:
            outcomes.append(
                SaveOutcome(info, SkipReason.WRITE_FAILED, cap(str(err), MAX_NAME))
            )
            continue
        saved = replace(info, size=len(data), saved_path=str(path))
        outcomes.append(SaveOutcome(saved))
    return outcomes


async def message_candidates(raw: bytes) -> list[Candidate]:
    """List a message read whole (POP3): its attachments, decoded in the executor."""
    loop = asyncio.get_running_loop()
    found = await loop.run_in_executor(None, message_attachments, raw)

    def loader(decode: Callable[[], bytes]) -> Callable[[int], Awaitable[bytes | None]]:
        async def load(limit: int) -> bytes | None:
            data = await loop.run_in_executor(None, decode)
            return None if len(data) > limit else data

        return load

    return [Candidate(info, loader(decode)) for info, decode in found]
