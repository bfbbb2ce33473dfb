"""Dovecot started from a generated configuration in a temporary directory."""

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
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from .certs import TestCertificate
from .oauth import INTROSPECTION_CLIENT, MAIL_SCOPE, OAuthServer
from .ports import free_port, wait_for_port
from .processes import lmtp_deliver, stop_server
from .smtp import ReceivedMessage

DOMAIN = "mailrelay.test"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


@functools.cache
def dovecot_version() -> str:
    """Return the installed Dovecot's version number, e.g. ``2.3.19.1``."""
    out = subprocess.run(
        [DOVECOT, "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.match(r"\d+(?:\.\d+)*", out.strip())
    if found is None:
        raise RuntimeError(f"cannot read the Dovecot version from {out!r}")
    return found.group()


@dataclass(frozen=True)
class _Syntax:
    """How one Dovecot generation spells the settings 2.4 renamed.

    Everything else in the configuration reads the same in 2.3 and 2.4.
    """

    user: str  # the login, as a variable
    cleartext: str  # allow plaintext logins without TLS
    mail: str  # maildir in ~/Maildir
    uidl: str  # UID and UIDVALIDITY as 8 lower-case hex digits each
    # POP3 logout line: 'top=N/bytes, retr=N/bytes, del=N/messages, size=bytes'
    # (2.3's default; 2.4's default counts deleted bytes after del=).
    pop3_logout: str
    # What the log says of a login that succeeded, and of a connection that
    # ended before any login (tests count these).
    logged_in: str
    login_dropped: str
    ssl_file: str  # a PEM file setting, from name (cert, key, dh) and path
    users: str  # passdb and userdb, from files, uid, gid and home
    # OAuth2 (XOAUTH2, OAUTHBEARER) checked by introspection at {url}; 2.3 reads
    # the settings from a file ({ext}) named by a passdb, 2.4 from the main
    # configuration (its mechanism needs no passdb).
    oauth: str


_SYNTAX_23 = _Syntax(
    user="%u",
    cleartext="disable_plaintext_auth = no",
    mail="mail_location = maildir:~/Maildir",
    uidl="%08Xu%08Xv",
    pop3_logout="top=%t/%p, retr=%r/%b, del=%d/%m, size=%s",
    logged_in="Login: user=<{user}>",
    login_dropped="{protocol}-login: Info: Disconnected",
    ssl_file="ssl_{name} = <{path}",
    users="""passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {files}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {files}
  default_fields = uid={uid} gid={gid} home={home}
}}""",
    oauth="""passdb {{
  driver = oauth2
  mechanisms = {mechanisms}
  args = {ext}
}}""",
)

_SYNTAX_24 = _Syntax(
    user="%{user}",
    cleartext="auth_allow_cleartext = yes",
    mail="mail_driver = maildir\nmail_path = ~/Maildir",
    uidl="%{uid | hex(8)}%{uidvalidity | hex(8)}",
    pop3_logout="top=%{top_count}/%{top_bytes}, retr=%{retr_count}/%{retr_bytes}, "
    "del=%{deleted_count}/%{message_count}, size=%{message_bytes}",
    logged_in="Logged in: user=<{user}>",
    login_dropped="{protocol}-login: Info: Login aborted",
    ssl_file="ssl_server_{name}_file = {path}",
    users="""passdb users {{
  driver = passwd-file
  passwd_file_path = {files}
  default_password_scheme = PLAIN
}}
userdb users {{
  driver = passwd-file
  passwd_file_path = {files}
  fields {{
    uid = {uid}
    gid = {gid}
    home = {home}
  }}
}}""",
    oauth="""{settings}""",
)


@dataclass(frozen=True)
class MailUser:
    """A mailbox on the test server; the login is the full address."""

    address: str
    password: str

    @property
    def username(self) -> str:
        """Return the login name (the full address)."""
        return self.address


def make_message(
    subject: str = "Test message",
    body: str = "Hello from the test server.",
    sender: str = "sender@example.org",
    to: str = "user@mailrelay.test",
) -> bytes:
    """Build a small, well-formed message."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{secrets.token_hex(8)}@example.org>"
    msg.set_content(body)
    return msg.as_bytes()


# French text as mail programs send it today: a folded subject of encoded
# words and plain text, and an 8-bit UTF-8 body.
NON_ASCII_SUBJECT = "Tür offen – Temperatur 23 °C ✓ 温度"
NON_ASCII_TEXT = "Grüße aus dem Keller – 23 °C, l’alarme, 5 €, œuvre 🚪"


# A French letter as a person writes it: accents, typographic apostrophes and
# quotes, a euro sign, œ, a long subject the encoder folds, an accented name.
FRENCH_SUBJECT = "Relevé du compteur : l’eau a coulé toute la nuit – « alerte » à 5 €"
FRENCH_NAME = "Hélène Lefèvre-Dupré"
FRENCH_TEXT = (
    "Bonjour,\n\nLe capteur de la cave signale une fuite : 23,5 °C, humidité 97 %.\n"
    "L’œuvre de la nuit coûtera sûrement plus de 5 € ; ça mérite qu’on s’y intéresse."
    "\n\nÀ bientôt,\nHélène"
)


def non_ascii_message(to: str) -> bytes:
    """Return a message with NON_ASCII_SUBJECT and an 8-bit NON_ASCII_TEXT body."""
    return (
        (
            f"From: =?utf-8?q?Ga=C3=ABlle?= <gaelle@example.fr>\r\nTo: {to}\r\n"
            "Subject: =?utf-8?q?T=C3=BCr_offen_=E2=80=93?=\r\n"
            " Temperatur 23 =?utf-8?b?wrBDIOKckyDmuKnluqY=?=\r\n"
            f"Message-ID: <{secrets.token_hex(8)}@example.fr>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
        ).encode()
        + NON_ASCII_TEXT.encode()
        + b"\r\n"
    )


class DovecotServer:
    """One Dovecot instance: IMAP(+STARTTLS), IMAPS, POP3(+STLS), POP3S and LMTP.

    Its auth service also listens on TCP (``auth_port``), for Postfix's SASL.

    With ``tls=False`` the server offers neither STARTTLS/STLS nor the implicit-TLS
    ports, which is how tests prove that a STARTTLS account fails closed.

    The configuration is written in the syntax of the Dovecot found, 2.3 or 2.4
    (``version``); both behave the same.
    """

    family = "dovecot"

    def __init__(
        self,
        cert: TestCertificate,
        *,
        tls: bool = True,
        ports: dict[str, int] | None = None,
        namespace: tuple[str, str] | None = None,
        oauth: OAuthServer | None = None,
        oauth_mechanisms: tuple[str, ...] = ("xoauth2", "oauthbearer"),
    ) -> None:
        """Prepare the configuration; ``start()`` runs the server.

        ``oauth``: also accept XOAUTH2 and OAUTHBEARER, checking each token by
        introspection at that authorization server (``force_introspection``:
        every login asks it, so a revoked token is refused at once), with
        ``oauth_mechanisms`` (OAUTHBEARER alone, say, as some servers offer).

        ``namespace``: the personal namespace's (prefix, separator), for example
        ``("INBOX.", ".")`` to lay folders out as Courier does: a folder created
        at the root is then refused.

        The files live in a directory of their own under the system temp dir,
        readable by the unprivileged user Dovecot delivers mail as when we are
        root (pytest's tmp dirs are private to root); ``cleanup()`` removes it.
        """
        self.directory = Path(tempfile.mkdtemp(prefix="mailrelay-dovecot-"))
        # 2.4 changed the configuration syntax; write the one this Dovecot reads.
        self.version = dovecot_version()
        self.version_info: tuple[int, ...] = tuple(
            int(part) for part in self.version.split(".")
        )
        self.cert = cert
        self.tls = tls
        self.namespace = namespace
        self.oauth = oauth
        self.oauth_mechanisms = oauth_mechanisms
        self.host = "127.0.0.1"
        fixed = ports or {}
        self.imap_port = fixed.get("imap") or free_port()
        self.pop3_port = fixed.get("pop3") or free_port()
        self.lmtp_port = fixed.get("lmtp") or free_port()
        # Postfix asks Dovecot's auth service over TCP (tests/mailserver/postfix.py).
        self.auth_port = fixed.get("auth") or free_port()
        self.imaps_port = (fixed.get("imaps") or free_port()) if tls else 0
        self.pop3s_port = (fixed.get("pop3s") or free_port()) if tls else 0
        self._process: subprocess.Popen[bytes] | None = None
        # One passwd-file per user, named after the login: Dovecot rereads a
        # single shared file only when its mtime changes, which misses users
        # added within the same second.
        self._users_dir = self.directory / "users"
        self.directory.chmod(0o755)
        if os.getuid() == 0:
            mail_user = pwd.getpwnam("dovecot")
            self._mail_uid, self._mail_gid = mail_user.pw_uid, mail_user.pw_gid
        else:
            self._mail_uid, self._mail_gid = os.getuid(), os.getgid()
        home = self.directory / "home"
        home.mkdir()
        os.chown(home, self._mail_uid, self._mail_gid)
        self._users_dir.mkdir()
        self._config = self.directory / "dovecot.conf"
        self._config.write_text(self._render_config())

    # -- configuration -------------------------------------------------

    @property
    def _syntax(self) -> _Syntax:
        return _SYNTAX_24 if self.version_info >= (2, 4) else _SYNTAX_23

    def logged_in_marker(self, user: MailUser) -> str:
        """Return the log text of a successful login of ``user``."""
        return self._syntax.logged_in.format(user=user.address)

    def login_dropped_marker(self, protocol: str) -> str:
        """Return the log text of a ``protocol`` connection closed before login."""
        return self._syntax.login_dropped.format(protocol=protocol)

    @staticmethod
    def dropped_without_credentials(line: str) -> bool:
        """Whether a login-dropped log line says no credentials were sent.

        "no auth attempts" as a rule; Dovecot 2.4 says "disconnected before
        auth was ready" when the client left before its auth process answered.
        """
        return "user=<>" in line and (
            "no auth attempts" in line or "before auth was ready" in line
        )

    def _render_config(self) -> str:
        me = pwd.getpwuid(os.getuid())
        group = grp.getgrgid(self._mail_gid).gr_name
        if os.getuid() == 0:
            login_user, internal_user = "dovenull", "dovecot"
        else:
            login_user = internal_user = me.pw_name
        d = self.directory
        new = self.version_info >= (2, 4)
        syntax = self._syntax
        user = syntax.user
        dh = Path("/usr/share/dovecot/dh.pem")
        if self.tls:
            ssl_lines = "ssl = yes\n" + "".join(
                syntax.ssl_file.format(name=name, path=path) + "\n"
                for name, path in (
                    ("cert", self.cert.cert),
                    ("key", self.cert.key),
                    *((("dh", dh),) if dh.exists() else ()),
                )
            )
        else:
            ssl_lines = "ssl = no\n"
        # 2.4 wants the first setting to name the version the file was written
        # for, and the oldest one that must read the mail files: this one.
        header = (
            f"dovecot_config_version = {self.version}\n"
            f"dovecot_storage_version = {self.version}\n"
            if new
            else ""
        )
        users = syntax.users.format(
            files=f"{self._users_dir}/{user}",
            uid=self._mail_uid,
            gid=self._mail_gid,
            home=f"{d}/home/{user}",
        )
        mechanisms = "plain login"
        oauth = ""
        if self.oauth is not None:
            mechanisms += " " + " ".join(self.oauth_mechanisms)
            # Refuse at once, as Gmail and Exchange do (Dovecot waits 2 s by
            # default): the tests measure how fast our client gives up on a
            # refused token. Dovecot still delays the next login from an
            # address that just failed (its auth penalty: 2 s, then 4, 8, 15).
            oauth = "auth_failure_delay = 0\n" + self._oauth_config()
        namespace = ""
        if self.namespace is not None:
            prefix, separator = self.namespace
            namespace = (
                "namespace inbox {\n  inbox = yes\n"
                f"  prefix = {prefix}\n  separator = {separator}\n}}\n"
            )
        return f"""{header}
{namespace}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
instance_name = mailrelay-test-{self.imap_port}
protocols = imap pop3 lmtp
listen = 127.0.0.1
default_login_user = {login_user}
default_internal_user = {internal_user}
stats_writer_socket_path =
first_valid_uid = 1
first_valid_gid = 1
{ssl_lines}
{syntax.cleartext}
auth_mechanisms = {mechanisms}
{syntax.mail}
mail_fsync = never
pop3_uidl_format = {syntax.uidl}
pop3_logout_format = {syntax.pop3_logout}
{oauth}
{users}
mail_privileged_group = {group}
service imap-login {{
  inet_listener imap {{
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = {self.pop3s_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    port = {self.lmtp_port}
  }}
}}
service anvil {{
  chroot =
}}
# The passwd-file sits in a private temp dir: read it as the running user.
service auth {{
  user = {me.pw_name}
  inet_listener auth-postfix {{
    port = {self.auth_port}
  }}
}}
service auth-worker {{
  user = {me.pw_name}
}}
"""

    def _oauth_config(self) -> str:
        assert self.oauth is not None
        client, secret = INTROSPECTION_CLIENT
        url = self.oauth.introspection_url.replace("://", f"://{client}:{secret}@", 1)
        settings = {
            "introspection_mode": "post",
            "introspection_url": url,
            "force_introspection": "yes",
            "active_attribute": "active",
            "active_value": "true",
            "username_attribute": "username",
            # The token must carry the mail scope (Microsoft's IMAP scope).
            "scope": MAIL_SCOPE,
        }
        if self.version_info >= (2, 4):
            lines = "".join(f"oauth2_{k} = {v}\n" for k, v in settings.items())
            return self._syntax.oauth.format(settings=lines)
        ext = self.directory / "oauth2.conf.ext"
        ext.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        return self._syntax.oauth.format(
            ext=ext, mechanisms=" ".join(self.oauth_mechanisms)
        )

    # -- lifecycle -----------------------------------------------------

    def start(self) -> None:
        """Start Dovecot in the foreground and wait until every port answers."""
        self._process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self._config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Its own process group: stop() can end the client sessions too.
            start_new_session=True,
        )
        try:
            if self.oauth is not None:
                self._no_auth_penalty()
            for port in self.ports():
                wait_for_port(port)
        except TimeoutError:
            stderr = b""
            if self._process.poll() is not None and self._process.stderr is not None:
                stderr = self._process.stderr.read()
            self.stop()
            log = self.directory / "dovecot.log"
            detail = log.read_text() if log.exists() else ""
            raise RuntimeError(
                f"Dovecot did not start:\n{stderr.decode(errors='replace')}{detail}"
            ) from None

    def _no_auth_penalty(self) -> None:
        """Turn Dovecot's auth penalty off for the OAuth tests.

        After a failed login Dovecot delays the next one from the same address
        (2 s, then 4, 8, 15) and has no setting to stop it; every test here
        connects from 127.0.0.1, so one refused token would slow the next
        tests down. The auth process asks anvil through this socket when it
        starts, and without it goes on quietly with no penalty; nothing has
        connected yet, so no auth process has started.
        """
        socket_path = self.directory / "run" / "anvil-auth-penalty"
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            if time.monotonic() > deadline or (
                self._process is not None and self._process.poll() is not None
            ):
                return  # start() reports why Dovecot did not come up
            time.sleep(0.01)
        socket_path.unlink()

    def ports(self) -> list[int]:
        """Return every port this server listens on."""
        ports = [self.imap_port, self.pop3_port, self.lmtp_port, self.auth_port]
        if self.tls:
            ports += [self.imaps_port, self.pop3s_port]
        return ports

    def stop(self) -> None:
        """Stop Dovecot and wait for all of its processes to exit."""
        if self._process is None:
            return
        process, self._process = self._process, None
        stop_server(process, self.ports())

    def cleanup(self) -> None:
        """Stop and delete every file the server wrote."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same ports, keeping all mail."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """Return whether the master process is alive."""
        return self._process is not None and self._process.poll() is None

    # -- users and mail ------------------------------------------------

    def add_user(
        self, local_part: str | None = None, password: str | None = None
    ) -> MailUser:
        """Create a new, empty mailbox; Dovecot rereads the passwd-file by itself."""
        local = local_part or f"user-{secrets.token_hex(4)}"
        user = MailUser(f"{local}@{DOMAIN}", password or secrets.token_urlsafe(12))
        (self._users_dir / user.address).write_text(
            f"{user.address}:{user.password}::::::\n"
        )
        return user

    def set_password(self, user: MailUser, password: str) -> MailUser:
        """Change a user's password, as an admin would on the server."""
        path = self._users_dir / user.address
        path.write_text(f"{user.address}:{password}::::::\n")
        # Dovecot rereads a passwd-file when its mtime changes; make sure it
        # does even within the same second as the previous write.
        later = time.time() + 5
        os.utime(path, (later, later))
        return MailUser(user.address, password)

    def logins(self, user: MailUser) -> list[str]:
        """The log lines of the user's successful IMAP/POP3 logins, oldest first.

        Dovecot's log process writes them a moment after the login happened.
        """
        log = self.directory / "dovecot.log"
        if not log.exists():
            return []
        needle = self.logged_in_marker(user)
        return [line for line in log.read_text().splitlines() if needle in line]

    def maildir(self, user: MailUser) -> Path:
        """Return the user's Maildir (it exists once mail was delivered)."""
        return self.directory / "home" / user.address / "Maildir"

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
        recipients = [
            rcpt for rcpt in message.rcpt_tos if (self._users_dir / rcpt).is_file()
        ]
        if recipients:
            lmtp_deliver(
                self.host,
                self.lmtp_port,
                message.mail_from,
                recipients,
                [message.data],
            )

    def fill_maildir(self, user: MailUser, count: int, subject: str = "Bulk") -> None:
        """Write ``count`` small messages straight into the user's Maildir/cur.

        Far faster than LMTP for big mailboxes; Dovecot finds them at the next
        login. Sizes go into the file names (``S=``, ``W=``) as Dovecot's own
        deliveries do, so it need not read every file to answer STAT/LIST.
        """
        home = self.directory / "home" / user.address
        root = self.maildir(user)
        for sub in ("cur", "new", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        tag = secrets.token_hex(4)
        stamp = int(time.time())
        for number in range(count):
            data = (
                f"From: sender@example.org\nTo: {user.address}\n"
                f"Subject: {subject} {number}\n"
                f"Message-ID: <{tag}.{number}@example.org>\n"
                "Date: Mon, 23 Nov 2026 10:00:00 +0000\n\n"
                f"Bulk message {number}.\n"
            ).encode()
            name = (
                f"{stamp}.M{number}P{tag}.mailrelay,"
                f"S={len(data)},W={len(data) + data.count(b'\n')}:2,"
            )
            (root / "cur" / name).write_bytes(data)
        for path in (home, *home.rglob("*")):
            os.chown(path, self._mail_uid, self._mail_gid)

    def message_count(self, user: MailUser) -> int:
        """Count the messages in the user's INBOX on disk."""
        root = self.maildir(user)
        return sum(
            1
            for sub in ("new", "cur")
            if (root / sub).exists()
            for _ in (root / sub).iterdir()
        )
