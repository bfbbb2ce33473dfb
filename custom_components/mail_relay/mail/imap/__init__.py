"""IMAP: one client for actions and a watcher that turns new mail into events.

Built on aioimaplib's protocol object, but the parts that matter for a watcher
that must never hang or lose mail are ours: STARTTLS (aioimaplib has none),
LOGIN without the password ever entering a log or an exception text, timeouts
on every wait, pending commands failed at once when the connection drops
(aioimaplib would leave them waiting forever after a BYE), and a tolerant
parser for FETCH responses and BODYSTRUCTURE. Hosts see the wire through the
public trace hook (``trace``), with the LOGIN password masked where the line
is built.

The modules: ``syntax`` (quoting, folder names, UID sets), ``parse`` (the
tolerant answer parsers), ``adapter`` (the one module that touches
aioimaplib, private names included), ``client`` (``ImapClient``) and
``watcher`` (``ImapWatcher``). The public names are re-exported here.
"""

from __future__ import annotations

from .client import BATCH_SIZE, FULL_TEXT_BYTES, SENT_FOLDER_NAMES, ImapClient
from .parse import (
    MAX_TEXT_BYTES,
    MIN_TEXT_BYTES,
    EstimatedSize,
    FetchedMessage,
    ListEntry,
    Namespace,
    Structure,
    TextPart,
    build_event,
    parse_bodystructure,
    parse_data,
    parse_fetch,
    parse_internaldate,
    parse_list,
    parse_namespace,
    response_data,
    text_bytes_for,
)
from .syntax import decode_mailbox, encode_mailbox, mailbox_arg, quote, uid_set
from .watcher import FolderState, ImapWatcher, WatchStatus

__all__ = [
    "BATCH_SIZE",
    "FULL_TEXT_BYTES",
    "MAX_TEXT_BYTES",
    "MIN_TEXT_BYTES",
    "SENT_FOLDER_NAMES",
    "EstimatedSize",
    "FetchedMessage",
    "FolderState",
    "ImapClient",
    "ImapWatcher",
    "ListEntry",
    "Namespace",
    "Structure",
    "TextPart",
    "WatchStatus",
    "build_event",
    "decode_mailbox",
    "encode_mailbox",
    "mailbox_arg",
    "parse_bodystructure",
    "parse_data",
    "parse_fetch",
    "parse_internaldate",
    "parse_list",
    "parse_namespace",
    "quote",
    "response_data",
    "text_bytes_for",
    "uid_set",
]
