"""Cyrus IMAP started from a generated configuration in a temporary directory.

The Debian packages are unpacked by ``scripts/setup`` (``unpacked.py``), never
installed: no system service, no conflict with Dovecot's packages. One
``master`` runs IMAP (+STARTTLS), IMAPS, POP3 (+STLS), POP3S, LMTP and
``idled`` (without it Cyrus answers IDLE by polling every 60 s). Users are SASL
users in a sasldb file; folders live under ``INBOX.`` with ``.`` (Cyrus's
standard namespace), as on Courier.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from .certs import TestCertificate
from .dovecot import DOMAIN, MailUser
from .ports import free_port, wait_for_port
from .processes import lmtp_deliver, stop_server
from .smtp import ReceivedMessage
from .unpacked import environment, packages_root, program

BIN = "usr/lib/cyrus/bin"
SASLPASSWD = "usr/sbin/saslpasswd2"


def cyrus_missing() -> str | None:
    """Why Cyrus cannot run here, or None when it can."""
    for path in (f"{BIN}/master", f"{BIN}/imapd", f"{BIN}/pop3d", SASLPASSWD):
        if not program(path).exists():
            return (
                f"Cyrus is not unpacked ({program(path)} is missing): run scripts/setup"
            )
    return None


@functools.cache
def cyrus_version() -> str:
    """Return the unpacked Cyrus's version (from its package), e.g. ``3.6.1``."""
    debs = sorted((packages_root().parent / "debs").glob("cyrus-common_*.deb"))
    found = (
        re.match(r"cyrus-common_(?:\d+%3a)?([\d.]+)", debs[-1].name) if debs else None
    )
    return found.group(1) if found else "unknown"


class CyrusServer:
    """One Cyrus instance with the ports and methods of ``DovecotServer``.

    With ``tls=False`` it offers neither STARTTLS/STLS nor the implicit-TLS
    ports, for the tests that prove a STARTTLS account fails closed.
    """

    family = "cyrus"

    def __init__(
        self,
        cert: TestCertificate,
        *,
        tls: bool = True,
        ports: dict[str, int] | None = None,
    ) -> None:
        """Prepare the configuration; ``start()`` runs the server."""
        self.directory = Path(tempfile.mkdtemp(prefix="mailrelay-cyrus-"))
        self.directory.chmod(0o755)
        self.version = cyrus_version()
        self.version_info: tuple[int, ...] = tuple(
            int(part) for part in self.version.split(".") if part.isdigit()
        )
        self.tls = tls
        self.host = "127.0.0.1"
        fixed = ports or {}
        self.imap_port = fixed.get("imap") or free_port()
        self.pop3_port = fixed.get("pop3") or free_port()
        self.lmtp_port = fixed.get("lmtp") or free_port()
        self.imaps_port = (fixed.get("imaps") or free_port()) if tls else 0
        self.pop3s_port = (fixed.get("pop3s") or free_port()) if tls else 0
        self._process: subprocess.Popen[bytes] | None = None
        self._users: set[str] = set()
        # Cyrus refuses to run as root: as root, its services run as "daemon".
        if os.getuid() == 0:
            self._user = pwd.getpwnam("daemon")
        else:
            self._user = pwd.getpwuid(os.getuid())
        d = self.directory
        # Each imapd binds its own IDLE socket next to idled's, in
        # configdirectory/socket (without it: "bind: No such file", no push).
        for sub in ("lib", "lib/socket", "spool", "sieve", "run"):
            (d / sub).mkdir()
        # The certificate sits in pytest's private tmp dir: copy it where the
        # services' user can read it.
        shutil.copy(cert.cert, d / "cert.pem")
        shutil.copy(cert.key, d / "key.pem")
        self._config = d / "imapd.conf"
        self._config.write_text(self._render_imapd())
        self._services = d / "cyrus.conf"
        self._services.write_text(self._render_services())
        self.sasldb = d / "sasldb2"  # Postfix's SASL reads it too
        for path in (d, *d.rglob("*")):
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    # -- configuration -------------------------------------------------

    def _render_imapd(self) -> str:
        d = self.directory
        tls = (
            f"tls_server_cert: {d}/cert.pem\ntls_server_key: {d}/key.pem\n"
            if self.tls
            else ""
        )
        if self.tls and self.version_info >= (3, 10, 2):
            # 3.10.2 and 3.12.1 turned STARTTLS off by default; enabled per service.
            tls += "imap_allowstarttls: on\npop3_allowstarttls: on\n"
        group = grp.getgrgid(self._user.pw_gid).gr_name
        return f"""configdirectory: {d}/lib
partition-default: {d}/spool
sievedir: {d}/sieve
idlesocket: {d}/lib/socket/idle
lmtpsocket: {d}/lib/socket/lmtp
notifysocket: {d}/lib/socket/notify
mboxname_lockpath: {d}/lib/lock
proc_path: {d}/run/proc
statuscache_db_path: {d}/lib/statuscache.db
duplicate_db_path: {d}/lib/deliver.db
ptscache_db_path: {d}/lib/ptscache.db
tls_sessions_db_path: {d}/lib/tls_sessions.db
cyrus_user: {self._user.pw_name}
cyrus_group: {group}
syslog_prefix: mailrelay-cyrus-{self.imap_port}
virtdomains: userid
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {d}/sasldb2
sasl_mech_list: PLAIN LOGIN
altnamespace: no
unixhierarchysep: no
autocreate_post: 1
autocreate_quota: 0
lmtp_downcase_rcpt: yes
{tls}"""

    def _render_services(self) -> str:
        d = self.directory
        cmd = {name: program(f"{BIN}/{name}") for name in ("imapd", "pop3d", "lmtpd")}
        conf = f"-C {d}/imapd.conf"
        services = [
            f'imap cmd="{cmd["imapd"]} {conf}" listen="127.0.0.1:{self.imap_port}"',
            f'pop3 cmd="{cmd["pop3d"]} {conf}" listen="127.0.0.1:{self.pop3_port}"',
            f'lmtp cmd="{cmd["lmtpd"]} -a {conf}" listen="127.0.0.1:{self.lmtp_port}"',
        ]
        if self.tls:
            services += [
                f'imaps cmd="{cmd["imapd"]} -s {conf}"'
                f' listen="127.0.0.1:{self.imaps_port}"',
                f'pop3s cmd="{cmd["pop3d"]} -s {conf}"'
                f' listen="127.0.0.1:{self.pop3s_port}"',
            ]
        lines = "\n".join(f"  {s} prefork=0" for s in services)
        recover = program(f"{BIN}/ctl_cyrusdb")
        idled = program(f"{BIN}/idled")
        return f"""START {{
  recover cmd="{recover} -r {conf}"
}}
SERVICES {{
{lines}
}}
EVENTS {{
}}
DAEMON {{
  idled cmd="{idled} {conf}"
}}
"""

    # -- lifecycle -----------------------------------------------------

    def start(self) -> None:
        """Start Cyrus's master in the foreground and wait for every port."""
        d = self.directory
        self._process = subprocess.Popen(
            [
                str(program(f"{BIN}/master")),
                "-C",
                str(self._config),
                "-M",
                str(self._services),
                "-p",
                str(d / "run" / "master.pid"),
                "-D",
            ],  # fmt: skip
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=environment(),
            start_new_session=True,
        )
        try:
            for port in self.ports():
                wait_for_port(port)
        except TimeoutError:
            stderr = b""
            if self._process.poll() is not None and self._process.stderr is not None:
                stderr = self._process.stderr.read()
            self.stop()
            raise RuntimeError(
                f"Cyrus did not start:\n{stderr.decode(errors='replace')}"
            ) from None

    def ports(self) -> list[int]:
        """Return every port this server listens on."""
        ports = [self.imap_port, self.pop3_port, self.lmtp_port]
        if self.tls:
            ports += [self.imaps_port, self.pop3s_port]
        return ports

    def stop(self) -> None:
        """Stop the master and every service process it started."""
        if self._process is None:
            return
        process, self._process = self._process, None
        stop_server(process, self.ports())

    def restart(self) -> None:
        """Stop and start again on the same ports, keeping all mail."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop and delete every file the server wrote."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def running(self) -> bool:
        """Return whether the master process is alive."""
        return self._process is not None and self._process.poll() is None

    # -- users and mail ------------------------------------------------

    def add_user(
        self, local_part: str | None = None, password: str | None = None
    ) -> MailUser:
        """Create a SASL user; its INBOX is made at the first delivery or login."""
        local = local_part or f"user-{secrets.token_hex(4)}"
        user = MailUser(f"{local}@{DOMAIN}", password or secrets.token_urlsafe(12))
        subprocess.run(
            [
                str(program(SASLPASSWD)),
                "-f",
                str(self.sasldb),
                "-c",
                "-p",
                user.address,
            ],  # fmt: skip
            input=user.password.encode(),
            env=environment(),
            check=True,
            capture_output=True,
        )
        os.chown(self.sasldb, self._user.pw_uid, self._user.pw_gid)
        self._users.add(user.address)
        return user

    def deliver(
        self,
        user: MailUser,
        messages: list[bytes] | bytes,
        sender: str = "sender@example.org",
    ) -> None:
        """Deliver messages through LMTP, as a real MTA would, in one session."""
        if isinstance(messages, bytes):
            messages = [messages]
        lmtp_deliver(self.host, self.lmtp_port, sender, [user.address], messages)

    def relay_to_lmtp(self, message: ReceivedMessage) -> None:
        """Hand a message the SMTP server accepted to its local recipients."""
        recipients = [rcpt for rcpt in message.rcpt_tos if rcpt in self._users]
        if recipients:
            lmtp_deliver(
                self.host,
                self.lmtp_port,
                message.mail_from,
                recipients,
                [message.data],
            )
