"""Verbose mode: the protocol conversation on stderr, the password masked."""

from __future__ import annotations

import base64
import contextlib
import logging
import sys

from custom_components.mail_relay.mail.imap import quote
from custom_components.mail_relay.mail.trace import MASK, SEND, Trace

_WIRE = logging.getLogger("mail_relay.wire")


class Masker(logging.Filter):
    """Hide the password in everything logged, in every form it travels in.

    The core masks credentials in the conversation where it builds each line;
    this filter is the second line of defence for everything else logged (an
    exception text, a server echoing a line): the password and its base64 and
    quoted forms are replaced wherever they occur.
    """

    def __init__(self) -> None:
        """Start with no secret known."""
        super().__init__()
        self._secrets: list[str] = []

    def add(self, username: str, password: str) -> None:
        """Learn a password (and its encodings) to hide."""
        if not password:
            return

        def b64(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        forms = {
            password,
            b64(password),
            b64(f"\0{username}\0{password}"),
            b64(f"{username}\0{username}\0{password}"),
        }
        with contextlib.suppress(ValueError):
            forms.add(quote(password)[1:-1])
        self._secrets = sorted(
            set(self._secrets) | {f for f in forms if f}, key=len, reverse=True
        )

    def scrub(self, text: str) -> str:
        """Replace every known secret."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub every record that reaches the handler."""
        record.msg = self.scrub(record.getMessage())
        record.args = None
        return True


MASKER = Masker()
WIRE_MAX_LINES = 20


def trace(protocol: str, direction: str, data: bytes) -> None:
    """Log a piece of the conversation (the core's trace hook), a record a line."""
    label = "C" if direction == SEND else "S"
    lines = data.decode("utf-8", "replace").splitlines()
    for line in lines[:WIRE_MAX_LINES]:
        _WIRE.debug("%s %s: %s", protocol, label, line)
    if len(lines) > WIRE_MAX_LINES:
        _WIRE.debug(
            "%s %s: ... (%d more lines)", protocol, label, len(lines) - WIRE_MAX_LINES
        )


def tracer() -> Trace | None:
    """Return the trace hook for the core's clients: with ``--verbose`` only."""
    return trace if _WIRE.isEnabledFor(logging.DEBUG) else None


def setup_logging(*, verbose: bool) -> None:
    """Warnings always, the conversation and debug details with --verbose."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(MASKER)
    handler.setFormatter(
        logging.Formatter("%(message)s" if verbose else "%(levelname)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # "maximum number of running instances reached" is coalescing at work.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    if verbose:
        _WIRE.setLevel(logging.DEBUG)
        logging.getLogger("custom_components.mail_relay").setLevel(logging.DEBUG)
