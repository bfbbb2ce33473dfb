"""Verbose mode: the protocol conversation on stderr, the password masked."""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import sys
from collections.abc import Callable
from typing import Any

from custom_components.mail_relay.mail.imap import quote

_WIRE = logging.getLogger("mail_relay.wire")


_LOGIN_LINE = re.compile(
    r'^(?P<keep>(?:\S+ )?LOGIN (?:"(?:[^"\\]|\\.)*"|\S+) ).*$', re.IGNORECASE
)
_PASS_LINE = re.compile(r"^(?P<keep>PASS ).*$", re.IGNORECASE)
_AUTH_LINE = re.compile(
    r"^(?P<keep>(?:\S+ )?AUTH(?:ENTICATE)? \S+)(?P<rest> .*)?$", re.IGNORECASE
)
MASK = "****"


class Masker(logging.Filter):
    """Hide the password in everything logged, in every form it travels in.

    Client lines are masked by shape (LOGIN/PASS arguments, AUTH initial
    responses and the answers to the server's challenges); on top of that,
    the password itself and its base64 forms are replaced wherever they occur.
    """

    def __init__(self) -> None:
        """Start with no secret known."""
        super().__init__()
        self._secrets: list[str] = []
        self._in_auth: dict[str, bool] = {}

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

    def line(self, proto: str, direction: str, line: str) -> str:
        """Mask one line of the conversation."""
        if direction == "S":
            if not (line.startswith(("334", "+ ")) or line == "+"):
                self._in_auth[proto] = False
            return self.scrub(line)
        if self._in_auth.get(proto):
            return MASK
        if match := _LOGIN_LINE.match(line):
            return match["keep"] + MASK
        if match := _PASS_LINE.match(line):
            return match["keep"] + MASK
        if match := _AUTH_LINE.match(line):
            self._in_auth[proto] = True
            return match["keep"] + (" " + MASK if match["rest"] else "")
        return self.scrub(line)

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub every record that reaches the handler."""
        record.msg = self.scrub(record.getMessage())
        record.args = None
        return True


MASKER = Masker()
WIRE_MAX_LINES = 20


def wire(proto: str, direction: str, data: bytes | str) -> None:
    """Log what went over the wire (decrypted), one record per line."""
    if not _WIRE.isEnabledFor(logging.DEBUG):
        return
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    lines = text.splitlines()
    for line in lines[:WIRE_MAX_LINES]:
        _WIRE.debug("%s %s: %s", proto, direction, MASKER.line(proto, direction, line))
    if len(lines) > WIRE_MAX_LINES:
        _WIRE.debug(
            "%s %s: ... (%d more lines)", proto, direction, len(lines) - WIRE_MAX_LINES
        )


def _tap(cls: type, name: str, before: Callable[..., None]) -> None:
    """Call ``before`` with the arguments of ``cls.name`` on every call."""
    original = getattr(cls, name)

    def tapped(self: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        before(self, *args, **kwargs)
        return original(self, *args, **kwargs)

    setattr(cls, name, tapped)


def _tap_result(cls: type, name: str, after: Callable[[Any], None]) -> None:
    """Call ``after`` with what ``cls.name`` returned."""
    original = getattr(cls, name)

    def tapped(self: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        result = original(self, *args, **kwargs)
        after(result)
        return result

    setattr(cls, name, tapped)


def install_wire_taps() -> None:
    """Show the conversation of every protocol client (``--verbose`` only).

    aiosmtplib and our POP3 client do not log their traffic, and our IMAP
    LOGIN bypasses aioimaplib's logging on purpose, so the CLI taps the few
    methods where lines go in and out. Only this process is affected.
    """
    from aioimaplib import aioimaplib as aioimap
    from aiosmtplib.protocol import SMTPProtocol

    from custom_components.mail_relay.mail import imap, pop3

    _tap(SMTPProtocol, "data_received", lambda _s, data: wire("smtp", "S", data))
    _tap(SMTPProtocol, "write", lambda _s, data: wire("smtp", "C", data))
    _tap(imap._Protocol, "data_received", lambda _s, data: wire("imap", "S", data))
    _tap(
        aioimap.IMAP4ClientProtocol,
        "send",
        lambda _s, line, *_a, **_k: wire("imap", "C", line),
    )
    _tap(
        imap.ImapClient,
        "_login",
        lambda client, _proto: wire(
            "imap", "C", f"LOGIN {quote(client.settings.username)} {MASK}"
        ),
    )
    _tap(pop3._Client, "send", lambda _s, line: wire("pop3", "C", line))
    _tap_result(pop3._Client, "_getline", lambda res: wire("pop3", "S", res[0]))
    _tap_result(pop3._Client, "multiline", lambda res: wire("pop3", "S", res[0]))


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
        install_wire_taps()
