"""The IMAP client: folders, searching, fetching and changing messages.

Messages are tracked by UID and UIDVALIDITY; fetching reads headers,
structure and only the first bytes of the text part; attachments are never
downloaded.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from functools import partial
from typing import Any

from ..attachments import Candidate, encoded_bound
from ..errors import MessageNotFoundError, ProtocolError
from ..html import html_to_text
from ..message import (
    MailEvent,
    attachment_bytes,
    decode_header_value,
    event_from_parts,
    parse_headers,
)
from .adapter import SELECTED, ImapConnection
from .parse import (
    MAX_TEXT_BYTES,
    FetchedMessage,
    ListEntry,
    Namespace,
    PartRef,
    _decode_part,
    _int,
    _iso,
    _last_text,
    _numbers,
    _response_codes,
    _section_data,
    build_event,
    fetched_message,
    parse_list,
    parse_namespace,
    parse_status,
    response_data,
    text_bytes_for,
)
from .syntax import _chunks, encode_mailbox, imap_date, mailbox_arg, quote, uid_set

_LOGGER = logging.getLogger(__name__)

# UIDs compared by the SEARCH consistency probe (setup, ``mail-relay check``).
PROBE_UIDS = 100

# UIDs per FETCH/STORE command: keeps command lines and responses bounded.
BATCH_SIZE = 100
# UIDs one SEARCH round may bring: its answer stays under about 70 KB and one
# round's work bounded, whatever the server answers (1,000,000 UIDs took 28 s
# and were all fetched); a longer backlog takes several rounds.
SEARCH_WINDOW = 10_000
# Bytes of each text part fetched for the ``fetch`` action.
FULL_TEXT_BYTES = 1024 * 1024

# RFC 6154's special uses, as the options form names them.
SPECIAL_USES = ("sent", "drafts", "junk", "trash", "archive", "all", "flagged")

# Where mail clients keep sent mail, when the server flags none \Sent.
SENT_FOLDER_NAMES = (
    "Sent",
    "Sent Items",
    "Sent Messages",
    "Sent Mail",
    "INBOX.Sent",  # a child of INBOX on servers whose namespace is the root
    "Envoyés",
    "Messages envoyés",
    "Éléments envoyés",
)


# -- the client -------------------------------------------------------------


class ImapClient(ImapConnection):
    """One authenticated IMAP connection, for the watcher or for actions.

    Commands are serialised by a lock. Do not share an instance with a running
    watcher: the watcher keeps its folder selected and sits in IDLE.
    """

    # The server's name of the selected folder (``INBOX.Archive`` for ``Archive``).
    selected_wire: str | None = None

    # -- folders ------------------------------------------------------------

    async def select(self, folder: str, readonly: bool = False) -> tuple[int, int]:
        """Open a folder; return (UIDVALIDITY, UIDNEXT).

        ``folder`` is the user's name; under a personal namespace (Courier's
        ``INBOX.``) the server's full name is looked up first.
        """
        wire_name = await self.resolve_folder(folder)
        async with self._lock:
            name = "EXAMINE" if readonly else "SELECT"
            response = await self._execute(self._command(name, mailbox_arg(wire_name)))
            if response.result != "OK":
                self.selected = None
                raise ProtocolError(
                    f"cannot open folder {folder!r}: {_last_text(response)}"
                )
            proto = self._require()
            proto.state = SELECTED  # aioimaplib only knows SELECT
            codes = _response_codes(response)
            uidvalidity = _int(codes.get("UIDVALIDITY"))
            uidnext = _int(codes.get("UIDNEXT"))
            self.selected = folder
            self.selected_wire = wire_name
            if uidnext is None:
                uidnext = await self._uidnext_by_search()
            self.uidvalidity = uidvalidity or 0
            return self.uidvalidity, uidnext

    async def _uidnext_by_search(self) -> int:
        """For servers that leave UIDNEXT out of SELECT: the highest UID, plus one."""
        try:
            async with self._lock:
                found = await self._uid_fetch("*", "(UID)")
        except ProtocolError:  # some servers refuse ``*`` in an empty folder
            return 1
        return max(found, default=0) + 1

    async def _list(self, pattern: str = "*") -> list[ListEntry]:
        async with self._lock:
            response = await self._ok(self._command("LIST", '""', quote(pattern)))
        return parse_list(response.lines)

    async def _folders_with_flags(self) -> list[tuple[str, set[str]]]:
        """Return the selectable folders, decoded, with their lower-case flags."""
        return [
            (entry.name, set(entry.flags))
            for entry in await self._list()
            if not {"\\noselect", "\\nonexistent"} & entry.flags
        ]

    async def list_folders(self) -> list[str]:
        """Names of the folders that can be selected, decoded."""
        return [name for name, _ in await self._folders_with_flags()]

    async def folder_uses(self) -> list[tuple[str, str | None]]:
        r"""Return the selectable folders with their special use (RFC 6154), if any.

        The use is the flag's name without its backslash, lower case
        (``sent`` for ``\Sent``), for the options form's labels.
        """
        return [
            (name, next((u for u in SPECIAL_USES if f"\\{u}" in flags), None))
            for name, flags in await self._folders_with_flags()
        ]

    async def namespace(self) -> Namespace:
        """Where the user's folders live: NAMESPACE (RFC 2342), delimiter from LIST.

        Courier keeps them under ``INBOX.`` with ``.``: a folder made at the
        root is refused there. Asked once per connection.
        """
        if self._namespace is not None:
            return self._namespace
        found: Namespace | None = None
        if "NAMESPACE" in self.capabilities:
            try:
                async with self._lock:
                    response = await self._ok(self._command("NAMESPACE"))
                found = parse_namespace(response.lines)
            except ProtocolError as err:
                _LOGGER.debug("NAMESPACE refused, using the root: %s", err)
        if found is None or found.delimiter is None:
            # ``LIST "" ""`` answers the hierarchy delimiter (RFC 3501 6.3.8).
            entries = await self._list("")
            delimiter = entries[0].delimiter if entries else None
            found = Namespace(found.prefix if found else "", delimiter)
        self._namespace = found
        return found

    async def resolve_folder(self, name: str) -> str:
        """Return the server's name for a user's folder (``Archive`` -> ``INBOX.Archive``).

        A name that exists as given wins; else the one under the personal
        namespace when that exists; else the name as given (the server says no).
        """
        if name.upper() == "INBOX":
            return name
        namespace = await self.namespace()
        full = namespace.folder(name)
        if full == name:
            return name
        names = {entry.name for entry in await self._list()}
        if name in names or full not in names:
            return name
        return full

    async def sent_folder(self) -> str:
        r"""Return the folder mail clients keep sent mail in; create it if missing.

        The server's SPECIAL-USE ``\Sent`` flag (RFC 6154) wins; then the
        usual names, French ones included, at the root or under the personal
        namespace; else a new "Sent" where the namespace says folders go.
        """
        folders = await self._folders_with_flags()
        for name, flags in folders:
            if "\\sent" in flags:
                return name
        namespace = await self.namespace()
        by_name: dict[str, str] = {}
        for name, _ in folders:
            by_name.setdefault(name.casefold(), name)
            by_name.setdefault(namespace.relative(name).casefold(), name)
        for usual in SENT_FOLDER_NAMES:
            if usual.casefold() in by_name:
                return by_name[usual.casefold()]
        sent = namespace.folder("Sent")
        await self.create_folder(sent)
        return sent

    async def append(self, folder: str, message: bytes, *, seen: bool = True) -> None:
        """Store a copy of a message (marked read unless ``seen=False``) in a folder.

        Line ends become CRLF, as RFC 3501 wants: Cyrus refuses bare newlines.
        """
        message = re.sub(rb"\r?\n", b"\r\n", message)
        async with self._lock:
            proto = self._require()
            flags = ["(\\Seen)"] if seen else []
            command = self._command(
                "APPEND", mailbox_arg(folder), *flags, f"{{{len(message)}}}"
            )
            # aioimaplib sends this literal when the server asks for it.
            proto.literal_data = message
            await self._ok(command)

    async def create_folder(self, name: str) -> None:
        """Create a folder (tests and setup helpers)."""
        async with self._lock:
            await self._ok(self._command("CREATE", mailbox_arg(name)))

    # -- searching and fetching ----------------------------------------------

    async def uidnext(self, folder: str, *, fresh: bool = False) -> int | None:
        """Return the folder's UIDNEXT now (``STATUS``); None if the server will not say.

        For the selected folder a NOOP comes first: servers answer STATUS
        there from the session's view (RFC 3501 advises against asking it at
        all), which lags behind mail delivered since the last command, so a
        stale UIDNEXT would hide that mail until the next change. ``fresh``:
        the server has just announced new mail (EXISTS), so its view holds it
        and the NOOP's round trip is saved (mail after that is announced too).
        """
        if folder == self.selected and not fresh:
            async with self._lock:
                await self._execute(self._command("NOOP"))  # a refusal changes nothing
        found = await self.status(folder, "UIDNEXT")
        return None if found is None else found.get("UIDNEXT")

    async def status(self, folder: str, items: str) -> dict[str, int] | None:
        """STATUS of one folder (``items``: ``UIDNEXT UIDVALIDITY``...); None if refused.

        Only the answer naming this folder counts: under NOTIFY another
        folder's STATUS may come in the same response.
        """
        wire = (
            self.selected_wire
            if folder == self.selected and self.selected_wire
            else await self.resolve_folder(folder)
        )
        async with self._lock:
            response = await self._execute(
                self._command("STATUS", mailbox_arg(wire), f"({items})")
            )
        if response.result != "OK":
            return None
        answers = parse_status(response.lines)
        ours = answers.pop(encode_mailbox(wire), None) or answers.pop(wire, None)
        if answers and self._proto is not None:
            self._proto.status_hint = True  # another folder's news came along
        return ours

    async def notify(self, others: list[str]) -> bool:
        """Ask for pushed news of the selected folder and of ``others`` (RFC 5465).

        The server then sends ``EXISTS`` for the selected folder and
        ``STATUS`` for the others, in IDLE and between commands. False when
        it is not offered or refused: the caller polls the others instead.
        """
        if "NOTIFY" not in self.capabilities:
            return False
        wires = [mailbox_arg(await self.resolve_folder(f)) for f in others]
        spec = ["(selected (MessageNew MessageExpunge))"]
        if wires:
            spec.append(f"(mailboxes ({' '.join(wires)}) (MessageNew MessageExpunge))")
        async with self._lock:
            response = await self._execute(self._command("NOTIFY", "SET", *spec))
        if response.result != "OK":
            _LOGGER.debug("NOTIFY refused, polling instead: %s", _last_text(response))
            return False
        return True

    async def search_uids(self, uids: list[int], criteria: str) -> list[int]:
        """Which of these UIDs (selected folder) also match SEARCH ``criteria``."""
        if not uids:
            return []
        wanted = set(uids)
        found: set[int] = set()
        for batch in _chunks(sorted(wanted), BATCH_SIZE * 10):
            async with self._lock:
                response = await self._ok(
                    self._command(
                        "SEARCH", "UID", uid_set(batch), criteria, prefix="UID"
                    )
                )
            found.update(_numbers(response))
        return sorted(found & wanted)

    async def new_uids(self, last_uid: int, uidnext: int | None = None) -> list[int]:
        """UIDs above the mark, ascending, at most ``SEARCH_WINDOW`` of them.

        By ``UID FETCH first:last (UID)``, not SEARCH: GNU Mailutils' imap4d
        answers ``UID SEARCH UID n:*`` with nothing, so a SEARCH-based watcher
        would never see mail there. With ``uidnext`` only UIDs below it are
        asked for and kept: the server has assigned no other, so an answer
        with more cannot move the mark past mail still to come. ``n:*`` always
        matches the highest UID, even below ``n``: filtered. A server that
        refuses the FETCH (some answer BAD for ``*`` in an empty folder) is
        asked by SEARCH instead.
        """
        span = _uid_span(last_uid, uidnext)
        if span is None:
            return []
        try:
            async with self._lock:
                found = await self._uid_fetch(span, "(UID)")
        except ProtocolError as err:
            _LOGGER.debug("UID FETCH refused, asking by SEARCH: %s", err)
            return await self.search_since(last_uid, uidnext)
        return _in_window(found, last_uid, uidnext)

    async def search_since(
        self, last_uid: int, uidnext: int | None = None
    ) -> list[int]:
        """Return what ``UID SEARCH UID`` answers for the span ``new_uids`` asks.

        The fallback of ``new_uids``, and the other side of the consistency
        probe (``search_consistent``).
        """
        span = _uid_span(last_uid, uidnext)
        if span is None:
            return []
        async with self._lock:
            response = await self._ok(
                self._command("SEARCH", "UID", span, prefix="UID")
            )
        return _in_window(_numbers(response), last_uid, uidnext)

    async def search_arrived_since(self, day: date, uidnext: int) -> list[int]:
        """UIDs below ``uidnext`` of mail that arrived on ``day`` or later.

        SEARCH SINCE compares dates only (no time, no zone): callers filter
        the messages by their INTERNALDATE.
        """
        async with self._lock:
            response = await self._ok(
                self._command("SEARCH", "SINCE", imap_date(day), prefix="UID")
            )
        return sorted(uid for uid in set(_numbers(response)) if 0 < uid < uidnext)

    async def search_consistent(self) -> bool | None:
        """Whether UID SEARCH agrees with UID FETCH in the selected folder.

        None when the folder is empty (nothing to compare). Servers that get
        it wrong still work for watching (``new_uids`` uses FETCH), but other
        mail programs will miss mail there, and users should know why.
        """
        # The newest ones only: aioimaplib's handling of an answer grows
        # faster than its length, and a big INBOX would slow every setup.
        uidnext = await self.uidnext(self.selected) if self.selected else None
        start = 0 if uidnext is None else max(0, uidnext - 1 - PROBE_UIDS)
        fetched = await self.new_uids(start, uidnext)
        if not fetched:
            return None
        try:
            everything = await self.search_since(start, uidnext)
            last = await self.search_since(fetched[-1] - 1)
        except ProtocolError:
            return False
        if uidnext is not None:
            # Mail delivered during the probe is no disagreement.
            last = [uid for uid in last if uid < uidnext]
        return everything == fetched and last == fetched[-1:]

    async def existing(self, uids: list[int]) -> set[int]:
        """Which of these UIDs exist in the selected folder (by FETCH, as above)."""
        if not uids:
            return set()
        async with self._lock:
            found = await self._uid_fetch(uids, "(UID)")
        return set(found) & set(uids)

    async def unread_count(self) -> int:
        """Unseen messages in the selected folder (ESEARCH COUNT when offered)."""
        async with self._lock:
            if "ESEARCH" in self.capabilities:
                response = await self._ok(
                    self._command(
                        "SEARCH",
                        "RETURN",
                        "(COUNT)",
                        "UNSEEN",
                        untagged_resp_name="ESEARCH",
                    )
                )
                match = re.search(rb"\bCOUNT\s+(\d+)", response_data(response.lines))
                return int(match.group(1)) if match else 0
            response = await self._ok(self._command("SEARCH", "UNSEEN"))
            return len(_numbers(response))

    async def noop(self) -> None:
        """Ask for pending updates; proves the connection is alive."""
        async with self._lock:
            await self._ok(self._command("NOOP"))

    async def wait_closed(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True as soon as the connection drops."""
        try:
            async with asyncio.timeout(seconds):
                await self._lost.wait()
        except TimeoutError:
            return False
        return True

    def take_new_mail_hint(self) -> bool:
        """Whether the server announced mail since the last call."""
        proto = self._proto
        if proto is None:
            return False
        hint, proto.new_mail_hint = proto.new_mail_hint, False
        return bool(hint)

    def take_status_hint(self) -> bool:
        """Whether another folder's STATUS came unasked (NOTIFY) since the last call."""
        proto = self._proto
        if proto is None:
            return False
        hint, proto.status_hint = proto.status_hint, False
        return bool(hint)

    async def fetch_messages(
        self, uids: list[int], *, text_bytes: int
    ) -> dict[int, FetchedMessage]:
        """Headers, flags, size, date and structure, plus the text's first bytes.

        Part 1 is asked for in the same command (for single-part mail and
        ``multipart/alternative`` it is the text); messages whose text lives
        elsewhere get one more FETCH per section. Attachments never travel.
        """
        result: dict[int, FetchedMessage] = {}
        for batch in _chunks(sorted(set(uids)), BATCH_SIZE):
            items = "UID FLAGS RFC822.SIZE INTERNALDATE BODYSTRUCTURE BODY.PEEK[HEADER]"
            if text_bytes > 0:
                items += f" BODY.PEEK[1]<0.{text_bytes}>"
            async with self._lock:
                raw = await self._uid_fetch(batch, f"({items})")
            later: dict[tuple[str, int], list[int]] = {}
            for uid, item in raw.items():
                if uid not in batch:
                    continue  # an unsolicited FETCH (flag change) of another message
                message = fetched_message(uid, item)
                result[uid] = message
                part = message.structure.text
                if part is None or text_bytes <= 0:
                    continue
                # HTML spends many bytes on markup and style sheets: allow more.
                wanted = (
                    max(text_bytes, MAX_TEXT_BYTES)
                    if part.subtype == "html"
                    else text_bytes
                )
                data = _section_data(item, "1") if part.section == "1" else None
                if data is not None and (
                    len(data) < text_bytes or wanted == text_bytes
                ):
                    message.text = data
                else:
                    later.setdefault((part.section, wanted), []).append(uid)
            for (section, size), section_uids in later.items():
                async with self._lock:
                    raw = await self._uid_fetch(
                        section_uids, f"(UID BODY.PEEK[{section}]<0.{size}>)"
                    )
                for uid, item in raw.items():
                    if uid in result and uid in section_uids:
                        result[uid].text = _section_data(item, section)
        if "BINARY" in self.capabilities:
            await self._exact_attachment_sizes(result)
        return result

    async def _exact_attachment_sizes(
        self, messages: dict[int, FetchedMessage]
    ) -> None:
        """Replace estimated attachment sizes by the decoded ones (RFC 3516).

        One FETCH per set of sections (usually one for a whole batch); the
        server decodes, nothing travels but the numbers. A server that cannot
        decode a part answers NO, and an impossible figure is not taken: the
        estimates stay.
        """
        groups: dict[tuple[str, ...], list[int]] = {}
        for uid, message in messages.items():
            if message.structure.estimated:
                sections = tuple(e.section for e in message.structure.estimated)
                groups.setdefault(sections, []).append(uid)
        for sections, uids in groups.items():
            items = " ".join(f"BINARY.SIZE[{section}]" for section in sections)
            try:
                async with self._lock:
                    raw = await self._uid_fetch(uids, f"(UID {items})")
            except ProtocolError as err:
                _LOGGER.debug("BINARY.SIZE refused, sizes stay estimated: %s", err)
                continue
            for uid, item in raw.items():
                if uid not in uids:
                    continue
                structure = messages[uid].structure
                for estimate in structure.estimated:
                    size = _int(item.get(f"BINARY.SIZE[{estimate.section}]"))
                    if size is not None and estimate.plausible(size):
                        attachments = structure.attachments
                        attachments[estimate.index] = replace(
                            attachments[estimate.index], size=size
                        )

    async def fetch_events(
        self,
        uids: list[int],
        *,
        account: str,
        folder: str,
        uidvalidity: int,
        text_limit: int,
        include_headers: bool,
    ) -> list[MailEvent]:
        """Events for these UIDs in UID order (vanished UIDs are left out)."""
        fetched = await self.fetch_messages(uids, text_bytes=text_bytes_for(text_limit))
        return [
            build_event(
                fetched[uid],
                account=account,
                folder=folder,
                uidvalidity=uidvalidity,
                text_limit=text_limit,
                include_headers=include_headers,
            )
            for uid in sorted(fetched)
        ]

    async def fetch_full(self, uid: int) -> dict[str, Any]:
        """Return the whole message for the ``fetch`` action, attachments listed only.

        Text and HTML parts are read up to 1 MB each; attachment contents are
        not downloaded.
        """
        fetched = await self.fetch_messages([uid], text_bytes=0)
        message = fetched.get(uid)
        if message is None:
            raise MessageNotFoundError(f"no message with UID {uid} in {self.selected}")
        structure = message.structure
        parts = [p for p in (structure.plain, structure.html) if p is not None]
        data: dict[str, bytes | None] = {}
        if parts:
            items = " ".join(
                f"BODY.PEEK[{p.section}]<0.{FULL_TEXT_BYTES}>" for p in parts
            )
            async with self._lock:
                raw = await self._uid_fetch([uid], f"(UID {items})")
            item = raw.get(uid, {})
            data = {p.section: _section_data(item, p.section) for p in parts}
        plain = structure.plain
        html_part = structure.html
        text = _decode_part(
            data.get(plain.section) if plain else None, plain, as_text=True
        )
        html = _decode_part(
            data.get(html_part.section) if html_part else None, html_part, as_text=False
        )
        if not text and html:
            text = html_to_text(html)
        headers = parse_headers(message.header)
        event = event_from_parts(
            headers,
            account=self.settings.username,
            protocol="imap",
            folder=self.selected or "",
            uid=str(uid),
            uidvalidity=self.uidvalidity,
            text="",
            size=message.size,
            attachments=list(structure.attachments),
            text_limit=0,
            include_headers=False,
            internal_date=_iso(message.internal_date),
        )
        result = event.as_dict()
        del result["account"], result["protocol"], result["text"]
        header_map: dict[str, list[str]] = {}
        for name, value in headers.items():
            header_map.setdefault(name.lower(), []).append(decode_header_value(value))
        result |= {
            "text": text,
            "html": html or None,
            "headers": header_map,
            "flags": message.flags,
            "seen": "\\Seen" in message.flags,
        }
        return result

    async def attachment_candidates(self, uid: int) -> list[Candidate]:
        """List one message's attachments, each fetched alone when loaded.

        BODYSTRUCTURE says where each part is; loading one asks for that
        part only (``BODY.PEEK``, so the mail stays unread), at most as many
        octets as the size cap can take once encoded, and decodes it here.
        """
        fetched = await self.fetch_messages([uid], text_bytes=0)
        message = fetched.get(uid)
        if message is None:
            raise MessageNotFoundError(f"no message with UID {uid} in {self.selected}")
        structure = message.structure
        return [
            Candidate(info, partial(self._load_part, uid, part))
            for info, part in zip(structure.attachments, structure.parts, strict=True)
        ]

    async def _load_part(self, uid: int, part: PartRef, limit: int) -> bytes | None:
        """Fetch and decode one part; None when it is over ``limit`` decoded."""
        window = encoded_bound(limit, part.encoding)
        if part.octets >= window:
            return None
        async with self._lock:
            raw = await self._uid_fetch(
                [uid], f"(UID BODY.PEEK[{part.section}]<0.{window}>)"
            )
        data = _section_data(raw.get(uid, {}), part.section)
        if data is None:
            raise MessageNotFoundError(f"no part {part.section} in message {uid}")
        if len(data) >= window:  # the server sent more than BODYSTRUCTURE said
            return None
        decoded = attachment_bytes(data, part.encoding)
        return None if len(decoded) > limit else decoded

    # -- changing messages ---------------------------------------------------

    async def _require_uids(self, uids: list[int]) -> list[int]:
        wanted = sorted(set(uids))
        if not wanted:
            raise ValueError("no UIDs given")
        found = await self.existing(wanted)
        missing = [uid for uid in wanted if uid not in found]
        if missing:
            raise MessageNotFoundError(
                f"no message with UID {', '.join(map(str, missing))} in {self.selected}"
            )
        return wanted

    async def _store(self, uids: list[int], flags: str) -> None:
        for batch in _chunks(uids, BATCH_SIZE):
            async with self._lock:
                await self._ok(
                    self._command(
                        "STORE",
                        uid_set(batch),
                        "+FLAGS.SILENT",
                        flags,
                        prefix="UID",
                        untagged_resp_name="FETCH",
                    )
                )

    async def mark_seen(self, uids: list[int], *, check: bool = True) -> None:
        r"""Set ``\Seen``; unknown UIDs raise ``MessageNotFoundError`` when checked."""
        wanted = await self._require_uids(uids) if check else sorted(set(uids))
        if wanted:
            await self._store(wanted, "(\\Seen)")

    async def _expunge(self, uids: list[int]) -> None:
        for batch in _chunks(uids, BATCH_SIZE):
            async with self._lock:
                if "UIDPLUS" in self.capabilities:
                    await self._ok(
                        self._command("EXPUNGE", uid_set(batch), prefix="UID")
                    )
                else:
                    # Without UIDPLUS this also removes other \Deleted mail.
                    await self._ok(self._command("EXPUNGE"))

    async def move(self, uids: list[int], target: str) -> None:
        r"""MOVE when offered, else COPY + ``\Deleted`` + (UID) EXPUNGE."""
        wanted = await self._require_uids(uids)
        target = await self.resolve_folder(target)
        for batch in _chunks(wanted, BATCH_SIZE):
            if "MOVE" in self.capabilities:
                async with self._lock:
                    await self._ok(
                        self._command(
                            "MOVE", uid_set(batch), mailbox_arg(target), prefix="UID"
                        )
                    )
                continue
            async with self._lock:
                await self._ok(
                    self._command(
                        "COPY", uid_set(batch), mailbox_arg(target), prefix="UID"
                    )
                )
            await self._store(batch, "(\\Deleted)")
            await self._expunge(batch)

    async def delete(self, uids: list[int]) -> None:
        r"""Flag ``\Deleted`` and expunge these messages."""
        wanted = await self._require_uids(uids)
        await self._store(wanted, "(\\Deleted)")
        await self._expunge(wanted)


def _uid_span(last_uid: int, uidnext: int | None) -> str | None:
    """Return the UID range above the mark to ask for; None when it is empty."""
    first = last_uid + 1
    if uidnext is None:
        return f"{first}:*"
    last = min(uidnext - 1, last_uid + SEARCH_WINDOW)
    return None if last < first else f"{first}:{last}"


def _in_window(uids: Iterable[int], last_uid: int, uidnext: int | None) -> list[int]:
    """Keep the UIDs of the span, ascending, at most ``SEARCH_WINDOW``."""
    last = None if uidnext is None else min(uidnext - 1, last_uid + SEARCH_WINDOW)
    kept = sorted(
        uid for uid in set(uids) if uid > last_uid and (last is None or uid <= last)
    )
    return kept[:SEARCH_WINDOW]
