"""The demo mail server behind ``scripts/develop``.

Starts Dovecot and the SMTP listeners on fixed loopback ports with one demo
account, relays mail sent through SMTP into that mailbox, publishes the demo
domain's settings in an ISP database (``config/configuration.yaml`` points
``mail_relay: ispdb_url:`` at it, so the setup wizard finds the servers from the
address alone), and runs until interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .certs import make_certificate
from .dovecot import DOMAIN, DovecotServer, make_message
from .http import config_xml
from .smtp import SmtpServer

DEMO_PORTS = {
    "imap": 10143,
    "imaps": 10993,
    "pop3": 10110,
    "pop3s": 10995,
    "lmtp": 10024,
}
DEMO_SMTP_PORTS = {"starttls": 10587, "ssl": 10465, "plain": 10025}
# The ISP database: the same URL as `ispdb_url` in config/configuration.yaml.
DEMO_ISPDB_PORT = 10080
DEMO_ISPDB_URL = f"http://127.0.0.1:{DEMO_ISPDB_PORT}/v1.1/"


def demo_config_xml() -> str:
    """Return the demo domain's config-v1.1.xml (the fixed ports above)."""
    return config_xml(
        domain=DOMAIN,
        name="Mail Relay demo mail",
        imap=("127.0.0.1", DEMO_PORTS["imaps"], "SSL"),
        pop3=("127.0.0.1", DEMO_PORTS["pop3s"], "SSL"),
        smtp=("127.0.0.1", DEMO_SMTP_PORTS["starttls"], "STARTTLS"),
    )


def start_ispdb(
    files: dict[str, str], port: int = DEMO_ISPDB_PORT
) -> ThreadingHTTPServer:
    """Serve ``files`` ({path: xml}) on 127.0.0.1:port in a thread; 404 otherwise."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path.split("?", 1)[0])
            self.send_response(404 if body is None else 200)
            data = (body or "not found").encode()
            self.send_header("Content-Type", "text/xml" if body else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            """Stay quiet: Home Assistant's debug log shows each lookup."""

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(
        target=server.serve_forever, name="demo-ispdb", daemon=True
    ).start()
    return server


def main() -> int:
    """Run the demo servers until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cert-dir", type=Path, required=True)
    parser.add_argument("--password", default="demo-password")
    args = parser.parse_args()

    cert = make_certificate(args.cert_dir)
    dovecot = DovecotServer(cert, ports=DEMO_PORTS)
    smtp = SmtpServer(cert, ports=DEMO_SMTP_PORTS)
    ispdb: ThreadingHTTPServer | None = None
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
        # Started last: scripts/develop waits for this port before Home Assistant.
        ispdb = start_ispdb({f"/v1.1/{DOMAIN}": demo_config_xml()})
        print(
            "Demo mail server ready (certificate: {cert})\n"
            "  account   {address}\n"
            "  password  {password}\n"
            "  IMAP      127.0.0.1:{imap} (STARTTLS)   IMAPS 127.0.0.1:{imaps}\n"
            "  POP3      127.0.0.1:{pop3} (STLS)       POP3S 127.0.0.1:{pop3s}\n"
            "  SMTP      127.0.0.1:{starttls} (STARTTLS), {ssl} (SSL), {plain} (plain)\n"
            "  LMTP      127.0.0.1:{lmtp} (deliver test mail here)\n"
            "  ISPDB     {ispdb} (the setup wizard finds the servers there)".format(
                cert=cert.cert,
                ispdb=DEMO_ISPDB_URL,
                address=user.address,
                password=user.password,
                **DEMO_PORTS,
                **DEMO_SMTP_PORTS,
            ),
            flush=True,
        )
        stop.wait()
    finally:
        if ispdb is not None:
            ispdb.shutdown()
            ispdb.server_close()
        smtp.stop()
        dovecot.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
