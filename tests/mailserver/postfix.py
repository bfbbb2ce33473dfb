"""Postfix submission started from a generated configuration in a temporary directory.

Unpacked from Debian's package by ``scripts/setup`` (``unpacked.py``), never
installed. Its ``master`` runs in the foreground with two listeners, both
requiring SASL: submission (STARTTLS required before AUTH) and submissions
(implicit TLS). Accepted mail for the test domain goes by LMTP into the
mailbox server given; SASL is that server's: Dovecot's auth service over TCP,
or Cyrus SASL reading Cyrus's sasldb. Root only: Postfix runs its services as
an unprivileged user (``daemon`` here, ``mail`` as its setgid group).
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .certs import TestCertificate
from .cyrus import CyrusServer
from .dovecot import DOMAIN, DovecotServer
from .ports import free_port, wait_for_port
from .processes import stop_server
from .unpacked import environment, packages_root, program

SBIN = "usr/lib/postfix/sbin"
QUEUE_DIRS = (
    "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
    "incoming", "maildrop", "private", "public", "saved", "trace",
)  # fmt: skip


def postfix_missing() -> str | None:
    """Why Postfix cannot run here, or None when it can."""
    if os.getuid() != 0:
        return "Postfix runs its services as another user: the tests must run as root"
    for path in (f"{SBIN}/master", f"{SBIN}/smtpd", "usr/sbin/postconf"):
        if not program(path).exists():
            return (
                f"Postfix is not unpacked ({program(path)} is missing):"
                " run scripts/setup"
            )
    return None


@functools.cache
def postfix_version() -> str:
    """Return the unpacked Postfix's version, e.g. ``3.7.11``."""
    out = subprocess.run(
        [str(program("usr/sbin/postconf")), "-d", "-h", "mail_version"],
        capture_output=True,
        text=True,
        env=environment(),
        check=False,
    ).stdout.strip()
    return out if re.fullmatch(r"[\d.]+", out) else "unknown"


class PostfixServer:
    """Postfix submission (587-style STARTTLS) and submissions (465-style TLS).

    ``relay_to``: the mailbox server mail for the test domain is delivered to
    by LMTP; its family decides the SASL (``dovecot``: the auth service's TCP
    port; ``cyrus``: Cyrus SASL on the server's sasldb).
    """

    def __init__(
        self, cert: TestCertificate, relay_to: DovecotServer | CyrusServer
    ) -> None:
        """Prepare the configuration; ``start()`` runs the server."""
        self.directory = Path(tempfile.mkdtemp(prefix="mailrelay-postfix-"))
        self.directory.chmod(0o755)
        self.version = postfix_version()
        self.host = "127.0.0.1"
        self.relay_to = relay_to
        self.starttls_port = free_port()
        self.ssl_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._owner = pwd.getpwnam("daemon")
        self._setgid = grp.getgrnam("mail")
        d = self.directory
        (d / "etc").mkdir()
        (d / "data").mkdir()
        queue = d / "queue"
        queue.mkdir()
        shutil.copy(cert.cert, d / "etc" / "cert.pem")
        shutil.copy(cert.key, d / "etc" / "key.pem")
        (d / "etc" / "main.cf").write_text(self._render_main())
        (d / "etc" / "master.cf").write_text(self._render_master())
        if isinstance(relay_to, CyrusServer):
            (d / "etc" / "sasl").mkdir()
            (d / "etc" / "sasl" / "smtpd.conf").write_text(
                "pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
                f"sasldb_path: {relay_to.sasldb}\n"
                "mech_list: PLAIN LOGIN\n"
            )
        uid, gid = self._owner.pw_uid, self._owner.pw_gid
        os.chown(d / "data", uid, gid)
        (queue / "pid").mkdir()
        for name in QUEUE_DIRS:
            path = queue / name
            path.mkdir()
            os.chown(path, uid, gid)
            path.chmod(0o700)
        for name, mode in (("maildrop", 0o730), ("public", 0o710)):
            os.chown(queue / name, uid, self._setgid.gr_gid)
            (queue / name).chmod(mode)

    # -- configuration -------------------------------------------------

    def _render_main(self) -> str:
        d = self.directory
        root = packages_root()
        relay = self.relay_to
        if isinstance(relay, CyrusServer):
            sasl = (
                "smtpd_sasl_type = cyrus\nsmtpd_sasl_path = smtpd\n"
                f"cyrus_sasl_config_path = {d}/etc/sasl\n"
            )
        else:
            sasl = (
                "smtpd_sasl_type = dovecot\n"
                f"smtpd_sasl_path = inet:127.0.0.1:{relay.auth_port}\n"
            )
        env = environment()
        imported = " ".join(
            f"{name}={env[name]}"
            for name in ("LD_LIBRARY_PATH", "SASL_PATH")
            if name in env
        )
        return f"""compatibility_level = 3.6
config_directory = {d}/etc
queue_directory = {d}/queue
data_directory = {d}/data
daemon_directory = {root}/{SBIN}
command_directory = {root}/usr/sbin
shlib_directory = {root}/usr/lib/postfix
meta_directory = {root}/etc/postfix
mail_owner = {self._owner.pw_name}
setgid_group = {self._setgid.gr_name}
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C {imported}
maillog_file = {d}/postfix.log
maillog_file_prefixes = {d}
syslog_name = mailrelay-postfix
myhostname = smtp.{DOMAIN}
mydomain = {DOMAIN}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
virtual_mailbox_domains = {DOMAIN}
virtual_transport = lmtp:inet:{relay.host}:{relay.lmtp_port}
smtpd_reject_unlisted_recipient = no
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_tls_cert_file = {d}/etc/cert.pem
smtpd_tls_key_file = {d}/etc/key.pem
smtpd_tls_session_cache_database =
smtp_tls_session_cache_database =
smtpd_sasl_auth_enable = yes
smtpd_tls_auth_only = yes
broken_sasl_auth_clients = no
{sasl}biff = no
append_dot_mydomain = no
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = yes
"""

    def _render_master(self) -> str:
        services = [
            f"127.0.0.1:{self.starttls_port} inet n - n - - smtpd"
            " -o smtpd_tls_security_level=encrypt",
            f"127.0.0.1:{self.ssl_port} inet n - n - - smtpd"
            " -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "lmtp unix - - n - - lmtp",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        return "\n".join(services) + "\n"

    # -- lifecycle -----------------------------------------------------

    @property
    def log(self) -> str:
        """Return Postfix's log so far (for failure messages)."""
        path = self.directory / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        """Start Postfix's master in the foreground and wait for both ports."""
        self._process = subprocess.Popen(
            [str(program(f"{SBIN}/master")), "-c", str(self.directory / "etc"), "-d"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**environment(), "MAIL_CONFIG": str(self.directory / "etc")},
            start_new_session=True,
        )
        try:
            for port in (self.starttls_port, self.ssl_port):
                wait_for_port(port)
        except TimeoutError:
            stderr = b""
            if self._process.poll() is not None and self._process.stderr is not None:
                stderr = self._process.stderr.read()
            self.stop()
            raise RuntimeError(
                f"Postfix did not start:\n{stderr.decode(errors='replace')}{self.log}"
            ) from None

    def stop(self) -> None:
        """Stop the master and its services."""
        if self._process is None:
            return
        process, self._process = self._process, None
        stop_server(process, (self.starttls_port, self.ssl_port))

    def cleanup(self) -> None:
        """Stop and delete every file the server wrote."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
