"""Fixtures shared by every test: real mail servers and Home Assistant helpers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_socket
from homeassistant.const import CONF_PASSWORD
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.mail_relay.const import (
    CONF_EMAIL,
    CONF_INCOMING_HOST,
    CONF_INCOMING_PORT,
    CONF_INCOMING_SECURITY,
    CONF_INCOMING_USERNAME,
    CONF_PROTOCOL,
    CONF_SMTP_HOST,
    CONF_SMTP_PORT,
    CONF_SMTP_SECURITY,
    CONF_SMTP_USERNAME,
    CONF_VERIFY_SSL,
    DOMAIN,
)
from custom_components.mail_relay.mail.tls import create_ssl_context

# Every test fails if Home Assistant logged a deprecated use by mail_relay.
from tests.deprecations import (  # noqa: F401 (a fixture and a hook for pytest)
    no_deprecated_use,
    pytest_runtest_makereport,
)
from tests.mailserver import (
    DovecotServer,
    MailUser,
    OAuthServer,
    SmtpServer,
    TestCertificate,
    make_certificate,
)
from tests.mailserver.postfix import PostfixServer, postfix_missing


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/mail_relay."""


@pytest.fixture(autouse=True)
def _loopback_sockets(socket_enabled: None) -> None:
    """Every test talks to servers on 127.0.0.1; other hosts stay blocked."""


@pytest.fixture(scope="session")
def mail_cert(tmp_path_factory: pytest.TempPathFactory) -> TestCertificate:
    """A self-signed certificate for this test run."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def other_cert(tmp_path_factory: pytest.TempPathFactory) -> TestCertificate:
    """A second self-signed certificate, trusted by nobody."""
    return make_certificate(tmp_path_factory.mktemp("other-tls"))


def _sockets_on() -> None:
    # Session fixtures run before the per-test socket fixture re-enables
    # sockets (loopback only stays enforced); servers bind right now.
    pytest_socket.enable_socket()


@pytest.fixture(scope="session")
def dovecot(mail_cert: TestCertificate) -> Iterator[DovecotServer]:
    """One Dovecot for the whole run; tests use their own users."""
    _sockets_on()
    server = DovecotServer(mail_cert)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def dovecot_without_tls(mail_cert: TestCertificate) -> Iterator[DovecotServer]:
    """A Dovecot that offers neither STARTTLS nor implicit TLS."""
    _sockets_on()
    server = DovecotServer(mail_cert, tls=False)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def courier_layout(mail_cert: TestCertificate) -> Iterator[DovecotServer]:
    """A Dovecot whose folders live under ``INBOX.`` with ``.``, as Courier's do."""
    _sockets_on()
    server = DovecotServer(mail_cert, namespace=("INBOX.", "."))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def postfix(
    mail_cert: TestCertificate, dovecot: DovecotServer
) -> Iterator[PostfixServer]:
    """Postfix submission delivering by LMTP into the shared Dovecot.

    Skipped, with the reason, where its packages are not unpacked.
    """
    if reason := postfix_missing():
        pytest.skip(reason)
    _sockets_on()
    server = PostfixServer(mail_cert, dovecot)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def own_dovecot(mail_cert: TestCertificate) -> Iterator[DovecotServer]:
    """A Dovecot for one test, which may stop and restart it."""
    server = DovecotServer(mail_cert)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def smtp_server(
    mail_cert: TestCertificate, dovecot: DovecotServer
) -> Iterator[SmtpServer]:
    """aiosmtpd listeners; accepted mail for test users lands in Dovecot."""
    _sockets_on()
    server = SmtpServer(mail_cert)
    server.relay = dovecot.relay_to_lmtp
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oauth_server() -> Iterator[OAuthServer]:
    """The local OAuth2 authorization server (tests/mailserver/oauth.py)."""
    _sockets_on()
    server = OAuthServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oauth_dovecot(
    mail_cert: TestCertificate, oauth_server: OAuthServer
) -> Iterator[DovecotServer]:
    """A Dovecot that also takes XOAUTH2 and OAUTHBEARER, checked at oauth_server."""
    _sockets_on()
    server = DovecotServer(mail_cert, oauth=oauth_server)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def oauth_smtp(
    mail_cert: TestCertificate,
    oauth_server: OAuthServer,
    oauth_dovecot: DovecotServer,
) -> Iterator[SmtpServer]:
    """aiosmtpd with AUTH XOAUTH2 checked at oauth_server; mail lands in oauth_dovecot."""
    _sockets_on()
    server = SmtpServer(mail_cert, oauth=oauth_server)
    server.relay = oauth_dovecot.relay_to_lmtp
    server.start()
    yield server
    server.stop()


@pytest.fixture
def oauth_user(oauth_dovecot: DovecotServer, oauth_server: OAuthServer) -> MailUser:
    """A fresh mailbox that can sign in at oauth_server with its password."""
    user = oauth_dovecot.add_user()
    oauth_server.add_user(user.address, user.password)
    return user


@pytest.fixture
def mail_user(dovecot: DovecotServer, smtp_server: SmtpServer) -> MailUser:
    """A fresh mailbox, with the same credentials accepted by the SMTP server."""
    user = dovecot.add_user()
    smtp_server.add_user(user.address, user.password)
    return user


@pytest.fixture
def trust_test_cert(
    monkeypatch: pytest.MonkeyPatch, mail_cert: TestCertificate
) -> Path:
    """Trust the test certificate the way a user trusts a private CA."""
    monkeypatch.setenv("SSL_CERT_FILE", str(mail_cert.cert))
    return mail_cert.cert


@pytest.fixture
async def tls_context(trust_test_cert: Path) -> ssl.SSLContext:
    """A verifying context that trusts the test certificate (like a private CA)."""
    return await asyncio.to_thread(create_ssl_context)


@pytest.fixture
def entry_factory(
    dovecot: DovecotServer, smtp_server: SmtpServer
) -> Callable[..., MockConfigEntry]:
    """Build a config entry for a test user against the test servers."""

    def make(
        user: MailUser,
        *,
        protocol: str = "imap",
        security: str = "ssl",
        smtp_security: str | None = "starttls",
        options: dict[str, Any] | None = None,
        server: DovecotServer | None = None,
    ) -> MockConfigEntry:
        srv = server or dovecot
        ports = {
            ("imap", "ssl"): srv.imaps_port,
            ("imap", "starttls"): srv.imap_port,
            ("imap", "none"): srv.imap_port,
            ("pop3", "ssl"): srv.pop3s_port,
            ("pop3", "starttls"): srv.pop3_port,
            ("pop3", "none"): srv.pop3_port,
        }
        data: dict[str, Any] = {
            CONF_EMAIL: user.address,
            CONF_PASSWORD: user.password,
            CONF_PROTOCOL: protocol,
            CONF_INCOMING_HOST: srv.host,
            CONF_INCOMING_PORT: ports[(protocol, security)],
            CONF_INCOMING_SECURITY: security,
            CONF_INCOMING_USERNAME: user.username,
            CONF_VERIFY_SSL: True,
        }
        if smtp_security is not None:
            data |= {
                CONF_SMTP_HOST: smtp_server.host,
                CONF_SMTP_PORT: smtp_server.ports[
                    {"ssl": "ssl", "starttls": "starttls", "none": "plain"}[
                        smtp_security
                    ]
                ],
                CONF_SMTP_SECURITY: smtp_security,
                CONF_SMTP_USERNAME: user.address,
            }
        return MockConfigEntry(
            domain=DOMAIN,
            title=user.address,
            data=data,
            options=options or {},
            unique_id=f"{user.address}:{protocol}",
        )

    return make
