"""The demo mail server behind ``scripts/develop``.

Starts Dovecot and the SMTP listeners on fixed loopback ports with one demo
account, relays mail sent through SMTP into that mailbox, and runs until
interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .certs import make_certificate
from .dovecot import DovecotServer, make_message
from .smtp import SmtpServer

DEMO_PORTS = {
    "imap": 10143,
    "imaps": 10993,
    "pop3": 10110,
    "pop3s": 10995,
    "lmtp": 10024,
}
DEMO_SMTP_PORTS = {"starttls": 10587, "ssl": 10465, "plain": 10025}


def main() -> int:
    """Run the demo servers until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cert-dir", type=Path, required=True)
    parser.add_argument("--password", default="demo-password")
    args = parser.parse_args()

    cert = make_certificate(args.cert_dir)
    dovecot = DovecotServer(cert, ports=DEMO_PORTS)
    smtp = SmtpServer(cert, ports=DEMO_SMTP_PORTS)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        dovecot.start()
        user = dovecot.add_user("demo", args.password)
        smtp.add_user(user.address, user.password)
        smtp.relay = dovecot.relay_to_lmtp
        smtp.start()
        dovecot.deliver(user, make_message("Welcome to Mail Relay", to=user.address))
        print(
            "Demo mail server ready (certificate: {cert})\n"
            "  account   {address}\n"
            "  password  {password}\n"
            "  IMAP      127.0.0.1:{imap} (STARTTLS)   IMAPS 127.0.0.1:{imaps}\n"
            "  POP3      127.0.0.1:{pop3} (STLS)       POP3S 127.0.0.1:{pop3s}\n"
            "  SMTP      127.0.0.1:{starttls} (STARTTLS), {ssl} (SSL), {plain} (plain)\n"
            "  LMTP      127.0.0.1:{lmtp} (deliver test mail here)".format(
                cert=cert.cert,
                address=user.address,
                password=user.password,
                **DEMO_PORTS,
                **DEMO_SMTP_PORTS,
            ),
            flush=True,
        )
        stop.wait()
    finally:
        smtp.stop()
        dovecot.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
