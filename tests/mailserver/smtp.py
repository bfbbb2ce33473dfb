"""aiosmtpd servers: submission (STARTTLS + AUTH), implicit TLS, and plain."""

from __future__ import annotations

import base64
import json
import logging
import smtplib
import ssl
import threading
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .certs import TestCertificate
from .oauth import INTROSPECTION_CLIENT, MAIL_SCOPE, OAuthServer, basic_auth
from .ports import free_port

MODES = ("starttls", "ssl", "plain")

# The implicit-TLS listener is TLS from the first byte; aiosmtpd cannot tell and
# warns about AUTH without STARTTLS on every connection, once as a warning and
# once in its log. Its `auth_require_tls=True` would refuse AUTH there (aiosmtpd
# counts only STARTTLS as TLS), so the setting stays and the warning goes; the
# STARTTLS and plain listeners do not trigger it.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
_SILENCED_LOG = (
    "auth_required == True but auth_require_tls == False",
    # aiosmtpd itself sets the deprecated attribute on every login, and says so.
    "login_data is deprecated",
)
logging.getLogger("mail.log").addFilter(
    lambda record: not any(text in record.getMessage() for text in _SILENCED_LOG)
)


@dataclass
class ReceivedMessage:
    """One message the server accepted."""

    mode: str
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None

    def parsed(self) -> EmailMessage:
        """Parse the raw data back into a message."""
        msg = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


class _CountingController(Controller):
    """A Controller that counts the connections (SMTP sessions) it serves."""

    def __init__(
        self, server: SmtpServer, mode: str, *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._server = server
        self._mode = mode

    def factory(self) -> SMTP:
        # aiosmtpd builds one SMTP instance per accepted connection.
        with self._server.lock:
            self._server.sessions[self._mode] += 1
        return super().factory()


@dataclass
class _Handler:
    server: SmtpServer
    mode: str

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self.server.refused_rcpts.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        with self.server.lock:
            if self.server.replies:
                reply = self.server.replies.pop(0)
                if reply is not None:
                    return reply
            self.server.connections.add(id(session))
        data = envelope.original_content or b""
        login = (
            session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        )
        received = ReceivedMessage(
            self.mode, envelope.mail_from or "", list(envelope.rcpt_tos), data, login
        )
        with self.server.lock:
            self.server.messages.append(received)
        if self.server.relay is not None:
            self.server.relay(received)
        return "250 Message accepted for delivery"


class _OAuthHandler(_Handler):
    """Also accepts ``AUTH XOAUTH2``, checking the token by introspection.

    A refused token gets Gmail's answer: a 334 challenge carrying a base64
    JSON error (status 400 for another address's token, 401 for a dead or
    unknown one); once the client answers it (an empty line), 535.
    """

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except ValueError:
                return AuthResult(
                    success=False, handled=False, message="501 5.5.2 Bad base64"
                )
        else:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            blob = answer
        fields = dict(
            part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part
        )
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        oauth = self.server.oauth
        assert oauth is not None
        # Blocking is fine here: aiosmtpd's loop runs in a thread of its own,
        # and an executor thread would outlive the test.
        found = introspect(oauth, token)
        scopes = str(found.get("scope", "")).split()
        if (
            found.get("active")
            and found.get("username") == user
            and MAIL_SCOPE in scopes
        ):
            return AuthResult(success=True, auth_data=user.encode())
        # Gmail's statuses: 400 for a live token of another address, 401 else.
        status = (
            "400" if found.get("active") and found.get("username") != user else "401"
        )
        error = {"status": status, "schemes": "Bearer", "scope": MAIL_SCOPE}
        await server.challenge_auth(json.dumps(error))
        return AuthResult(
            success=False,
            handled=False,
            message="535 5.7.8 Username and Password not accepted",
        )


def introspect(oauth: OAuthServer, token: str) -> dict[str, Any]:
    """Ask the authorization server about a token (RFC 7662), as Dovecot does."""
    request = urllib.request.Request(
        oauth.introspection_url,
        data=urllib.parse.urlencode({"token": token}).encode(),
        headers={"Authorization": basic_auth(*INTROSPECTION_CLIENT)},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        found: dict[str, Any] = json.loads(response.read())
    return found


class SmtpServer:
    """Three aiosmtpd listeners sharing one user list and one message log.

    ``replies`` is a queue of canned DATA replies ("550 ...", "421 ..."); ``None``
    entries mean "accept normally". ``relay`` is called for every accepted message
    (the fixtures hand it to Dovecot's LMTP). ``refused_rcpts`` maps a recipient
    to the reply its RCPT gets.
    """

    def __init__(
        self,
        cert: TestCertificate,
        ports: dict[str, int] | None = None,
        *,
        oauth: OAuthServer | None = None,
    ) -> None:
        """Choose ports; ``start()`` runs the listeners.

        ``oauth``: also offer AUTH XOAUTH2, tokens checked at that server.
        """
        self.cert = cert
        self.oauth = oauth
        self.host = "127.0.0.1"
        fixed = ports or {}
        self.ports = {mode: fixed.get(mode) or free_port() for mode in MODES}
        self.users: dict[str, str] = {}
        self.messages: list[ReceivedMessage] = []
        self.replies: list[str | None] = []
        self.connections: set[int] = set()
        # Connections accepted per mode (includes aiosmtpd's own readiness probe).
        self.sessions: dict[str, int] = dict.fromkeys(MODES, 0)
        self.relay: Callable[[ReceivedMessage], None] | None = None
        self.refused_rcpts: dict[str, str] = {}
        self.lock = threading.Lock()
        self._controllers: list[Controller] = []

    @property
    def starttls_port(self) -> int:
        """Submission port (STARTTLS required before AUTH)."""
        return self.ports["starttls"]

    @property
    def ssl_port(self) -> int:
        """Implicit-TLS port."""
        return self.ports["ssl"]

    @property
    def plain_port(self) -> int:
        """Clear-text port (AUTH allowed without TLS)."""
        return self.ports["plain"]

    def add_user(self, login: str, password: str) -> None:
        """Accept these credentials for AUTH."""
        self.users[login] = password

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode()
            if self.users.get(login) == auth_data.password.decode():
                return AuthResult(success=True, auth_data=auth_data.login)
        return AuthResult(success=False, handled=False)

    def start(self) -> None:
        """Start the three listeners in aiosmtpd's own thread each."""
        tls = self.cert.server_context()
        # aiosmtpd's readiness probe wraps its client socket with the server's
        # own context, so implicit TLS needs a context usable on both sides.
        both_sides = self.cert.dual_context()
        common: dict[str, Any] = {
            "hostname": self.host,
            "authenticator": self._authenticate,
            "auth_exclude_mechanism": ["CRAM-MD5"],
            "data_size_limit": 60 * 1024 * 1024,
        }
        configs: dict[str, dict[str, Any]] = {
            "starttls": {
                "tls_context": tls,
                "require_starttls": True,
                "auth_required": True,
            },
            # The whole session is TLS here, but aiosmtpd only knows about
            # STARTTLS; tell it not to hide AUTH.
            "ssl": {
                "ssl_context": both_sides,
                "auth_required": True,
                "auth_require_tls": False,
            },
            "plain": {"auth_require_tls": False, "auth_required": False},
        }
        for mode, extra in configs.items():
            controller = _CountingController(
                self,
                mode,
                (_OAuthHandler if self.oauth else _Handler)(self, mode),
                port=self.ports[mode],
                server_hostname="localhost",
                **common,
                **extra,
            )
            controller.start()
            self._controllers.append(controller)

    def stop(self) -> None:
        """Stop every listener."""
        for controller in self._controllers:
            controller.stop()
        self._controllers.clear()

    def received_by(self, address: str) -> list[ReceivedMessage]:
        """Return the messages with this recipient."""
        with self.lock:
            return [m for m in self.messages if address in m.rcpt_tos]


def smtp_send(
    server: SmtpServer, mode: str, login: str, password: str, message: bytes, to: str
) -> None:
    """Send one message with the standard library (used to prove the fixtures)."""
    ctx: ssl.SSLContext = server.cert.client_context()
    port = server.ports[mode]
    client: smtplib.SMTP
    if mode == "ssl":
        client = smtplib.SMTP_SSL(
            server.host, port, local_hostname="localhost", context=ctx, timeout=10
        )
    else:
        client = smtplib.SMTP(server.host, port, local_hostname="localhost", timeout=10)
        if mode == "starttls":
            client.starttls(context=ctx)
    with client:
        client.login(login, password)
        client.sendmail(login, [to], message)


__all__ = ["ReceivedMessage", "SmtpServer", "smtp_send"]
