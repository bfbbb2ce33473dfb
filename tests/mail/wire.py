"""A trace hook for tests: keeps what went over the wire, counts bytes read."""

from __future__ import annotations

import threading

from custom_components.mail_relay.mail.trace import RECV, SEND


class Wire:
    """Record every ``trace(protocol, direction, data)`` call (POP3's come from threads)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, protocol: str, direction: str, data: bytes) -> None:
        with self._lock:
            self.calls.append((protocol, direction, data))

    @property
    def received(self) -> int:
        """Bytes the server sent (after TLS decryption)."""
        return sum(len(data) for _, direction, data in self.calls if direction == RECV)

    def sent(self) -> bytes:
        """Everything the client sent, as one byte string."""
        return b"".join(data for _, direction, data in self.calls if direction == SEND)

    def all(self) -> bytes:
        """Both directions, as one byte string."""
        return b"".join(data for _, _, data in self.calls)
