"""The trace hook: what a protocol client sends and receives, for diagnostics.

The IMAP client and watcher, the POP3 poller and the SMTP sender take
``trace(protocol, direction, data)``: ``protocol`` is ``"imap"``, ``"pop3"`` or
``"smtp"``, ``direction`` is ``SEND`` or ``RECV``, and ``data`` the bytes as
they go over the connection (decrypted). Hosts use it to show the conversation
(``mail-relay check --verbose``) or to count bytes (tests, benchmarks).

Credentials never reach it: each client masks them where it builds the line
that carries them, so no caller can see a password, an OAuth2 token or the
base64 SASL string that carries one (``AUTHENTICATE XOAUTH2 ****``). POP3 does its I/O in the
executor, so its trace runs in a worker thread; keep the callback quick and
thread-safe.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

type Trace = Callable[[str, str, bytes], None]

SEND: Final = "send"
RECV: Final = "recv"
MASK: Final = "****"

_AUTH = re.compile(rb"^((?:\S+ )?AUTH(?:ENTICATE)? \S+)( .*)?(\r?\n)?$", re.I | re.S)


def masked_auth(line: bytes) -> bytes:
    """Mask a client line of a SASL exchange, keeping only the mechanism.

    ``AUTH PLAIN <token>`` becomes ``AUTH PLAIN ****``; any other line (an
    answer to the server's challenge) becomes ``****``.
    """
    end = b"\r\n" if line.endswith(b"\n") else b""
    if match := _AUTH.match(line):
        return match[1] + (b" " + MASK.encode() if match[2] else b"") + end
    return MASK.encode() + end
