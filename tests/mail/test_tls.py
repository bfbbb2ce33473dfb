"""TLS contexts are verified by default and shared per trust source."""

from __future__ import annotations

import ssl

import pytest

from custom_components.mail_relay.mail.tls import create_ssl_context


def test_verifies_by_default_and_is_shared() -> None:
    ctx = create_ssl_context()
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.check_hostname
    # Fifty accounts share one CA store instead of holding fifty copies.
    assert create_ssl_context() is ctx


def test_unverified_only_on_request() -> None:
    ctx = create_ssl_context(verify=False)
    assert ctx.verify_mode is ssl.CERT_NONE
    assert create_ssl_context(verify=True) is not ctx


def test_trust_source_change_gives_a_new_context(
    monkeypatch: pytest.MonkeyPatch, mail_cert
) -> None:
    before = create_ssl_context()
    monkeypatch.setenv("SSL_CERT_FILE", str(mail_cert.cert))
    trusting = create_ssl_context()
    assert trusting is not before
    assert any(
        c["subject"] == ((("commonName", "localhost"),),)
        for c in trusting.get_ca_certs()
    )


@pytest.mark.parametrize("security", ["ssl", "starttls"])
@pytest.mark.usefixtures("trust_test_cert")
async def test_imap_connection_keeps_a_small_read_buffer_and_still_reads_big_mail(
    dovecot, mail_user, security: str
) -> None:
    from email.message import EmailMessage

    from custom_components.mail_relay.mail.imap import ImapClient
    from custom_components.mail_relay.mail.models import Security, ServerSettings
    from custom_components.mail_relay.mail.tls import IDLE_READ_BUFFER

    msg = EmailMessage()
    msg["Subject"] = "big"
    msg.set_content("x" * 3_000_000)  # read through the small buffer
    dovecot.deliver(mail_user, msg.as_bytes())
    port = dovecot.imaps_port if security == "ssl" else dovecot.imap_port
    settings = ServerSettings(
        dovecot.host, port, Security(security), mail_user.username, mail_user.password
    )
    client = ImapClient(settings, ssl_context=create_ssl_context())
    await client.connect()
    try:
        tls = client._proto.transport._ssl_protocol
        assert len(tls._ssl_buffer) == IDLE_READ_BUFFER  # not asyncio's 256 KiB
        await client.select("INBOX")
        full = await client.fetch_full(1)
        assert full["subject"] == "big"
        assert len(full["text"]) >= 1_000_000
        assert len(tls._ssl_buffer) == IDLE_READ_BUFFER
    finally:
        await client.logout()
