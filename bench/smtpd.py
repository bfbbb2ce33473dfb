"""The test suite's aiosmtpd server, run in a process of its own for the benchmark.

In the test suite aiosmtpd runs in threads of the pytest process; for throughput
figures that would make the server share the interpreter (and its lock) with the
Home Assistant being measured. Here it gets its own process. Commands on stdin,
one per line: ``user <login> <password>`` and ``count <text>`` (how many accepted
messages have ``text`` in their Subject); each is answered with one line.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from tests.mailserver import SmtpServer, TestCertificate
from tests.mailserver.smtp import ReceivedMessage


def main() -> None:
    """Start the listeners, print the ports, then serve commands from stdin."""
    cert = TestCertificate(Path(sys.argv[1]), Path(sys.argv[2]))
    server = SmtpServer(cert)
    subjects: Counter[str] = Counter()

    def remember(message: ReceivedMessage) -> None:
        subjects[str(message.parsed()["Subject"])] += 1

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
                print(sum(n for s, n in subjects.items() if rest in s))
            sys.stdout.flush()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
