"""The test suite's aiosmtpd server, run in a process of its own for the benchmark.

In the test suite aiosmtpd runs in threads of the pytest process; for throughput
figures that would make the server share the interpreter (and its lock) with the
Home Assistant being measured. Here it gets its own process. Commands on stdin,
one per line: ``user <login> <password>`` and ``count <text>`` (how many
accepted messages have ``text`` in their Subject); each is answered with one line.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

from tests.mailserver import SmtpServer, TestCertificate
from tests.mailserver.smtp import ReceivedMessage


def main() -> None:
    """Start the listeners, print the ports, then serve commands from stdin."""
    cert = TestCertificate(Path(sys.argv[1]), Path(sys.argv[2]))
    server = SmtpServer(cert)
    received: list[bytes] = []
    lock = threading.Lock()
    subjects: Counter[str] = Counter()

    def remember(message: ReceivedMessage) -> None:
        # Parsing waits for "count": the reply to DATA should cost what a
        # server's does, not the benchmark's bookkeeping.
        with lock:
            received.append(message.data)

    def count(text: str) -> int:
        with lock:
            pending, received[:] = list(received), []
        for data in pending:
            subjects[
                str(message_from_bytes(data, policy=policy.default)["Subject"])
            ] += 1
        return sum(n for s, n in subjects.items() if text in s)

    server.relay = remember
    server.start()
    print("PORTS", server.ports["starttls"], server.ports["ssl"], server.ports["plain"])
    sys.stdout.flush()
    try:
        for line in sys.stdin:
            command, _, rest = line.strip().partition(" ")
            if command == "user":
                login, password = rest.split(" ", 1)
                server.add_user(login, password)
                print("ok")
            elif command == "count":
                print(count(rest))
            sys.stdout.flush()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
