"""Login tests against the real Dovecot and aiosmtpd: each failure has its own error."""

from __future__ import annotations

import socket

import pytest

from custom_components.mail_relay.mail.errors import (
    AuthError,
    CertificateError,
    ConnectError,
    MailTimeoutError,
    OAuthRequiredError,
    StartTlsUnavailableError,
)
from custom_components.mail_relay.mail.models import Protocol, Security, ServerSettings
from custom_components.mail_relay.mail.probe import (
    list_folders,
    test_login,
)
from tests.mailserver import DovecotServer, MailUser, SmtpServer
from tests.mailserver.ports import free_port


def _incoming(srv: DovecotServer, user: MailUser, protocol: str, security: str, **kw):
    port = {
        ("imap", "ssl"): srv.imaps_port,
        ("imap", "starttls"): srv.imap_port,
        ("imap", "none"): srv.imap_port,
        ("pop3", "ssl"): srv.pop3s_port,
        ("pop3", "starttls"): srv.pop3_port,
        ("pop3", "none"): srv.pop3_port,
    }[(protocol, security)]
    return ServerSettings(
        host=srv.host,
        port=port,
        security=Security(security),
        username=kw.pop("username", user.username),
        password=kw.pop("password", user.password),
        **kw,
    )


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
@pytest.mark.parametrize("security", ["ssl", "starttls", "none"])
@pytest.mark.usefixtures("trust_test_cert")
async def test_login_succeeds(
    dovecot: DovecotServer, mail_user: MailUser, protocol: str, security: str
) -> None:
    await test_login(
        _incoming(dovecot, mail_user, protocol, security), Protocol(protocol)
    )


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
@pytest.mark.usefixtures("trust_test_cert")
async def test_wrong_password(
    dovecot: DovecotServer, mail_user: MailUser, protocol: str
) -> None:
    settings = _incoming(dovecot, mail_user, protocol, "ssl", password="wrong")
    with pytest.raises(AuthError) as err:
        await test_login(settings, Protocol(protocol))
    assert not isinstance(err.value, OAuthRequiredError)
    assert "wrong" not in str(err.value)


@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
async def test_closed_port(protocol: str) -> None:
    settings = ServerSettings("127.0.0.1", free_port(), Security.SSL, "u", "p")
    with pytest.raises(ConnectError) as err:
        await test_login(settings, Protocol(protocol), io_timeout=5)
    assert not isinstance(err.value, MailTimeoutError)


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
@pytest.mark.parametrize("security", ["ssl", "starttls"])
async def test_self_signed_certificate(
    dovecot: DovecotServer, mail_user: MailUser, protocol: str, security: str
) -> None:
    settings = _incoming(dovecot, mail_user, protocol, security)
    with pytest.raises(CertificateError):
        await test_login(settings, Protocol(protocol))
    # The user may knowingly turn verification off.
    unverified = _incoming(dovecot, mail_user, protocol, security, verify_tls=False)
    await test_login(unverified, Protocol(protocol))


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
async def test_starttls_fails_closed(
    dovecot_without_tls: DovecotServer, protocol: str
) -> None:
    user = dovecot_without_tls.add_user()
    settings = _incoming(dovecot_without_tls, user, protocol, "starttls")
    with pytest.raises(StartTlsUnavailableError):
        await test_login(settings, Protocol(protocol))
    # In clear text (which the user must confirm) the same account works.
    await test_login(
        _incoming(dovecot_without_tls, user, protocol, "none"), Protocol(protocol)
    )


async def test_silent_server_times_out() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        port = sock.getsockname()[1]
        for protocol in (Protocol.IMAP, Protocol.POP3, Protocol.SMTP):
            settings = ServerSettings("127.0.0.1", port, Security.NONE, "u", "p")
            with pytest.raises(MailTimeoutError):
                await test_login(settings, protocol, io_timeout=0.5)
    finally:
        sock.close()


@pytest.mark.parametrize("security", ["ssl", "starttls", "none"])
@pytest.mark.usefixtures("trust_test_cert")
async def test_smtp_login(
    smtp_server: SmtpServer, mail_user: MailUser, security: str
) -> None:
    mode = {"ssl": "ssl", "starttls": "starttls", "none": "plain"}[security]
    settings = ServerSettings(
        smtp_server.host,
        smtp_server.ports[mode],
        Security(security),
        mail_user.address,
        mail_user.password,
    )
    await test_login(settings, Protocol.SMTP)
    bad = ServerSettings(
        smtp_server.host,
        smtp_server.ports[mode],
        Security(security),
        mail_user.address,
        "wrong",
    )
    with pytest.raises(AuthError):
        await test_login(bad, Protocol.SMTP)


async def test_smtp_certificate_and_starttls(smtp_server: SmtpServer) -> None:
    for mode, security in (("ssl", Security.SSL), ("starttls", Security.STARTTLS)):
        settings = ServerSettings(
            smtp_server.host, smtp_server.ports[mode], security, "u", "p"
        )
        with pytest.raises(CertificateError):
            await test_login(settings, Protocol.SMTP)
    plain = ServerSettings(
        smtp_server.host, smtp_server.ports["plain"], Security.STARTTLS, "u", "p"
    )
    with pytest.raises(StartTlsUnavailableError):
        await test_login(plain, Protocol.SMTP)
    # Without a username the server is only greeted.
    anonymous = ServerSettings(
        smtp_server.host, smtp_server.ports["plain"], Security.NONE, ""
    )
    await test_login(anonymous, Protocol.SMTP)


async def test_oauth_only_host_refusal_is_reported_as_oauth() -> None:
    from custom_components.mail_relay.mail.errors import AuthError
    from custom_components.mail_relay.mail.probe import oauth_hint

    settings = ServerSettings(
        "outlook.office365.com", 993, Security.SSL, "a@outlook.com"
    )
    assert isinstance(oauth_hint(settings, AuthError("NO")), OAuthRequiredError)
    other = ServerSettings("imap.free.fr", 993, Security.SSL, "a")
    refused = AuthError("NO")
    assert oauth_hint(other, refused) is refused


@pytest.mark.usefixtures("trust_test_cert")
async def test_list_folders(dovecot: DovecotServer, mail_user: MailUser) -> None:
    settings = _incoming(dovecot, mail_user, "imap", "ssl")
    folders = await list_folders(settings)
    assert folders[0] == "INBOX"
